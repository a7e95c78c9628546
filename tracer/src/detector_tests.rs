//! Each incident kind on v1 and v2: open, update, close and outcome; reclaim statistics.
use super::*;
use crate::test_records::*;

pub(super) fn incidents(out: Vec<Record>) -> Vec<IncidentRecord> {
    out.into_iter()
        .map(|r| match r {
            Record::Incident(i) => i,
            other => panic!("detector emitted {other:?}"),
        })
        .collect()
}

pub(super) fn run(records: &[Record]) -> Vec<IncidentRecord> {
    let mut det = Detector::new(DetectorOptions::default());
    let mut out: Vec<IncidentRecord> = records
        .iter()
        .flat_map(|r| incidents(det.observe(r)))
        .collect();
    out.extend(incidents(det.finish(stamp(99))));
    out
}

pub(super) fn phases(out: &[IncidentRecord]) -> Vec<(IncidentKind, IncidentPhase, u64)> {
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
