//! cgroup lifecycle (`cgroup:cgroup_mkdir` / `cgroup:cgroup_rmdir`): keeps the agent's
//! id -> path cache right and lets it close the state of removed cgroups. Fires for every
//! hierarchy; the agent keeps the memory hierarchy's by `hierarchy_id`.
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::tracepoint, programs::TracePointContext,
    EbpfContext,
};
use tracer_common::{CgroupEvent, EventKind, TpField, CGROUP_PATH_LEN, CGROUP_PATH_TRUNCATED};

use super::{reserve, ret};
use crate::context::{current_ids, current_memcg_id, fill_header, tp_offset};

// name: cgroup_mkdir (same class: cgroup_rmdir)
// format:
//	field:int root;	offset:8;	size:4;	signed:1;
//	field:int level;	offset:12;	size:4;	signed:1;
//	field:u64 id;	offset:16;	size:8;	signed:0;
//	field:__data_loc char[] path;	offset:24;	size:4;	signed:0;

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    ret(try_lifecycle(&ctx, EventKind::CgroupMkdir))
}

#[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    ret(try_lifecycle(&ctx, EventKind::CgroupRmdir))
}

#[inline(always)]
fn try_lifecycle(ctx: &TracePointContext, kind: EventKind) -> Result<(), i32> {
    let (tgid, tid) = current_ids();
    let memcg_id = current_memcg_id();
    let Some(mut entry) = reserve::<CgroupEvent>(kind) else {
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(&mut ev.header, kind as u32, tgid, tid, memcg_id);
    ev._pad = 0;
    ev.flags = 0;
    ev.path = [0u8; CGROUP_PATH_LEN];
    unsafe {
        ev.hierarchy_id = ctx.read_at(tp_offset(TpField::CgroupRoot)).unwrap_or(-1);
        ev.level = ctx.read_at(tp_offset(TpField::CgroupLevel)).unwrap_or(-1);
        ev.cgroup_id = ctx.read_at(tp_offset(TpField::CgroupId)).unwrap_or(0);
        if let Ok(loc) = ctx.read_at::<u32>(tp_offset(TpField::CgroupPath)) {
            let len = (loc >> 16) as usize;
            if len > CGROUP_PATH_LEN {
                ev.flags = CGROUP_PATH_TRUNCATED;
            }
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut ev.path);
        }
    }
    entry.submit(0);
    Ok(())
}
