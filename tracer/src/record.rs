//! The records of the agent's NDJSON stream: the public contract.
//!
//! One JSON object per line, tagged by `type`. `tracer run --output FILE` writes them,
//! `tracer diagnose FILE` reads them back through the same types, and docs/records.md describes
//! every field. Additive changes keep [`SCHEMA_VERSION`]; a removed or renamed field bumps it.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{cgroupfs::MemorySnapshot, identity::ContainerIdentity};

/// Version of the record schema, carried by the `start` record.
pub const SCHEMA_VERSION: u32 = 1;

/// When a record happened: wall-clock time for people, monotonic nanoseconds (the kernel's
/// `bpf_ktime_get_ns()` clock) for ordering and latency arithmetic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// RFC 3339, UTC, nanoseconds.
    pub ts: String,
    pub mono_ns: u64,
}

/// The cgroup a record is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupRef {
    /// Kernel cgroup id (the cgroupfs directory's inode number); 0 when unknown.
    pub cgroup_id: u64,
    /// Path relative to the memory hierarchy's root, or null when it could not be resolved.
    pub cgroup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Start(StartRecord),
    Stat(StatRecord),
    Dentry(DentryRecord),
    Reclaim(ReclaimRecord),
    ShrinkSlab(ShrinkSlabRecord),
    KswapdWake(KswapdWakeRecord),
    Oom(OomRecord),
    Cgroup(CgroupLifecycleRecord),
    Sample(SampleRecord),
    Mode(ModeRecord),
    Loss(LossRecord),
    Summary(crate::summary::SummaryRecord),
    Incident(crate::incident::IncidentRecord),
    Stop(StopRecord),
}

impl Record {
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Start(_) => "start",
            Record::Stat(_) => "stat",
            Record::Dentry(_) => "dentry",
            Record::Reclaim(_) => "reclaim",
            Record::ShrinkSlab(_) => "shrink_slab",
            Record::KswapdWake(_) => "kswapd_wake",
            Record::Oom(_) => "oom",
            Record::Cgroup(_) => "cgroup",
            Record::Sample(_) => "sample",
            Record::Mode(_) => "mode",
            Record::Loss(_) => "loss",
            Record::Summary(_) => "summary",
            Record::Incident(_) => "incident",
            Record::Stop(_) => "stop",
        }
    }

    /// When the record happened.
    pub fn at(&self) -> &Stamp {
        match self {
            Record::Start(r) => &r.at,
            Record::Stat(r) => &r.at,
            Record::Dentry(r) => &r.at,
            Record::Reclaim(r) => &r.at,
            Record::ShrinkSlab(r) => &r.at,
            Record::KswapdWake(r) => &r.at,
            Record::Oom(r) => &r.at,
            Record::Cgroup(r) => &r.at,
            Record::Sample(r) => &r.at,
            Record::Mode(r) => &r.at,
            Record::Loss(r) => &r.at,
            Record::Summary(r) => &r.at,
            Record::Incident(r) => &r.at,
            Record::Stop(r) => &r.at,
        }
    }

    /// Monotonic time of the record.
    pub fn mono_ns(&self) -> u64 {
        self.at().mono_ns
    }
}

/// How a probe family is served on this kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatus {
    /// e.g. `memcg:mod_memcg_lruvec_state`.
    pub probe: String,
    /// `tp_btf`, `tracepoint`, `fallback` (cgroupfs files) or `unavailable`.
    pub via: String,
    /// Attached right now (per-page probes attach on demand).
    pub attached: bool,
    pub note: Option<String>,
}

/// First record of every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRecord {
    #[serde(flatten)]
    pub at: Stamp,
    pub schema: u32,
    pub agent_version: String,
    pub hostname: String,
    pub kernel: String,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup_mode: String,
    /// Version of the hierarchy that carries the memory controller: `v1` or `v2`.
    pub memory_version: String,
    pub memory_root: String,
    pub page_size: u64,
    pub sample_interval_ms: u64,
    pub probes: Vec<ProbeStatus>,
}

/// Change of one memcg statistic over one sample interval, from the memcg tracepoints
/// (aggregated in the kernel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    /// `memcg_state`, `lruvec_state` or `events` (which tracepoint counted it).
    pub family: String,
    /// Kernel enum name (e.g. `NR_ANON_MAPPED`, `PGFAULT`), from the running kernel's BTF.
    pub item: String,
    /// Raw enum value (kernel-build specific).
    pub item_index: u32,
    /// Sum of the tracepoint's `val` over the interval, in `unit`.
    pub delta: i64,
    /// `pages`, `bytes` or `events`.
    pub unit: String,
    /// `delta` converted to bytes where the unit is pages or bytes.
    pub delta_bytes: Option<i64>,
    /// Tracepoint hits in the interval.
    pub hits: u64,
    /// Length of the interval the delta covers.
    pub interval_ns: u64,
}

