//! Wire types shared by the eBPF programs (`tracer-ebpf`) and the agent (`tracer`).
//!
//! Every type is `#[repr(C)]` with fixed-width fields and explicit padding so both sides agree on
//! the layout byte for byte; sizes are asserted at compile time. Streamed events start with an
//! [`EventHeader`] whose `kind` tags the rest of the record. With the `user` feature the types
//! implement `aya::Pod` so the agent can read them out of maps and write load-time globals.
#![no_std]

use core::mem::size_of;

/// Bump when a wire layout changes; the agent refuses an object built for another version.
pub const WIRE_VERSION: u32 = 1;

/// Length of a kernel task `comm`.
pub const COMM_LEN: usize = 16;
/// Longest cgroup path carried by a lifecycle event (longer paths are truncated, flagged).
pub const CGROUP_PATH_LEN: usize = 256;

/// Tags the record that follows an [`EventHeader`] in the ring buffer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Reclaim = 1,
    OomVictim = 2,
    CgroupMkdir = 3,
    CgroupRmdir = 4,
    ShrinkSlab = 5,
    KswapdWake = 6,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Reclaim,
        EventKind::OomVictim,
        EventKind::CgroupMkdir,
        EventKind::CgroupRmdir,
        EventKind::ShrinkSlab,
        EventKind::KswapdWake,
    ];

    pub fn from_u32(v: u32) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| *k as u32 == v)
    }
}

/// First bytes of every streamed event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event completed.
    pub ts_ns: u64,
    /// Task context the event fired in (for OOM: the task that ran the OOM killer).
    pub tgid: u32,
    pub tid: u32,
    /// Memory cgroup (memcg) id of the task context: `cgroup_id(memcg->css.cgroup)`, which is the
    /// inode number of the memcg's cgroupfs directory. 0 when it could not be read.
    pub memcg_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// Which reclaim entry point a [`ReclaimEvent`] pairs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReclaimKind {
    /// `mm_vmscan_memcg_reclaim_begin/end`: a charge hit a memcg limit (or memory.high).
    Memcg = 1,
    /// `mm_vmscan_memcg_softlimit_reclaim_begin/end` (v1 soft limit, global pressure).
    Softlimit = 2,
    /// `mm_vmscan_direct_reclaim_begin/end`: global (node) memory pressure.
    Direct = 3,
}

impl ReclaimKind {
    pub fn from_u32(v: u32) -> Option<ReclaimKind> {
        match v {
            1 => Some(ReclaimKind::Memcg),
            2 => Some(ReclaimKind::Softlimit),
            3 => Some(ReclaimKind::Direct),
            _ => None,
        }
    }
}

/// `ReclaimEvent::flags`: the end fired with no recorded begin (agent started mid-reclaim, or the
/// begin was evicted from the bounded pairing table). Latency and order are then unknown (0).
pub const RECLAIM_MISSING_BEGIN: u32 = 1;

/// One reclaim episode: a begin/end pair joined per task in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReclaimEvent {
    pub header: EventHeader,
    pub latency_ns: u64,
    pub nr_reclaimed: u64,
    pub gfp_flags: u64,
    pub order: i32,
    /// A [`ReclaimKind`] value.
    pub reclaim_kind: u32,
    pub flags: u32,
    pub _pad: u32,
}

/// `oom:mark_victim`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomVictimEvent {
    pub header: EventHeader,
    /// memcg of the victim task itself when the program could read it (tp_btf), else 0.
    pub victim_memcg_id: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub victim_pid: u32,
    pub uid: u32,
    pub oom_score_adj: i32,
    pub _pad: u32,
    pub victim_comm: [u8; COMM_LEN],
}

/// `CgroupEvent::flags`: the path did not fit in [`CGROUP_PATH_LEN`] bytes.
pub const CGROUP_PATH_TRUNCATED: u32 = 1;

/// `cgroup:cgroup_mkdir` / `cgroup:cgroup_rmdir` (kind in the header).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    pub header: EventHeader,
    pub cgroup_id: u64,
    /// Hierarchy id (`root`): which cgroupfs mount the cgroup belongs to.
    pub hierarchy_id: i32,
    pub level: i32,
    pub flags: u32,
    pub _pad: u32,
    /// NUL-terminated path relative to the hierarchy root, e.g. `/docker/abc`.
    pub path: [u8; CGROUP_PATH_LEN],
}

