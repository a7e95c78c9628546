//! Record and snapshot builders shared by the accountant's unit tests.
pub(super) use super::*;
pub(super) use crate::cgroupfs::{CgroupVersion, Limits};
pub(super) use crate::record::{
    CgroupLifecycleRecord, LossRecord, ModeRecord, ProbeStatus, ReclaimRecord, SampleRecord,
    StartRecord, TaskRef,
};

pub(super) const SEC: u64 = 1_000_000_000;
pub(super) const PAGE: i64 = 4096;

pub(super) fn stamp(mono_ns: u64) -> Stamp {
    Stamp {
        ts: format!("t{mono_ns}"),
        mono_ns,
    }
}

pub(super) fn cref(id: u64, path: &str) -> CgroupRef {
    CgroupRef {
        cgroup_id: id,
        cgroup: Some(path.to_owned()),
    }
}

pub(super) fn task() -> TaskRef {
    TaskRef {
        pid: 7,
        tid: 7,
        comm: "stress".into(),
    }
}

pub(super) fn accountant() -> Accountant {
    Accountant::new(AccountantOptions::default())
}

/// A v1 snapshot: hierarchical stat keys, kmem, failcnt (= events `max`) and oom_kill.
pub(super) fn v1_snap(
    usage: u64,
    rss: u64,
    cache: u64,
    kmem: u64,
    swap: u64,
    failcnt: u64,
) -> MemorySnapshot {
    let stat = [
        ("total_rss", rss),
        ("total_cache", cache),
        ("total_swap", swap),
        ("rss", 1),
    ];
    MemorySnapshot {
        version: CgroupVersion::V1,
        usage_bytes: usage,
        max_usage_bytes: None,
        limits: Limits {
            hard: Some(1 << 30),
            soft: Some(1 << 29),
            ..Limits::default()
        },
        stat: stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        events: [("max", failcnt), ("oom_kill", 0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        failcnt: Some(failcnt),
        kmem_usage_bytes: Some(kmem),
        swap_usage_bytes: Some(swap),
    }
}

pub(super) fn v2_snap(
    usage: u64,
    anon: u64,
    file: u64,
    kernel: u64,
    swap: u64,
    high: u64,
) -> MemorySnapshot {
    let stat = [
        ("anon", anon),
        ("file", file),
        ("kernel", kernel),
        ("sock", 4096),
    ];
    MemorySnapshot {
        version: CgroupVersion::V2,
        usage_bytes: usage,
        max_usage_bytes: None,
        limits: Limits {
            hard: Some(4 << 30),
            high: Some(2 << 30),
            ..Limits::default()
        },
        stat: stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        events: [("max", 0), ("high", high), ("oom_kill", 1)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        failcnt: None,
        kmem_usage_bytes: None,
        swap_usage_bytes: Some(swap),
    }
}

pub(super) fn sample(id: u64, path: &str, mono: u64, snapshot: MemorySnapshot) -> Record {
    Record::Sample(SampleRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        identity: identify(path),
        snapshot,
        top_tasks: Vec::new(),
    })
}

/// A state-family stat record the way the pipeline builds it (pages unless `*_B`).
pub(super) fn stat(id: u64, path: &str, mono: u64, item: &str, delta: i64) -> Record {
    // The kernel reports every state item in pages (memcg_state_val_in_pages), `*_B` included.
    Record::Stat(StatRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        family: "lruvec_state".into(),
        item: item.into(),
        item_index: 0,
        delta,
        unit: "pages".into(),
        delta_bytes: Some(delta * PAGE),
        hits: 1,
        interval_ns: SEC,
    })
}

/// An `events`-family stat record (a counter, no bytes).
pub(super) fn event_counter(id: u64, path: &str, mono: u64, item: &str, delta: i64) -> Record {
    let Record::Stat(rec) = stat(id, path, mono, item, delta) else {
        unreachable!()
    };
    Record::Stat(StatRecord {
        family: "events".into(),
        unit: "events".into(),
        delta_bytes: None,
        ..rec
    })
}

pub(super) fn dentry(id: u64, path: &str, mono: u64, allocs: u64, bytes: u64) -> Record {
    Record::Dentry(DentryRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        allocs,
        bytes,
        interval_ns: SEC,
    })
}

pub(super) fn reclaim(
    id: u64,
    path: &str,
    mono: u64,
    latency_ns: u64,
    nr: u64,
    kind: &str,
) -> Record {
    Record::Reclaim(ReclaimRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        task: task(),
        kind: kind.into(),
        latency_ns,
        nr_reclaimed: nr,
        order: 0,
        gfp_flags: 0,
        missing_begin: false,
    })
}

pub(super) fn mode(mono: u64, name: &str) -> Record {
    Record::Mode(ModeRecord {
        at: stamp(mono),
        mode: name.into(),
        reason: "test".into(),
        probes: Vec::new(),
    })
}

pub(super) fn start(mono: u64, full: bool) -> Record {
    let probe = |name: &str, attached| ProbeStatus {
        probe: name.into(),
        via: "tp_btf".into(),
        attached,
        note: None,
    };
    Record::Start(StartRecord {
        at: stamp(mono),
        schema: 1,
        agent_version: "0".into(),
        hostname: "h".into(),
        kernel: "6.18".into(),
        cgroup_mode: "hybrid".into(),
        memory_version: "v1".into(),
        memory_root: "/sys/fs/cgroup/memory".into(),
        page_size: 4096,
        sample_interval_ms: 1000,
        probes: vec![
            probe("memcg:mod_memcg_lruvec_state", full),
            probe("kmem:kmem_cache_alloc", full),
        ],
    })
}

pub(super) fn feed(acc: &mut Accountant, records: &[Record]) {
    records.iter().for_each(|r| acc.observe(r));
}

pub(super) fn summaries(acc: &mut Accountant, mono: u64) -> Vec<SummaryRecord> {
    acc.summaries(stamp(mono))
        .into_iter()
        .map(|r| match r {
            Record::Summary(s) => s,
            other => panic!("not a summary: {other:?}"),
        })
        .collect()
}

pub(super) fn only(mut list: Vec<SummaryRecord>) -> SummaryRecord {
    assert_eq!(list.len(), 1, "{list:?}");
    list.remove(0)
}

pub(super) fn oom(id: u64, mono: u64) -> Record {
    let Record::Oom(mut rec) = crate::test_records::oom(0, id, "/victim", 9) else {
        unreachable!("test_records::oom builds an oom record")
    };
    rec.at = stamp(mono);
    Record::Oom(rec)
}