/// Dentry-cache allocations charged to a memcg over one sample interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DentryRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    pub allocs: u64,
    pub bytes: u64,
    pub interval_ns: u64,
}

/// The task an event fired in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRef {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
}

/// One reclaim episode (begin/end joined in the kernel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    #[serde(flatten)]
    pub task: TaskRef,
    /// `memcg` (limit / memory.high reclaim), `softlimit` or `direct` (global pressure).
    pub kind: String,
    pub latency_ns: u64,
    pub nr_reclaimed: u64,
    pub order: i32,
    pub gfp_flags: u64,
    /// The end fired without a recorded begin: latency and order are unknown.
    pub missing_begin: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkSlabRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    #[serde(flatten)]
    pub task: TaskRef,
    /// Shrinker scan function symbol (e.g. `super_cache_scan` for dcache/icache) or its address.
    pub shrinker: String,
    pub nr_objects_to_shrink: i64,
    pub cache_items: u64,
    pub total_scan: u64,
    pub freed: i64,
    pub latency_ns: u64,
    pub nid: i32,
    pub priority: i32,
    pub missing_start: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KswapdWakeRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    #[serde(flatten)]
    pub task: TaskRef,
    pub nid: i32,
    pub zid: i32,
    pub order: i32,
    pub gfp_flags: u64,
}

/// A task chosen as OOM victim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomRecord {
    #[serde(flatten)]
    pub at: Stamp,
    /// The victim's memcg.
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    pub victim_pid: u32,
    pub victim_comm: String,
    pub uid: u32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i32,
    /// The task that ran the OOM killer (the one whose charge failed).
    pub trigger: TaskRef,
    /// How the victim's memcg was found: `proc` (/proc/<pid>/cgroup) or `trigger` (the memcg of
    /// the task that ran the OOM killer, when the victim was already gone).
    pub cgroup_source: String,
}

/// A cgroup created or removed in the memory hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupLifecycleRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    /// `mkdir` or `rmdir`.
    pub event: String,
    pub level: i32,
    pub identity: ContainerIdentity,
}

/// Periodic reading of a cgroup's own memory files (usage, limits, events, classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    pub identity: ContainerIdentity,
    pub snapshot: MemorySnapshot,
    /// Largest tasks of the cgroup by resident memory (pid, comm, rss), at most 5.
    pub top_tasks: Vec<TaskUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    pub pid: u32,
    pub comm: String,
    pub rss_bytes: u64,
}

/// The per-page probes were attached or detached (adaptive tracing), or tracing mode changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeRecord {
    #[serde(flatten)]
    pub at: Stamp,
    /// `sampled` (class totals from cgroup files; per-page probes detached) or `full`.
    pub mode: String,
    pub reason: String,
    pub probes: Vec<String>,
}

/// Exact loss accounting, emitted periodically and at exit. Counts are cumulative since start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LossRecord {
    #[serde(flatten)]
    pub at: Stamp,
    /// Ring-buffer reserves attempted by the kernel programs, per event kind.
    pub produced: BTreeMap<String, u64>,
    /// Ring-buffer reserves that failed (buffer full), per event kind.
    pub dropped: BTreeMap<String, u64>,
    /// Events the agent read from the ring buffer, per event kind.
    pub received: BTreeMap<String, u64>,
    /// Records that could not be decoded (wrong size or unknown kind).
    pub decode_errors: u64,
    pub stat_map_full: u64,
    pub dentry_map_full: u64,
    pub pairing_store_failed: u64,
    pub reclaim_missing_begin: u64,
    pub shrink_missing_start: u64,
    pub self_filtered: u64,
    /// cgroup lifecycle events of other hierarchies (v1 cpu, pids, ...): received, not recorded.
    /// (Added within schema 1: absent in older recordings.)
    #[serde(default)]
    pub lifecycle_other_hierarchy: u64,
}

impl LossRecord {
    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().sum::<u64>() + self.stat_map_full + self.dentry_map_full
    }
}

/// Last record of a cleanly stopped stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRecord {
    #[serde(flatten)]
    pub at: Stamp,
    pub reason: String,
    pub records: u64,
}
