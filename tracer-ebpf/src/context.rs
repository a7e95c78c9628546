//! Helpers shared by the probe families: configuration access, the task's memcg id, event
//! headers and counters.
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_smp_processor_id,
    bpf_ktime_get_ns, bpf_probe_read_kernel,
};
use tracer_common::{Counter, EventHeader, TpField, CONFIG_TASK_MEMCG_WALK};

use crate::maps::{CONFIG, COUNTERS};

/// Reads one field of the load-time configuration. Volatile so the compiler does not fold the
/// zero-initialised value in: the agent rewrites `.rodata` before load.
macro_rules! config {
    ($field:ident) => {{
        // `expect` would be unfulfilled where the macro is expanded outside an unsafe block.
        #[allow(
            unused_unsafe,
            reason = "expanded both inside and outside unsafe blocks"
        )]
        // SAFETY: CONFIG is a plain-old-data global; reading it volatile is always valid.
        let value = unsafe { core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$field) };
        value
    }};
}
pub(crate) use config;

/// Offset of a tracepoint field, from the tracefs `format` file via the agent.
#[inline(always)]
pub fn tp_offset(field: TpField) -> usize {
    let idx = field as usize;
    // Bounded by the array type; indexing a constant index cannot fail.
    unsafe { core::ptr::read_volatile(&raw const CONFIG.tp[idx]) as usize }
}

#[inline(always)]
pub fn count(counter: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter) {
        // Per-CPU slot: no other writer on this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn count_kind(base: Counter, kind: u32) {
    count(base as u32 + kind);
}

/// (tgid, tid) of the current task.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// True when the event comes from the agent itself and must not be recorded.
#[inline(always)]
pub fn is_agent(tgid: u32) -> bool {
    let agent = config!(agent_tgid);
    if agent != 0 && agent == tgid {
        count(Counter::SelfFiltered as u32);
        return true;
    }
    false
}

/// True when a memcg filter is set and `memcg_id` is not it.
#[inline(always)]
pub fn filtered_out(memcg_id: u64) -> bool {
    let only = config!(only_memcg_id);
    only != 0 && only != memcg_id
}

#[inline(always)]
unsafe fn read_ptr(base: u64, offset: u32) -> Result<u64, i32> {
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const u64) }
}

/// `cgroup_id(css->cgroup)` for a `cgroup_subsys_state *`: css->cgroup->kn->id.
#[inline(always)]
pub unsafe fn css_cgroup_id(css: u64) -> Result<u64, i32> {
    if css == 0 {
        return Err(-1);
    }
    let cgroup = unsafe { read_ptr(css, config!(off_css_cgroup))? };
    if cgroup == 0 {
        return Err(-1);
    }
    let kn = unsafe { read_ptr(cgroup, config!(off_cgroup_kn))? };
    if kn == 0 {
        return Err(-1);
    }
    unsafe { read_ptr(kn, config!(off_kn_id)) }
}

/// Memcg id of a task: task->cgroups->subsys[memory_cgrp_id] is the memory css the task is
/// charged to (on v2 the nearest ancestor with the controller enabled, which is exactly the memcg
/// the kernel charges), then its cgroup's kernfs id. Works on v1, v2 and hybrid hosts, unlike
/// `bpf_get_current_cgroup_id()` which only sees the v2 hierarchy. Returns 0 when the offsets are
/// not configured or a read fails.
#[inline(always)]
pub unsafe fn task_memcg_id(task: u64) -> u64 {
    if config!(flags) & CONFIG_TASK_MEMCG_WALK == 0 || task == 0 {
        return 0;
    }
    let walk = || -> Result<u64, i32> {
        let cgroups = unsafe { read_ptr(task, config!(off_task_cgroups))? };
        if cgroups == 0 {
            return Err(-1);
        }
        // memory_cgrp_id is small (< 16), enforced when the agent fills the config.
        let slot = config!(off_css_set_subsys) + (config!(memory_cgrp_id) & 0xf) * 8;
        let css = unsafe { read_ptr(cgroups, slot)? };
        unsafe { css_cgroup_id(css) }
    };
    walk().unwrap_or(0)
}

#[inline(always)]
pub fn current_memcg_id() -> u64 {
    unsafe { task_memcg_id(bpf_get_current_task()) }
}

/// Fills an event header in place (ring-buffer memory, never a stack copy).
#[inline(always)]
pub fn fill_header(header: &mut EventHeader, kind: u32, tgid: u32, tid: u32, memcg_id: u64) {
    header.kind = kind;
    header.cpu = unsafe { bpf_get_smp_processor_id() };
    header.ts_ns = unsafe { bpf_ktime_get_ns() };
    header.tgid = tgid;
    header.tid = tid;
    header.memcg_id = memcg_id;
    header.comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
}

#[inline(always)]
pub fn now_ns() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}
