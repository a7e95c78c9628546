//! Reclaim begin/end pairs, joined per task in the kernel (like libbpf-tools' drsnoop): the begin
//! is stored in a bounded LRU table keyed by (tid, kind) and the end emits one event with the
//! latency. An end without a begin (agent started mid-reclaim, or the begin was evicted) is still
//! emitted, flagged, so the agent never silently loses a reclaim.
//!
//! Reclaim tracepoints carry no memcg: they fire in the context of the task whose charge or
//! allocation needed reclaim, so the event is attributed to that task's memcg.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    Counter, EventKind, KswapdWakeEvent, ReclaimEvent, ReclaimKind, TpField, RECLAIM_MISSING_BEGIN,
};

use super::{reserve, ret};
use crate::{
    context::{
        count, current_ids, current_memcg_id, fill_header, filtered_out, is_agent, now_ns,
        tp_offset,
    },
    maps::{ReclaimStart, RECLAIM_START},
};

// name: mm_vmscan_memcg_reclaim_begin (same class: mm_vmscan_memcg_softlimit_reclaim_begin,
// mm_vmscan_direct_reclaim_begin)
// format:
//	field:int order;	offset:8;	size:4;	signed:1;
//	field:unsigned long gfp_flags;	offset:16;	size:8;	signed:0;
// name: mm_vmscan_memcg_reclaim_end (same class: ..._softlimit_reclaim_end, ..._direct_reclaim_end)
// format:
//	field:unsigned long nr_reclaimed;	offset:8;	size:8;	signed:0;

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim_begin(ctx: TracePointContext) -> u32 {
    ret(try_begin(&ctx, ReclaimKind::Memcg))
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end(ctx: TracePointContext) -> u32 {
    ret(try_end(&ctx, ReclaimKind::Memcg))
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_softlimit_reclaim_begin")]
pub fn softlimit_reclaim_begin(ctx: TracePointContext) -> u32 {
    ret(try_begin(&ctx, ReclaimKind::Softlimit))
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_softlimit_reclaim_end")]
pub fn softlimit_reclaim_end(ctx: TracePointContext) -> u32 {
    ret(try_end(&ctx, ReclaimKind::Softlimit))
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_direct_reclaim_begin")]
pub fn direct_reclaim_begin(ctx: TracePointContext) -> u32 {
    ret(try_begin(&ctx, ReclaimKind::Direct))
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_direct_reclaim_end")]
pub fn direct_reclaim_end(ctx: TracePointContext) -> u32 {
    ret(try_end(&ctx, ReclaimKind::Direct))
}

#[inline(always)]
fn pairing_key(tid: u32, kind: ReclaimKind) -> u64 {
    ((tid as u64) << 8) | kind as u64
}

#[inline(always)]
fn try_begin(ctx: &TracePointContext, kind: ReclaimKind) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let order: i32 = unsafe { ctx.read_at(tp_offset(TpField::ReclaimBeginOrder))? };
    let gfp_flags: u64 = unsafe { ctx.read_at(tp_offset(TpField::ReclaimBeginGfp))? };
    let start = ReclaimStart {
        ts_ns: now_ns(),
        gfp_flags,
        order,
        _pad: 0,
    };
    if RECLAIM_START
        .insert(pairing_key(tid, kind), start, 0)
        .is_err()
    {
        count(Counter::PairingStoreFailed as u32);
    }
    Ok(())
}

#[inline(always)]
fn try_end(ctx: &TracePointContext, kind: ReclaimKind) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let nr_reclaimed: u64 = unsafe { ctx.read_at(tp_offset(TpField::ReclaimEndNr))? };
    let key = pairing_key(tid, kind);
    // Copy out before removing: the value memory is recycled on delete.
    let start = unsafe { RECLAIM_START.get(key) }.copied();
    if start.is_some() {
        let _ = RECLAIM_START.remove(key);
    }
    let memcg_id = current_memcg_id();
    if filtered_out(memcg_id) {
        return Ok(());
    }
    let Some(mut entry) = reserve::<ReclaimEvent>(EventKind::Reclaim) else {
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut ev.header,
        EventKind::Reclaim as u32,
        tgid,
        tid,
        memcg_id,
    );
    ev.nr_reclaimed = nr_reclaimed;
    ev.reclaim_kind = kind as u32;
    ev._pad = 0;
    match start {
        Some(start) => {
            ev.latency_ns = ev.header.ts_ns.saturating_sub(start.ts_ns);
            ev.gfp_flags = start.gfp_flags;
            ev.order = start.order;
            ev.flags = 0;
        }
        None => {
            count(Counter::ReclaimMissingBegin as u32);
            ev.latency_ns = 0;
            ev.gfp_flags = 0;
            ev.order = 0;
            ev.flags = RECLAIM_MISSING_BEGIN;
        }
    }
    entry.submit(0);
    Ok(())
}

// name: mm_vmscan_wakeup_kswapd
// format:
//	field:int nid;	offset:8;	size:4;	signed:1;
//	field:int zid;	offset:12;	size:4;	signed:1;
//	field:int order;	offset:16;	size:4;	signed:1;
//	field:unsigned long gfp_flags;	offset:24;	size:8;	signed:0;

/// kswapd wake-ups: node-level pressure, the context in which memcg reclaim competes.
#[tracepoint(category = "vmscan", name = "mm_vmscan_wakeup_kswapd")]
pub fn wakeup_kswapd(ctx: TracePointContext) -> u32 {
    ret(try_wakeup_kswapd(&ctx))
}

#[inline(always)]
fn try_wakeup_kswapd(ctx: &TracePointContext) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let memcg_id = current_memcg_id();
    if filtered_out(memcg_id) {
        return Ok(());
    }
    let Some(mut entry) = reserve::<KswapdWakeEvent>(EventKind::KswapdWake) else {
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut ev.header,
        EventKind::KswapdWake as u32,
        tgid,
        tid,
        memcg_id,
    );
    let fields = unsafe {
        (
            ctx.read_at::<i32>(tp_offset(TpField::KswapdNid)),
            ctx.read_at::<i32>(tp_offset(TpField::KswapdZid)),
            ctx.read_at::<i32>(tp_offset(TpField::KswapdOrder)),
            ctx.read_at::<u64>(tp_offset(TpField::KswapdGfp)),
        )
    };
    ev.nid = fields.0.unwrap_or(-1);
    ev.zid = fields.1.unwrap_or(-1);
    ev.order = fields.2.unwrap_or(-1);
    ev.gfp_flags = fields.3.unwrap_or(0);
    ev._pad = 0;
    entry.submit(0);
    Ok(())
}
