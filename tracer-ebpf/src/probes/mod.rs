//! Probe families, one module each.
pub mod cgroup;
pub mod dcache;
pub mod memcg;
pub mod oom;
pub mod reclaim;
pub mod shrink;

use aya_ebpf::maps::ring_buf::RingBufEntry;
use tracer_common::{Counter, EventKind};

use crate::{context::count_kind, maps::EVENTS};

/// Reserves room for one event in the ring buffer, counting the attempt and, when the buffer is
/// full, the drop — per event kind, so the agent can report exact loss.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    count_kind(Counter::Produced, kind as u32);
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_kind(Counter::Dropped, kind as u32);
    }
    entry
}

/// Maps a `try_*` result to the program's return code (tracepoint return values are ignored by
/// the kernel; 0 keeps the convention).
#[inline(always)]
pub fn ret(result: Result<(), i32>) -> u32 {
    match result {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
