//! The `incident` record: what the detector ([`crate::detector`]) reports about an overshoot
//! incident when it opens, updates and closes. Part of the record stream's public contract
//! (docs/records.md).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cgroupfs::MemoryClasses;
use crate::record::Stamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    HardOvershoot,
    SoftOvershoot,
    LimitHit,
    Oom,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 4] = [
        Self::HardOvershoot,
        Self::SoftOvershoot,
        Self::LimitHit,
        Self::Oom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardOvershoot => "hard_overshoot",
            Self::SoftOvershoot => "soft_overshoot",
            Self::LimitHit => "limit_hit",
            Self::Oom => "oom",
        }
    }

    /// Higher is worse: oom > hard overshoot > limit hit > soft overshoot.
    pub fn severity(self) -> u8 {
        match self {
            Self::Oom => 3,
            Self::HardOvershoot => 2,
            Self::LimitHit => 1,
            Self::SoftOvershoot => 0,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentPhase {
    Open,
    Update,
    Close,
}

/// How an incident ended (only on `close`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IncidentOutcome {
    /// Back under the limit and reclaim freed pages meanwhile (for a limit hit: no OOM followed,
    /// so the kernel's reclaim made room).
    RecoveredByReclaim,
    /// Back under the limit without reclaim progress seen: the workload freed memory itself.
    Recovered,
    /// v2 soft overshoot during which `memory.events` `high` grew: reclaimed and throttled at
    /// memory.high.
    Throttled,
    /// A task was OOM-killed during the incident (the first victim; null when only the
    /// `oom_kill` counter showed it).
    OomKilled {
        pid: Option<u32>,
        comm: Option<String>,
    },
    /// The cgroup was removed while the incident was open.
    CgroupRemoved,
    /// Still open when the stream ended (`end` = the end of the stream).
    StillOpenAtExit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentContainer {
    pub cgroup_id: u64,
    pub cgroup: Option<String>,
    /// Container identity display name (`identity.name` of the samples).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentPeak {
    pub at: Stamp,
    pub usage_bytes: u64,
    /// The limit the incident is about, at the peak (see `limit_file`).
    pub limit_bytes: Option<u64>,
    /// usage - limit (negative: below it, as for most limit hits and OOMs).
    pub excess_bytes: Option<i64>,
    pub classes: MemoryClasses,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassGrowth {
    /// `anon`, `file`, `kernel` or `swap`.
    pub class: String,
    /// At the sample before the incident (or its first sample).
    pub before_bytes: u64,
    pub peak_bytes: u64,
    pub growth_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentTask {
    pub pid: u32,
    pub comm: String,
    pub rss_before_bytes: u64,
    pub rss_peak_bytes: u64,
    pub rss_growth_bytes: u64,
    /// Reclaim episodes the task ran during the incident.
    pub reclaims: u64,
    pub reclaim_latency_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReclaimStats {
    pub count: u64,
    /// Reclaims that freed 0 pages.
    pub failures: u64,
    pub pages_reclaimed: u64,
    /// Latency sums exclude episodes whose begin was missed.
    pub total_latency_ns: u64,
    pub p99_latency_ns: u64,
    pub max_latency_ns: u64,
    /// Count per reclaim kind (`memcg`, `softlimit`, `direct`).
    pub by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShrinkStats {
    pub count: u64,
    pub scanned: u64,
    pub freed: u64,
    pub total_latency_ns: u64,
    /// Of those, `super_cache_scan` (the per-superblock dentry + inode cache shrinker).
    pub dcache_count: u64,
    pub dcache_freed: u64,
    /// Dentry allocations charged meanwhile (`dentry` records).
    pub dentry_alloc_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomVictim {
    pub at: Stamp,
    pub pid: Option<u32>,
    pub comm: Option<String>,
}

/// An incident opened, updated or closed. Every phase carries the incident's full state so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    #[serde(flatten)]
    pub at: Stamp,
    /// `<kind>-<cgroup_id>-<start mono_ns>` (a path hash with the high bit set instead of an
    /// unknown id 0): the same live and rebuilt from a recording.
    pub id: String,
    pub phase: IncidentPhase,
    pub kind: IncidentKind,
    pub container: IncidentContainer,
    /// `memory.max`, `memory.high`, `memory.limit_in_bytes`, `memory.soft_limit_in_bytes`, or
    /// null when unknown (an OOM in a cgroup never sampled).
    pub limit_file: Option<String>,
    pub start: Stamp,
    /// Set on close.
    pub end: Option<Stamp>,
    /// end (or this record's time) - start.
    pub duration_ns: u64,
    /// Samples during which the condition held.
    pub samples: u64,
    /// Highest sampled usage while the condition held; null before any sample.
    pub peak: Option<IncidentPeak>,
    /// Classes larger at the peak than before the incident, largest growth first.
    pub grown_classes: Vec<ClassGrowth>,
    pub top_tasks: Vec<IncidentTask>,
    /// Growth of v2 memory.events `max` / v1 failcnt while open.
    pub limit_hits: u64,
    /// Growth of v2 memory.events `high` while open.
    pub high_events: u64,
    pub reclaim: ReclaimStats,
    pub shrink: ShrinkStats,
    pub oom_kills: u64,
    /// First victims (at most 8).
    pub victims: Vec<OomVictim>,
    pub outcome: Option<IncidentOutcome>,
}
