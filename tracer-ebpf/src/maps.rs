//! Maps and the load-time configuration shared by all probe families.
use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use tracer_common::{DentryValue, ProbeConfig, StatKey, StatValue, COUNTER_SLOTS};

/// Written by the agent before load (offsets from BTF and tracefs, its own tgid, filters).
#[unsafe(no_mangle)]
pub static CONFIG: ProbeConfig = ProbeConfig::zeroed();

/// Discrete events (reclaim pairs, OOM, cgroup lifecycle, slab shrinks, kswapd wake-ups).
/// The agent sizes it at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Per-CPU counters indexed by `tracer_common::Counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Running sums of memcg stat tracepoints per (memcg, family, item); the agent diffs them.
#[map]
pub static MEMCG_STATS: PerCpuHashMap<StatKey, StatValue> =
    PerCpuHashMap::with_max_entries(16384, 0);

/// Running dentry-cache allocation counts per memcg.
#[map]
pub static DENTRY_ALLOCS: PerCpuHashMap<u64, DentryValue> =
    PerCpuHashMap::with_max_entries(4096, 0);

/// Open reclaim episodes keyed by `tid << 8 | ReclaimKind` (soft-limit reclaim nests inside
/// direct reclaim on the same task, so the kind is part of the key). LRU: a lost end can never
/// fill the table.
#[map]
pub static RECLAIM_START: LruHashMap<u64, ReclaimStart> = LruHashMap::with_max_entries(10240, 0);

/// Open slab-shrink calls keyed by tid.
#[map]
pub static SHRINK_START: LruHashMap<u32, ShrinkStart> = LruHashMap::with_max_entries(10240, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReclaimStart {
    pub ts_ns: u64,
    pub gfp_flags: u64,
    pub order: i32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ShrinkStart {
    pub ts_ns: u64,
    pub shrinker: u64,
    pub shrink_fn: u64,
    pub nr_objects_to_shrink: i64,
    pub cache_items: u64,
    pub total_scan: u64,
    pub gfp_flags: u64,
    pub nid: i32,
    pub priority: i32,
}
