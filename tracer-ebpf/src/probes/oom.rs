//! OOM victims (`oom:mark_victim`).
//!
//! The tracepoint carries the victim's pid but not its memcg. It fires in the context of the task
//! that ran the OOM killer; for a memcg OOM that task was charging the OOM'ing memcg, so its memcg
//! (the header's) is inside the OOM'ing subtree. The agent refines it to the victim's own memcg
//! from /proc/<pid>/cgroup while the victim still exists.
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::tracepoint, programs::TracePointContext,
    EbpfContext,
};
use tracer_common::{EventKind, OomVictimEvent, TpField};

use super::{reserve, ret};
use crate::context::{current_ids, current_memcg_id, fill_header, tp_offset};

// name: mark_victim
// format:
//	field:int pid;	offset:8;	size:4;	signed:1;
//	field:__data_loc char[] comm;	offset:12;	size:4;	signed:0;
//	field:unsigned long total_vm;	offset:16;	size:8;	signed:0;
//	field:unsigned long anon_rss;	offset:24;	size:8;	signed:0;
//	field:unsigned long file_rss;	offset:32;	size:8;	signed:0;
//	field:unsigned long shmem_rss;	offset:40;	size:8;	signed:0;
//	field:uid_t uid;	offset:48;	size:4;	signed:0;
//	field:unsigned long pgtables;	offset:56;	size:8;	signed:0;
//	field:short oom_score_adj;	offset:64;	size:2;	signed:1;

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn mark_victim(ctx: TracePointContext) -> u32 {
    ret(try_mark_victim(&ctx))
}

#[inline(always)]
fn try_mark_victim(ctx: &TracePointContext) -> Result<(), i32> {
    // No agent/memcg filtering here: an OOM kill is rare and always worth reporting.
    let (tgid, tid) = current_ids();
    let memcg_id = current_memcg_id();
    let Some(mut entry) = reserve::<OomVictimEvent>(EventKind::OomVictim) else {
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut ev.header,
        EventKind::OomVictim as u32,
        tgid,
        tid,
        memcg_id,
    );
    ev.victim_memcg_id = 0;
    ev._pad = 0;
    unsafe {
        ev.victim_pid = ctx.read_at::<i32>(tp_offset(TpField::OomPid)).unwrap_or(-1) as u32;
        ev.total_vm_kb = ctx.read_at(tp_offset(TpField::OomTotalVm)).unwrap_or(0);
        ev.anon_rss_kb = ctx.read_at(tp_offset(TpField::OomAnonRss)).unwrap_or(0);
        ev.file_rss_kb = ctx.read_at(tp_offset(TpField::OomFileRss)).unwrap_or(0);
        ev.shmem_rss_kb = ctx.read_at(tp_offset(TpField::OomShmemRss)).unwrap_or(0);
        ev.pgtables_kb = ctx.read_at(tp_offset(TpField::OomPgtables)).unwrap_or(0);
        ev.uid = ctx.read_at(tp_offset(TpField::OomUid)).unwrap_or(u32::MAX);
        ev.oom_score_adj = ctx
            .read_at::<i16>(tp_offset(TpField::OomScoreAdj))
            .unwrap_or(0) as i32;
        ev.victim_comm = [0u8; 16];
        // __data_loc: low 16 bits = offset of the string in the record, high 16 bits = length.
        if let Ok(loc) = ctx.read_at::<u32>(tp_offset(TpField::OomComm)) {
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut ev.victim_comm);
        }
    }
    entry.submit(0);
    Ok(())
}