/// One `mm_shrink_slab_start/end` pair, joined per task.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShrinkSlabEvent {
    pub header: EventHeader,
    /// Kernel address of the `struct shrinker`; the agent names it via the `shrink` symbol.
    pub shrinker: u64,
    /// Kernel address of the shrinker's scan function (`%pS` in the format).
    pub shrink_fn: u64,
    pub nr_objects_to_shrink: i64,
    pub cache_items: u64,
    pub total_scan: u64,
    pub freed: i64,
    pub latency_ns: u64,
    pub gfp_flags: u64,
    pub nid: i32,
    pub priority: i32,
    pub flags: u32,
    pub _pad: u32,
}

/// `ShrinkSlabEvent::flags`: end without a recorded start.
pub const SHRINK_MISSING_START: u32 = 1;

/// `vmscan:mm_vmscan_wakeup_kswapd`: global pressure context for memcg reclaim.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KswapdWakeEvent {
    pub header: EventHeader,
    pub gfp_flags: u64,
    pub nid: i32,
    pub zid: i32,
    pub order: i32,
    pub _pad: u32,
}

/// Which memcg tracepoint a [`StatKey`] counts; `item` indexes a different kernel enum for each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatFamily {
    /// `memcg:mod_memcg_state`, item in `enum memcg_stat_item` (continues `node_stat_item`).
    MemcgState = 1,
    /// `memcg:mod_memcg_lruvec_state`, item in `enum node_stat_item`.
    LruvecState = 2,
    /// `memcg:count_memcg_events`, item in `enum vm_event_item`.
    Events = 3,
}

impl StatFamily {
    pub fn from_u32(v: u32) -> Option<StatFamily> {
        match v {
            1 => Some(StatFamily::MemcgState),
            2 => Some(StatFamily::LruvecState),
            3 => Some(StatFamily::Events),
            _ => None,
        }
    }
}

/// Key of the per-CPU stat aggregation map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatKey {
    pub memcg_id: u64,
    /// A [`StatFamily`] value.
    pub family: u32,
    pub item: u32,
}

/// Value of the per-CPU stat aggregation map: running sums since load (the agent diffs them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatValue {
    /// Sum of `val` (pages for state items, event counts for events; some items are in bytes).
    pub sum: i64,
    /// Number of tracepoint hits.
    pub hits: u64,
}

/// Value of the per-CPU dentry allocation map, keyed by memcg id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DentryValue {
    pub allocs: u64,
    pub bytes: u64,
}

/// Indices of the per-CPU `COUNTERS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Ring-buffer reserves attempted, per event kind: `Produced + kind` (kinds 1..=6).
    Produced = 0,
    /// Ring-buffer reserves that failed, per event kind: `Dropped + kind`.
    Dropped = 8,
    /// Stat aggregation updates that failed (map full).
    StatMapFull = 16,
    /// Dentry aggregation updates that failed (map full).
    DentryMapFull = 17,
    /// Reclaim/shrink begin records that could not be stored (pairing table update failed).
    PairingStoreFailed = 18,
    /// Reclaim ends with no begin.
    ReclaimMissingBegin = 19,
    /// Shrink ends with no start.
    ShrinkMissingStart = 20,
    /// Events from the agent's own tgid skipped in the kernel.
    SelfFiltered = 21,
}

/// Size of the `COUNTERS` array.
pub const COUNTER_SLOTS: u32 = 24;

/// Offsets of tracepoint fields, read by the agent from tracefs `format` files at start-up and
/// handed to the programs in [`ProbeConfig::tp`]. Index with a [`TpField`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TpField {
    MemcgStateId = 0,
    MemcgStateItem,
    MemcgStateVal,
    LruvecStateId,
    LruvecStateItem,
    LruvecStateVal,
    EventsId,
    EventsItem,
    EventsVal,
    ReclaimBeginOrder,
    ReclaimBeginGfp,
    ReclaimEndNr,
    OomPid,
    OomComm,
    OomTotalVm,
    OomAnonRss,
    OomFileRss,
    OomShmemRss,
    OomUid,
    OomPgtables,
    OomScoreAdj,
    CgroupRoot,
    CgroupLevel,
    CgroupId,
    CgroupPath,
    ShrinkStartShr,
    ShrinkStartShrink,
    ShrinkStartNid,
    ShrinkStartNrObjects,
    ShrinkStartGfp,
    ShrinkStartCacheItems,
    ShrinkStartTotalScan,
    ShrinkStartPriority,
    ShrinkEndRetval,
    KswapdNid,
    KswapdZid,
    KswapdOrder,
    KswapdGfp,
    KmemName,
    KmemBytesAlloc,
}

