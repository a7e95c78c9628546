//! memcg stat/charge tracepoints (Linux 6.13+): aggregated per (memcg, family, item) in a per-CPU
//! map; never streamed. The agent names `item` from the kernel's BTF enums.
use aya_ebpf::{
    cty::c_void,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{Counter, StatFamily, StatKey, StatValue, TpField};

use super::ret;
use crate::{
    context::{config, count, css_cgroup_id, current_ids, filtered_out, is_agent, tp_offset},
    maps::MEMCG_STATS,
};

// name: mod_memcg_state
// format:
//	field:u64 id;	offset:8;	size:8;	signed:0;
//	field:int item;	offset:16;	size:4;	signed:1;
//	field:int val;	offset:20;	size:4;	signed:1;
// name: mod_memcg_lruvec_state — same fields as mod_memcg_state.
// name: count_memcg_events
//	field:u64 id;	offset:8;	size:8;	signed:0;
//	field:int item;	offset:16;	size:4;	signed:1;
//	field:unsigned long val;	offset:24;	size:8;	signed:0;
// Offsets are taken from the running kernel's format files by the agent (ProbeConfig::tp).

#[tracepoint(category = "memcg", name = "mod_memcg_state")]
pub fn memcg_state(ctx: TracePointContext) -> u32 {
    ret(try_classic(&ctx, StatFamily::MemcgState))
}

#[tracepoint(category = "memcg", name = "mod_memcg_lruvec_state")]
pub fn memcg_lruvec_state(ctx: TracePointContext) -> u32 {
    ret(try_classic(&ctx, StatFamily::LruvecState))
}

#[tracepoint(category = "memcg", name = "count_memcg_events")]
pub fn memcg_events(ctx: TracePointContext) -> u32 {
    ret(try_classic(&ctx, StatFamily::Events))
}

// tp_btf variants: TP_PROTO(struct mem_cgroup *memcg, int item, int val) for the two state
// tracepoints and (struct mem_cgroup *memcg, int item, unsigned long val) for events. About half
// the cost of a classic tracepoint per hit on these machines (platform.md), which matters here:
// these fire several times per faulted page.

#[btf_tracepoint(function = "mod_memcg_state")]
pub fn memcg_state_btf(ctx: BtfTracePointContext) -> u32 {
    ret(try_btf(&ctx, StatFamily::MemcgState))
}

#[btf_tracepoint(function = "mod_memcg_lruvec_state")]
pub fn memcg_lruvec_state_btf(ctx: BtfTracePointContext) -> u32 {
    ret(try_btf(&ctx, StatFamily::LruvecState))
}

#[btf_tracepoint(function = "count_memcg_events")]
pub fn memcg_events_btf(ctx: BtfTracePointContext) -> u32 {
    ret(try_btf(&ctx, StatFamily::Events))
}

#[inline(always)]
fn try_classic(ctx: &TracePointContext, family: StatFamily) -> Result<(), i32> {
    let (tgid, _) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let (id_f, item_f, val_f) = match family {
        StatFamily::MemcgState => (
            TpField::MemcgStateId,
            TpField::MemcgStateItem,
            TpField::MemcgStateVal,
        ),
        StatFamily::LruvecState => (
            TpField::LruvecStateId,
            TpField::LruvecStateItem,
            TpField::LruvecStateVal,
        ),
        StatFamily::Events => (TpField::EventsId, TpField::EventsItem, TpField::EventsVal),
    };
    let memcg_id: u64 = unsafe { ctx.read_at(tp_offset(id_f))? };
    let item: i32 = unsafe { ctx.read_at(tp_offset(item_f))? };
    let val: i64 = match family {
        StatFamily::Events => unsafe { ctx.read_at::<u64>(tp_offset(val_f))? as i64 },
        _ => unsafe { ctx.read_at::<i32>(tp_offset(val_f))? as i64 },
    };
    add(memcg_id, family, item, val);
    Ok(())
}

#[inline(always)]
fn try_btf(ctx: &BtfTracePointContext, family: StatFamily) -> Result<(), i32> {
    let (tgid, _) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let memcg: *const c_void = ctx.arg(0);
    let item: i32 = ctx.arg(1);
    let val: i64 = match family {
        StatFamily::Events => {
            let v: u64 = ctx.arg(2);
            v as i64
        }
        _ => {
            let v: i32 = ctx.arg(2);
            v as i64
        }
    };
    let memcg_id = unsafe { css_cgroup_id(memcg as u64 + config!(off_memcg_css) as u64)? };
    add(memcg_id, family, item, val);
    Ok(())
}

#[inline(always)]
fn add(memcg_id: u64, family: StatFamily, item: i32, val: i64) {
    if filtered_out(memcg_id) {
        return;
    }
    let key = StatKey {
        memcg_id,
        family: family as u32,
        item: item as u32,
    };
    if let Some(value) = MEMCG_STATS.get_ptr_mut(key) {
        // Per-CPU value: this CPU is the only writer while the program runs.
        unsafe {
            (*value).sum += val;
            (*value).hits += 1;
        }
        return;
    }
    let value = StatValue { sum: val, hits: 1 };
    if MEMCG_STATS.insert(key, value, 0).is_err() {
        count(Counter::StatMapFull as u32);
    }
}
