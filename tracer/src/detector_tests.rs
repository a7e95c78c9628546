use super::*;
use crate::cgroupfs::Limits;
use crate::incident_state::LatencyHistogram;
use crate::record::ReclaimRecord;
use crate::record::{CgroupLifecycleRecord, ShrinkSlabRecord, TaskRef};

pub(crate) const MIB: u64 = 1 << 20;

pub(crate) fn stamp(sec: u64) -> Stamp {
    Stamp {
        ts: format!("2026-01-01T00:00:{sec:02}Z"),
        mono_ns: sec * 1_000_000_000,
    }
}

fn cg(id: u64, path: &str) -> CgroupRef {
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

fn incidents(out: Vec<Record>) -> Vec<IncidentRecord> {
    out.into_iter()
        .map(|r| match r {
            Record::Incident(i) => i,
            other => panic!("detector emitted {other:?}"),
        })
        .collect()
}

fn run(records: &[Record]) -> Vec<IncidentRecord> {
    let mut det = Detector::new(DetectorOptions::default());
    let mut out: Vec<IncidentRecord> = records
        .iter()
        .flat_map(|r| incidents(det.observe(r)))
        .collect();
    out.extend(incidents(det.finish(stamp(99))));
    out
}

fn phases(out: &[IncidentRecord]) -> Vec<(IncidentKind, IncidentPhase, u64)> {
    out.iter()
        .map(|i| (i.kind, i.phase, i.at.mono_ns / 1_000_000_000))
        .collect()
}

#[test]
fn v2_hard_overshoot_opens_updates_and_recovers_by_reclaim() {
    use IncidentPhase::*;
    let snap = |usage| v2(usage, Some(100), None, &[("max", 0)]);
    let out = run(&[
        sample(0, 7, "/job", snap(80), &[(1, 40)]),
        sample(1, 7, "/job", snap(101), &[(1, 60)]),
        reclaim(1, 7, "/job", 1, 32, 2_000),
        sample(2, 7, "/job", snap(105), &[(1, 70)]),
        sample(3, 7, "/job", snap(105), &[(1, 70)]),
        sample(4, 7, "/job", snap(95), &[(1, 65)]),
        sample(5, 7, "/job", snap(94), &[(1, 65)]),
    ]);
    let kind = IncidentKind::HardOvershoot;
    assert_eq!(
        phases(&out),
        [(kind, Open, 1), (kind, Update, 2), (kind, Close, 5)]
    );
    let close = &out[2];
    assert_eq!(close.id, "hard_overshoot-7-1000000000");
    assert!(out.iter().all(|i| i.id == close.id));
    assert_eq!(
        (close.start.mono_ns, close.end.as_ref().map(|e| e.mono_ns)),
        (1_000_000_000, Some(4_000_000_000))
    );
    assert_eq!((close.duration_ns, close.samples), (3_000_000_000, 3));
    assert_eq!(close.limit_file.as_deref(), Some("memory.max"));
    let peak = close.peak.as_ref().unwrap();
    assert_eq!(
        (peak.usage_bytes, peak.excess_bytes, peak.at.mono_ns),
        (105 * MIB, Some(5 * MIB as i64), 2_000_000_000)
    );
    assert_eq!(peak.classes.anon, 105 * MIB / 2);
    let grown: Vec<_> = close
        .grown_classes
        .iter()
        .map(|g| (g.class.as_str(), g.growth_bytes))
        .collect();
    assert_eq!(
        grown,
        [
            ("anon", 25 * MIB / 2),
            ("file", 25 * MIB / 4),
            ("kernel", 25 * MIB / 4)
        ]
    );
    assert_eq!(
        (
            close.reclaim.count,
            close.reclaim.pages_reclaimed,
            close.reclaim.failures
        ),
        (1, 32, 0)
    );
    let task = &close.top_tasks[0];
    assert_eq!(
        (
            task.pid,
            task.rss_before_bytes,
            task.rss_growth_bytes,
            task.reclaims
        ),
        (1, 40 * MIB, 30 * MIB, 1)
    );
    assert_eq!(close.outcome, Some(IncidentOutcome::RecoveredByReclaim));
    assert!(out[..2]
        .iter()
        .all(|i| i.outcome.is_none() && i.end.is_none()));
}

#[test]
fn v1_hard_overshoot_then_oom_on_the_limited_cgroup() {
    let snap = |usage, failcnt| v1(usage, Some(100), None, failcnt);
    let out = run(&[
        sample(0, 3, "/docker/x", snap(90, 0), &[]),
        sample(1, 3, "/docker/x", snap(102, 4), &[]),
        oom(1, 3, "/docker/x", 42),
        sample(2, 3, "/docker/x", snap(50, 4), &[]),
        sample(3, 3, "/docker/x", snap(50, 4), &[]),
        sample(4, 3, "/docker/x", snap(50, 4), &[]),
    ]);
    let hard: Vec<_> = out
        .iter()
        .filter(|i| i.kind == IncidentKind::HardOvershoot)
        .collect();
    let killed = IncidentOutcome::OomKilled {
        pid: Some(42),
        comm: Some("task42".into()),
    };
    assert_eq!(hard.last().unwrap().outcome.as_ref(), Some(&killed));
    assert_eq!(hard[0].limit_file.as_deref(), Some("memory.limit_in_bytes"));
    let oom: Vec<_> = out.iter().filter(|i| i.kind == IncidentKind::Oom).collect();
    assert_eq!(oom[0].phase, IncidentPhase::Open);
    assert_eq!(oom.last().unwrap().outcome.as_ref(), Some(&killed));
    assert_eq!(oom.last().unwrap().oom_kills, 1);
    // The OOM incident's peak is the reading before the kill: usage vs limit.
    assert_eq!(
        oom[0].peak.as_ref().unwrap().excess_bytes,
        Some(2 * MIB as i64)
    );
    let limit_hit: Vec<_> = out
        .iter()
        .filter(|i| i.kind == IncidentKind::LimitHit)
        .collect();
    assert_eq!(limit_hit.last().unwrap().limit_hits, 4);
}

#[test]
fn v2_soft_overshoot_needs_two_samples_and_ends_throttled() {
    let snap = |usage, high_events| v2(usage, Some(200), Some(100), &[("high", high_events)]);
    let blip = run(&[
        sample(0, 5, "/a", snap(90, 0), &[]),
        sample(1, 5, "/a", snap(110, 3), &[]),
        sample(2, 5, "/a", snap(90, 3), &[]),
    ]);
    assert!(
        blip.is_empty(),
        "one sample above memory.high is noise: {blip:?}"
    );
    let out = run(&[
        sample(0, 5, "/a", snap(90, 0), &[]),
        sample(1, 5, "/a", snap(110, 3), &[]),
        sample(2, 5, "/a", snap(112, 9), &[]),
        sample(3, 5, "/a", snap(99, 9), &[]),
        sample(4, 5, "/a", snap(99, 9), &[]),
    ]);
    use IncidentPhase::*;
    let kind = IncidentKind::SoftOvershoot;
    assert_eq!(phases(&out), [(kind, Open, 2), (kind, Close, 4)]);
    assert_eq!(
        out[0].start.mono_ns, 1_000_000_000,
        "starts at the first sample above memory.high"
    );
    assert_eq!(
        (out[1].high_events, out[1].limit_file.as_deref()),
        (9, Some("memory.high"))
    );
    assert_eq!(out[1].outcome, Some(IncidentOutcome::Throttled));
}

#[test]
fn v1_soft_overshoot_outcomes() {
    let snap = |usage| v1(usage, None, Some(100), 0);
    let samples = |with_reclaim: bool| {
        let mut recs = vec![
            sample(0, 9, "/s", snap(120), &[]),
            sample(1, 9, "/s", snap(130), &[]),
        ];
        if with_reclaim {
            recs.push(reclaim(1, 9, "/s", 5, 100, 1_000));
        }
        recs.extend([
            sample(2, 9, "/s", snap(90), &[]),
            sample(3, 9, "/s", snap(90), &[]),
        ]);
        run(&recs)
    };
    let recovered = samples(false);
    assert_eq!(
        recovered.last().unwrap().outcome,
        Some(IncidentOutcome::Recovered)
    );
    assert_eq!(
        recovered.last().unwrap().limit_file.as_deref(),
        Some("memory.soft_limit_in_bytes")
    );
    assert_eq!(
        samples(true).last().unwrap().outcome,
        Some(IncidentOutcome::RecoveredByReclaim)
    );
}

#[test]
fn v1_limit_hit_counts_reclaims_failures_and_tasks() {
    let snap = |usage, failcnt| v1(usage, Some(100), None, failcnt);
    let mut recs = vec![sample(0, 4, "/j", snap(92, 10), &[(7, 50), (8, 20)])];
    recs.extend(
        (0..100).map(|n| reclaim(1, 4, "/j", 7, if n < 3 { 0 } else { 8 }, 1_000 + n * 10)),
    );
    recs.push(reclaim(1, 4, "/j", 9, 8, 1_000_000));
    recs.extend([
        sample(1, 4, "/j", snap(97, 25), &[(7, 80), (8, 20)]),
        sample(2, 4, "/j", snap(96, 25), &[(7, 80), (8, 20)]),
        sample(3, 4, "/j", snap(96, 25), &[(7, 80), (8, 20)]),
    ]);
    let out = run(&recs);
    assert_eq!(
        out.iter().map(|i| i.kind).collect::<Vec<_>>(),
        [IncidentKind::LimitHit; 2]
    );
    let close = &out[1];
    assert_eq!(close.limit_hits, 15);
    assert_eq!(
        close.peak.as_ref().unwrap().excess_bytes,
        Some(-3 * MIB as i64)
    );
    assert_eq!(close.end.as_ref().unwrap().mono_ns, 2_000_000_000);
    // Reclaims before the incident's first sample belong to no incident.
    assert_eq!(close.reclaim.count, 0);
    assert_eq!(close.outcome, Some(IncidentOutcome::RecoveredByReclaim));
    assert_eq!(
        close
            .top_tasks
            .iter()
            .map(|t| (t.pid, t.rss_growth_bytes))
            .collect::<Vec<_>>(),
        [(7, 30 * MIB)]
    );
}

#[test]
fn reclaim_statistics_and_p99() {
    let snap = |usage, failcnt| v1(usage, Some(100), None, failcnt);
    let mut recs = vec![
        sample(0, 4, "/j", snap(92, 10), &[]),
        sample(1, 4, "/j", snap(97, 25), &[]),
    ];
    recs.extend((0..99).map(|n| reclaim(1, 4, "/j", 7, if n < 3 { 0 } else { 8 }, 1_000 + n)));
    recs.push(reclaim(1, 4, "/j", 9, 8, 1_000_000));
    recs.push(sample(2, 4, "/j", snap(97, 30), &[]));
    let open = run(&recs)
        .into_iter()
        .rev()
        .find(|i| i.kind == IncidentKind::LimitHit)
        .unwrap();
    let r = &open.reclaim;
    assert_eq!(
        (r.count, r.failures, r.pages_reclaimed, r.max_latency_ns),
        (100, 3, 97 * 8, 1_000_000)
    );
    assert_eq!(r.total_latency_ns, 99 * 1_000 + 99 * 98 / 2 + 1_000_000);
    assert!(
        (1_098..=1_098 * 5 / 4).contains(&r.p99_latency_ns),
        "p99 {}",
        r.p99_latency_ns
    );
    assert_eq!(r.by_kind["memcg"], 100);
    let tasks: Vec<_> = open.top_tasks.iter().map(|t| (t.pid, t.reclaims)).collect();
    assert_eq!(
        tasks,
        [(7, 99), (9, 1)],
        "ranked by reclaims when nothing grew"
    );
}

#[test]
fn hierarchy_incidents_belong_to_the_limited_cgroup() {
    let parent = |usage, max_events| {
        v2(
            usage,
            Some(100),
            None,
            &[("max", max_events), ("oom_kill", 0)],
        )
    };
    let child = |usage, max_events| v2(usage, None, None, &[("max", max_events), ("oom_kill", 0)]);
    let grand = |usage, max_events| {
        v2(
            usage,
            Some(4096),
            None,
            &[("max", max_events), ("oom_kill", 0)],
        )
    };
    let out = run(&[
        sample(0, 1, "/", grand(500, 0), &[]),
        sample(0, 2, "/a", parent(95, 0), &[]),
        sample(0, 3, "/a/b", child(90, 0), &[(11, 50)]),
        // v2 propagates `max` to ancestors: only /a is near its limit.
        sample(1, 1, "/", grand(510, 5), &[]),
        sample(1, 2, "/a", parent(103, 5), &[]),
        sample(1, 3, "/a/b", child(99, 0), &[(11, 80)]),
        reclaim(1, 3, "/a/b", 11, 16, 5_000),
        ShrinkSlabRecord::for_test(1, cg(3, "/a/b")),
        oom(2, 3, "/a/b", 11),
    ]);
    assert!(
        out.iter()
            .all(|i| i.container.cgroup.as_deref() == Some("/a")),
        "{out:#?}"
    );
    let last = |kind| out.iter().rev().find(|i| i.kind == kind).unwrap();
    let hard = last(IncidentKind::HardOvershoot);
    assert_eq!(
        (
            hard.reclaim.count,
            hard.shrink.count,
            hard.shrink.dcache_count
        ),
        (1, 1, 1)
    );
    assert_eq!(
        hard.top_tasks[0].pid, 11,
        "a descendant's task is a top task of /a's incident"
    );
    assert_eq!(hard.top_tasks[0].rss_growth_bytes, 30 * MIB);
    let oom = last(IncidentKind::Oom);
    assert_eq!((oom.container.cgroup_id, oom.victims[0].pid), (2, Some(11)));
    assert_eq!(last(IncidentKind::LimitHit).limit_hits, 5);
}

impl ShrinkSlabRecord {
    fn for_test(sec: u64, cgroup: CgroupRef) -> Record {
        Record::ShrinkSlab(ShrinkSlabRecord {
            at: stamp(sec),
            cgroup,
            task: TaskRef {
                pid: 11,
                tid: 11,
                comm: "task11".into(),
            },
            shrinker: "super_cache_scan".into(),
            nr_objects_to_shrink: 100,
            cache_items: 1000,
            total_scan: 128,
            freed: 64,
            latency_ns: 10_000,
            nid: 0,
            priority: 12,
            missing_start: false,
        })
    }
}

#[test]
fn counter_only_oom_is_filled_in_by_a_late_record_without_double_counting() {
    let snap = |usage, kills| v2(usage, Some(100), None, &[("max", 3), ("oom_kill", kills)]);
    let mut det = Detector::new(DetectorOptions::default());
    let mut out = Vec::new();
    for rec in [
        sample(0, 2, "/c", snap(98, 0), &[]),
        sample(1, 2, "/c", snap(60, 1), &[]),
        oom(1, 2, "/c", 77),
    ] {
        out.extend(incidents(det.observe(&rec)));
    }
    let ooms: Vec<_> = out.iter().filter(|i| i.kind == IncidentKind::Oom).collect();
    assert_eq!(
        ooms.len(),
        2,
        "open from the counter, update from the record: {ooms:#?}"
    );
    assert_eq!((ooms[0].oom_kills, ooms[0].victims[0].pid), (1, None));
    assert_eq!((ooms[1].oom_kills, ooms[1].victims[0].pid), (1, Some(77)));
    // The record came late: the next sample's unchanged counter adds nothing.
    let mut rest = incidents(det.observe(&sample(2, 2, "/c", snap(60, 1), &[])));
    rest.extend(incidents(det.finish(stamp(3))));
    assert_eq!(
        rest.iter()
            .map(|i| (i.kind, i.oom_kills))
            .collect::<Vec<_>>(),
        [(IncidentKind::Oom, 1)]
    );
}

#[test]
fn noise_opens_nothing() {
    let mut recs = Vec::new();
    for sec in 0..30 {
        let wobble = (sec * 7) % 11;
        // Unlimited, growing, reclaiming, even with failcnt growing (the root on v1).
        recs.push(sample(
            sec,
            1,
            "/",
            v1(1000 + sec * 10, None, None, sec),
            &[(1, 10 + sec)],
        ));
        recs.push(reclaim(sec, 1, "/", 1, 0, 100));
        // A limit far away while v2 propagates `max` events from below.
        recs.push(sample(
            sec,
            2,
            "/far",
            v2(100 + wobble, Some(1000), None, &[("max", sec)]),
            &[],
        ));
        // Hovering just below the hard limit without hitting it.
        recs.push(sample(
            sec,
            3,
            "/near",
            v2(95 + wobble % 4, Some(100), None, &[("max", 0)]),
            &[],
        ));
        // A high limit crossed for single samples only.
        let usage = if sec % 2 == 0 { 110 } else { 90 };
        recs.push(sample(
            sec,
            4,
            "/blips",
            v2(usage, None, Some(100), &[("high", sec)]),
            &[],
        ));
    }
    assert_eq!(run(&recs), []);
}

#[test]
fn updates_are_rate_limited() {
    let snap = |usage| v2(usage, Some(100), None, &[]);
    let mut recs: Vec<Record> = (0..25)
        .map(|sec| sample(sec, 1, "/x", snap(110), &[]))
        .collect();
    recs.push(sample(25, 1, "/x", snap(111), &[]));
    let out = run(&recs);
    let updates: Vec<_> = out
        .iter()
        .filter(|i| i.phase == IncidentPhase::Update)
        .map(|i| i.at.mono_ns / 1_000_000_000)
        .collect();
    assert_eq!(
        updates,
        [10, 20, 25],
        "every 10 samples, and when the peak rose by 1 MiB"
    );
    let close = out.last().unwrap();
    assert_eq!(
        (close.outcome.clone(), close.at.mono_ns),
        (Some(IncidentOutcome::StillOpenAtExit), 99_000_000_000)
    );
    assert_eq!(close.duration_ns, 99_000_000_000);
}

#[test]
fn finish_drops_pending_and_rmdir_closes_as_removed() {
    let over_high = v2(120, None, Some(100), &[]);
    let mut det = Detector::new(DetectorOptions::default());
    assert!(det.observe(&sample(0, 1, "/p", over_high, &[])).is_empty());
    assert!(
        det.finish(stamp(1)).is_empty(),
        "a soft overshoot not yet sustained is not reported"
    );
    let mut det = Detector::new(DetectorOptions::default());
    assert_eq!(
        det.observe(&sample(0, 1, "/h", v1(120, Some(100), None, 0), &[]))
            .len(),
        1
    );
    let rmdir = Record::Cgroup(CgroupLifecycleRecord {
        at: stamp(3),
        cgroup: cg(1, "/h"),
        event: "rmdir".into(),
        level: 1,
        identity: identify("/h"),
    });
    let closed = incidents(det.observe(&rmdir));
    assert_eq!(closed[0].outcome, Some(IncidentOutcome::CgroupRemoved));
    assert!(det.finish(stamp(4)).is_empty());
}

#[test]
fn incident_records_round_trip_as_json() {
    let out = run(&[
        sample(0, 1, "/x", v2(120, Some(100), None, &[]), &[(3, 9)]),
        oom(0, 1, "/x", 3),
    ]);
    for inc in out {
        let line = serde_json::to_string(&Record::Incident(inc.clone())).unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (value["type"].as_str(), value["mono_ns"].as_u64()),
            (Some("incident"), Some(inc.at.mono_ns))
        );
        assert_eq!(
            serde_json::from_str::<Record>(&line).unwrap(),
            Record::Incident(inc)
        );
    }
}

