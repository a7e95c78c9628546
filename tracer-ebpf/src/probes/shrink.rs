//! Slab shrinking (`mm_shrink_slab_start/end`), joined per task like reclaim: how many objects a
//! shrinker (the dcache/icache shrinker among them) was asked to scan and how many it freed.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{Counter, EventKind, ShrinkSlabEvent, TpField, SHRINK_MISSING_START};

use super::{reserve, ret};
use crate::{
    context::{
        count, current_ids, current_memcg_id, fill_header, filtered_out, is_agent, now_ns,
        tp_offset,
    },
    maps::{ShrinkStart, SHRINK_START},
};

// name: mm_shrink_slab_start
// format:
//	field:struct shrinker * shr;	offset:8;	size:8;	signed:0;
//	field:void * shrink;	offset:16;	size:8;	signed:0;
//	field:int nid;	offset:24;	size:4;	signed:1;
//	field:long nr_objects_to_shrink;	offset:32;	size:8;	signed:1;
//	field:unsigned long gfp_flags;	offset:40;	size:8;	signed:0;
//	field:unsigned long cache_items;	offset:48;	size:8;	signed:0;
//	field:unsigned long long delta;	offset:56;	size:8;	signed:0;
//	field:unsigned long total_scan;	offset:64;	size:8;	signed:0;
//	field:int priority;	offset:72;	size:4;	signed:1;
// name: mm_shrink_slab_end
// format:
//	field:struct shrinker * shr;	offset:8;	size:8;	signed:0;
//	field:int nid;	offset:16;	size:4;	signed:1;
//	field:void * shrink;	offset:24;	size:8;	signed:0;
//	field:long unused_scan;	offset:32;	size:8;	signed:1;
//	field:long new_scan;	offset:40;	size:8;	signed:1;
//	field:int retval;	offset:48;	size:4;	signed:1;
//	field:long total_scan;	offset:56;	size:8;	signed:1;

#[tracepoint(category = "vmscan", name = "mm_shrink_slab_start")]
pub fn shrink_slab_start(ctx: TracePointContext) -> u32 {
    ret(try_start(&ctx))
}

#[tracepoint(category = "vmscan", name = "mm_shrink_slab_end")]
pub fn shrink_slab_end(ctx: TracePointContext) -> u32 {
    ret(try_end(&ctx))
}

#[inline(always)]
fn try_start(ctx: &TracePointContext) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let start = unsafe {
        ShrinkStart {
            ts_ns: now_ns(),
            shrinker: ctx.read_at(tp_offset(TpField::ShrinkStartShr))?,
            shrink_fn: ctx.read_at(tp_offset(TpField::ShrinkStartShrink))?,
            nr_objects_to_shrink: ctx.read_at(tp_offset(TpField::ShrinkStartNrObjects))?,
            cache_items: ctx.read_at(tp_offset(TpField::ShrinkStartCacheItems))?,
            total_scan: ctx.read_at(tp_offset(TpField::ShrinkStartTotalScan))?,
            gfp_flags: ctx.read_at(tp_offset(TpField::ShrinkStartGfp))?,
            nid: ctx.read_at(tp_offset(TpField::ShrinkStartNid))?,
            priority: ctx.read_at(tp_offset(TpField::ShrinkStartPriority))?,
        }
    };
    if SHRINK_START.insert(tid, start, 0).is_err() {
        count(Counter::PairingStoreFailed as u32);
    }
    Ok(())
}

#[inline(always)]
fn try_end(ctx: &TracePointContext) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let freed: i32 = unsafe { ctx.read_at(tp_offset(TpField::ShrinkEndRetval))? };
    let start = unsafe { SHRINK_START.get(tid) }.copied();
    if start.is_some() {
        let _ = SHRINK_START.remove(tid);
    }
    let memcg_id = current_memcg_id();
    if filtered_out(memcg_id) {
        return Ok(());
    }
    let Some(mut entry) = reserve::<ShrinkSlabEvent>(EventKind::ShrinkSlab) else {
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut ev.header,
        EventKind::ShrinkSlab as u32,
        tgid,
        tid,
        memcg_id,
    );
    ev.freed = freed as i64;
    ev._pad = 0;
    match start {
        Some(s) => {
            ev.shrinker = s.shrinker;
            ev.shrink_fn = s.shrink_fn;
            ev.nr_objects_to_shrink = s.nr_objects_to_shrink;
            ev.cache_items = s.cache_items;
            ev.total_scan = s.total_scan;
            ev.gfp_flags = s.gfp_flags;
            ev.nid = s.nid;
            ev.priority = s.priority;
            ev.latency_ns = ev.header.ts_ns.saturating_sub(s.ts_ns);
            ev.flags = 0;
        }
        None => {
            count(Counter::ShrinkMissingStart as u32);
            ev.shrinker = 0;
            ev.shrink_fn = 0;
            ev.nr_objects_to_shrink = 0;
            ev.cache_items = 0;
            ev.total_scan = 0;
            ev.gfp_flags = 0;
            ev.nid = -1;
            ev.priority = -1;
            ev.latency_ns = 0;
            ev.flags = SHRINK_MISSING_START;
        }
    }
    entry.submit(0);
    Ok(())
}
