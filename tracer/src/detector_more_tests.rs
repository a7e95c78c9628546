//! Hierarchy, noise, rate limits, finish/rmdir, JSON form, the latency histogram and
//! unresolved cgroups.
use super::tests::{incidents, run};
use super::*;
use crate::incident_state::LatencyHistogram;
use crate::record::{CgroupLifecycleRecord, ShrinkSlabRecord, TaskRef};
use crate::test_records::*;

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

/// A cgroup created during the stream starts with zero counters: a limit hit that happened
/// before its first sample is still a limit hit (the first sample may follow the first reclaim).
#[test]
fn a_cgroup_created_while_tracing_counts_hits_from_zero() {
    let mkdir = |id, path: &str| {
        Record::Cgroup(CgroupLifecycleRecord {
            at: stamp(0),
            cgroup: cg(id, path),
            event: "mkdir".into(),
            level: 1,
            identity: identify(path),
        })
    };
    let born = run(&[
        mkdir(5, "/new"),
        sample(1, 5, "/new", v1(98, Some(100), None, 3), &[]),
    ]);
    assert_eq!(born[0].phase, IncidentPhase::Open, "{born:?}");
    assert_eq!(born[0].kind, IncidentKind::LimitHit);
    assert_eq!(born[0].limit_hits, 3);
    // A cgroup that existed before the stream: its first sample is only a baseline.
    let old = run(&[sample(1, 6, "/old", v1(98, Some(100), None, 3), &[])]);
    assert!(old.is_empty(), "{old:?}");
}