#[test]
fn histogram_quantiles_bound_the_truth_within_a_quarter() {
    for value in [0u64, 1, 3, 4, 5, 7, 8, 1000, 123_456_789, u64::MAX / 3] {
        let bucket = LatencyHistogram::bucket(value);
        let upper = LatencyHistogram::upper_bound(bucket);
        assert!(
            upper >= value && upper - value <= value / 4 + 1,
            "{value} -> {upper}"
        );
    }
    let mut h = LatencyHistogram::default();
    (1..=1000).for_each(|v| h.add(v));
    assert!(
        (990..=1_240).contains(&h.quantile(0.99)),
        "{}",
        h.quantile(0.99)
    );
}

#[test]
fn unresolved_cgroups_are_kept_apart() {
    let out = run(&[
        sample(0, 0, "/one", v1(120, Some(100), None, 0), &[]),
        sample(0, 0, "/two", v1(130, Some(100), None, 0), &[]),
    ]);
    let opened: Vec<_> = out
        .iter()
        .filter(|i| i.phase == IncidentPhase::Open)
        .collect();
    assert_eq!(opened.len(), 2);
    assert_ne!(opened[0].id, opened[1].id);
    assert!(opened
        .iter()
        .all(|i| i.container.cgroup_id == 0 && !i.id.contains("-0-")));
}
