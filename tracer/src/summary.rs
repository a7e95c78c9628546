//! The `summary` record: one per active container per sample window, written by the
//! accountant ([`crate::accountant`]). Part of the record stream's public contract
//! (docs/records.md).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cgroupfs::Limits;
use crate::identity::ContainerIdentity;
use crate::record::{CgroupRef, Stamp};

/// Change of each class over a span, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDeltas {
    pub anon: i64,
    pub file: i64,
    pub kernel: i64,
    pub swap: i64,
    /// Dentry bytes allocated (frees are not traced); null when not known.
    pub dentry_alloc_bytes: Option<u64>,
}

/// Size of each class at the end of the window, in bytes (null: not known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassBytes {
    pub anon: Option<u64>,
    pub file: Option<u64>,
    pub kernel: Option<u64>,
    pub swap: Option<u64>,
    /// Not a size: dentry bytes allocated in the window (see the module doc).
    pub dentry_alloc_bytes: Option<u64>,
}

/// Reclaim episodes in the window (own and descendants').
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReclaimStats {
    pub count: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// Episodes that reclaimed 0 pages.
    pub failures: u64,
    /// Episodes without a begin: latency unknown, left out of the latency figures.
    pub missing_begin: u64,
    pub total_latency_ns: u64,
    pub max_latency_ns: Option<u64>,
    /// Nearest-rank percentiles over `latency_samples` latencies.
    pub p50_latency_ns: Option<u64>,
    pub p99_latency_ns: Option<u64>,
    pub latency_samples: u64,
    /// More latencies than the per-window bound: percentiles cover the first ones only.
    pub latencies_truncated: bool,
    pub pages_reclaimed: u64,
    pub bytes_reclaimed: u64,
    /// `SWAP_CLUSTER_MAX` per episode: exact for direct and softlimit reclaim, a lower bound for
    /// memcg reclaim (the charge size is not traced).
    pub requested_pages_assumed: u64,
    /// pages_reclaimed / requested_pages_assumed; overstated for memcg reclaim of large charges
    /// (THP, memory.high overage) and may exceed 1 (reclaim overshoots its target).
    pub efficiency: Option<f64>,
}

/// Where a summary's class figures come from (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassSource {
    Events,
    Cgroupfs,
    /// Never sampled and not in full mode: no class figures.
    #[serde(rename = "none")]
    Unknown,
}

/// Periodic per-container summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub cgroup: CgroupRef,
    pub identity: ContainerIdentity,
    pub window_ns: u64,
    /// `v1` or `v2`, from the latest sample; null when never sampled.
    pub memory_version: Option<String>,
    pub includes_children: bool,
    /// Tracked descendant cgroups (any depth) whose events were added in.
    pub children: Vec<u64>,
    /// The cgroup was removed: this is its last summary.
    pub removed: bool,
    /// A `loss` record reported dropped events in the window: counts may be low.
    pub events_lost: bool,
    pub class_source: ClassSource,
    pub classes: ClassBytes,
    pub class_changes: Option<ClassDeltas>,
    /// Latest sample's classes, in events mode only (drift check).
    pub cgroupfs_classes: Option<ClassBytes>,
    /// Bytes per kernel stat item from stat records in the window (own + descendants).
    pub stat_item_deltas: BTreeMap<String, i64>,
    pub usage_bytes: Option<u64>,
    pub limits: Option<Limits>,
    /// The lower of the hard limit and v2 memory.high: where the kernel starts reclaiming.
    pub effective_limit_bytes: Option<u64>,
    pub usage_ratio: Option<f64>,
    /// Monotonic time of the sample that usage, limits and cgroupfs figures come from.
    pub sample_mono_ns: Option<u64>,
    pub charge_rate_bytes_per_s: Option<f64>,
    pub event_charge_rate_bytes_per_s: Option<f64>,
    /// Boxed to keep `Record` small.
    pub reclaim: Box<ReclaimStats>,
    pub dentry_allocs: Option<u64>,
    pub dentry_alloc_rate_per_s: Option<f64>,
    /// OOM victim records in the window (own + descendants).
    pub oom_kills: u64,
    /// `oom_kill` counter change between samples (v1 memory.oom_control, v2 memory.events).
    pub oom_kills_cgroupfs: Option<u64>,
    /// v1 failcnt / v2 memory.events `max` change between samples.
    pub limit_hits: Option<u64>,
    /// v2 memory.events `high` change between samples.
    pub high_hits: Option<u64>,
}