/// Number of slots in [`ProbeConfig::tp`].
pub const TP_FIELD_SLOTS: usize = 48;

/// `ProbeConfig::flags`: the kernel-struct offsets below are valid, so programs may walk
/// `current->cgroups->subsys[memory]->cgroup->kn->id` to find the task's memcg.
pub const CONFIG_TASK_MEMCG_WALK: u32 = 1;

/// Load-time configuration of the programs (a global, written by the agent before load).
///
/// Rust eBPF has no CO-RE relocations, so every kernel-struct offset comes from the running
/// kernel's BTF and every tracepoint field offset from its tracefs `format` file.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProbeConfig {
    pub wire_version: u32,
    pub flags: u32,
    /// The agent's own tgid: its events are not recorded.
    pub agent_tgid: u32,
    /// `memory_cgrp_id` from `enum cgroup_subsys_id`.
    pub memory_cgrp_id: u32,
    /// When non-zero, only events charged to this memcg id are recorded (tests pin their cgroup).
    pub only_memcg_id: u64,
    pub off_task_cgroups: u32,
    pub off_css_set_subsys: u32,
    pub off_css_cgroup: u32,
    pub off_cgroup_kn: u32,
    pub off_kn_id: u32,
    /// Offset of `css` inside `struct mem_cgroup` (tp_btf programs get a `mem_cgroup *`).
    pub off_memcg_css: u32,
    pub off_kmem_cache_name: u32,
    pub off_kmem_cache_size: u32,
    /// Tracepoint field offsets, indexed by [`TpField`].
    pub tp: [u16; TP_FIELD_SLOTS],
}

impl ProbeConfig {
    pub const fn zeroed() -> ProbeConfig {
        ProbeConfig {
            wire_version: WIRE_VERSION,
            flags: 0,
            agent_tgid: 0,
            memory_cgrp_id: 0,
            only_memcg_id: 0,
            off_task_cgroups: 0,
            off_css_set_subsys: 0,
            off_css_cgroup: 0,
            off_cgroup_kn: 0,
            off_kn_id: 0,
            off_memcg_css: 0,
            off_kmem_cache_name: 0,
            off_kmem_cache_size: 0,
            tp: [0; TP_FIELD_SLOTS],
        }
    }

    pub fn tp_offset(&self, field: TpField) -> usize {
        self.tp[field as usize] as usize
    }
}

// Layouts are part of the contract with the kernel side: fail the build if one drifts.
const _: () = assert!(size_of::<EventHeader>() == 48);
const _: () = assert!(size_of::<ReclaimEvent>() == 48 + 40);
const _: () = assert!(size_of::<OomVictimEvent>() == 48 + 80);
const _: () = assert!(size_of::<CgroupEvent>() == 48 + 24 + CGROUP_PATH_LEN);
const _: () = assert!(size_of::<ShrinkSlabEvent>() == 48 + 80);
const _: () = assert!(size_of::<KswapdWakeEvent>() == 48 + 24);
const _: () = assert!(size_of::<StatKey>() == 16);
const _: () = assert!(size_of::<StatValue>() == 16);
const _: () = assert!(size_of::<DentryValue>() == 16);
const _: () = assert!(size_of::<ProbeConfig>() == 56 + 2 * TP_FIELD_SLOTS);
const _: () = assert!((TpField::KmemBytesAlloc as usize) < TP_FIELD_SLOTS);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), contain only integers and byte arrays, and have explicit
    // padding fields, so every bit pattern is valid and there are no uninitialised bytes.
    unsafe impl aya::Pod for StatKey {}
    unsafe impl aya::Pod for StatValue {}
    unsafe impl aya::Pod for DentryValue {}
    unsafe impl aya::Pod for ProbeConfig {}
}
