//! Record and snapshot builders shared by the unit tests of the detector, diagnose and report
//! (times in whole seconds).
use crate::cgroupfs::{CgroupVersion, Limits, MemorySnapshot};
use crate::identity::identify;
use crate::record::{
    CgroupRef, OomRecord, ReclaimRecord, Record, SampleRecord, Stamp, TaskRef, TaskUsage,
};

pub(crate) const MIB: u64 = 1 << 20;

pub(crate) fn stamp(sec: u64) -> Stamp {
    Stamp {
        ts: format!("2026-01-01T00:00:{sec:02}Z"),
        mono_ns: sec * 1_000_000_000,
    }
}

pub(crate) fn cg(id: u64, path: &str) -> CgroupRef {
    CgroupRef {
        cgroup_id: id,
        cgroup: Some(path.to_string()),
    }
}

/// A v1 snapshot: usage, hard and soft limits in MiB, failcnt; anon makes up most of usage.
pub(crate) fn v1(usage: u64, hard: Option<u64>, soft: Option<u64>, failcnt: u64) -> MemorySnapshot {
    let stat = [
        ("total_rss", usage * MIB * 3 / 4),
        ("total_cache", usage * MIB / 4),
    ];
    MemorySnapshot {
        version: CgroupVersion::V1,
        usage_bytes: usage * MIB,
        max_usage_bytes: None,
        limits: Limits {
            hard: hard.map(|h| h * MIB),
            soft: soft.map(|s| s * MIB),
            ..Limits::default()
        },
        stat: stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        events: [("max".to_string(), failcnt)].into_iter().collect(),
        failcnt: Some(failcnt),
        kmem_usage_bytes: Some(0),
        swap_usage_bytes: None,
    }
}

/// A v2 snapshot: usage, memory.max and memory.high in MiB, memory.events counters.
pub(crate) fn v2(
    usage: u64,
    max: Option<u64>,
    high: Option<u64>,
    events: &[(&str, u64)],
) -> MemorySnapshot {
    let stat = [
        ("anon", usage * MIB / 2),
        ("file", usage * MIB / 4),
        ("kernel", usage * MIB / 4),
    ];
    MemorySnapshot {
        version: CgroupVersion::V2,
        usage_bytes: usage * MIB,
        max_usage_bytes: None,
        limits: Limits {
            hard: max.map(|m| m * MIB),
            high: high.map(|h| h * MIB),
            ..Limits::default()
        },
        stat: stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        events: events.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        failcnt: None,
        kmem_usage_bytes: None,
        swap_usage_bytes: Some(0),
    }
}

pub(crate) fn sample(
    sec: u64,
    id: u64,
    path: &str,
    snapshot: MemorySnapshot,
    tasks: &[(u32, u64)],
) -> Record {
    Record::Sample(SampleRecord {
        at: stamp(sec),
        cgroup: cg(id, path),
        identity: identify(path),
        snapshot,
        top_tasks: tasks
            .iter()
            .map(|(pid, rss)| TaskUsage {
                pid: *pid,
                comm: format!("task{pid}"),
                rss_bytes: rss * MIB,
            })
            .collect(),
    })
}

pub(crate) fn reclaim(
    sec: u64,
    id: u64,
    path: &str,
    pid: u32,
    pages: u64,
    latency_ns: u64,
) -> Record {
    Record::Reclaim(ReclaimRecord {
        at: stamp(sec),
        cgroup: cg(id, path),
        task: TaskRef {
            pid,
            tid: pid,
            comm: format!("task{pid}"),
        },
        kind: "memcg".to_string(),
        latency_ns,
        nr_reclaimed: pages,
        order: 0,
        gfp_flags: 0,
        missing_begin: false,
    })
}

pub(crate) fn oom(sec: u64, id: u64, path: &str, pid: u32) -> Record {
    Record::Oom(OomRecord {
        at: stamp(sec),
        cgroup: cg(id, path),
        victim_pid: pid,
        victim_comm: format!("task{pid}"),
        uid: 0,
        total_vm_kb: 0,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        pgtables_kb: 0,
        oom_score_adj: 0,
        trigger: TaskRef {
            pid,
            tid: pid,
            comm: format!("task{pid}"),
        },
        cgroup_source: "proc".to_string(),
    })
}
