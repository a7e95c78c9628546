use super::*;
use crate::cgroupfs::{CgroupVersion, Limits};
use crate::record::{
    CgroupLifecycleRecord, LossRecord, ModeRecord, OomRecord, ProbeStatus, ReclaimRecord,
    SampleRecord, StartRecord, TaskRef,
};

const SEC: u64 = 1_000_000_000;
const PAGE: i64 = 4096;

fn stamp(mono_ns: u64) -> Stamp {
    Stamp {
        ts: format!("t{mono_ns}"),
        mono_ns,
    }
}

fn cref(id: u64, path: &str) -> CgroupRef {
    CgroupRef {
        cgroup_id: id,
        cgroup: Some(path.to_owned()),
    }
}

fn task() -> TaskRef {
    TaskRef {
        pid: 7,
        tid: 7,
        comm: "stress".into(),
    }
}

fn accountant() -> Accountant {
    Accountant::new(AccountantOptions::default())
}

/// A v1 snapshot: hierarchical stat keys, kmem, failcnt (= events `max`) and oom_kill.
fn v1_snap(usage: u64, rss: u64, cache: u64, kmem: u64, swap: u64, failcnt: u64) -> MemorySnapshot {
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

fn v2_snap(usage: u64, anon: u64, file: u64, kernel: u64, swap: u64, high: u64) -> MemorySnapshot {
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

fn sample(id: u64, path: &str, mono: u64, snapshot: MemorySnapshot) -> Record {
    Record::Sample(SampleRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        identity: identify(path),
        snapshot,
        top_tasks: Vec::new(),
    })
}

/// A state-family stat record the way the pipeline builds it (pages unless `*_B`).
fn stat(id: u64, path: &str, mono: u64, item: &str, delta: i64) -> Record {
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
fn event_counter(id: u64, path: &str, mono: u64, item: &str, delta: i64) -> Record {
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

fn dentry(id: u64, path: &str, mono: u64, allocs: u64, bytes: u64) -> Record {
    Record::Dentry(DentryRecord {
        at: stamp(mono),
        cgroup: cref(id, path),
        allocs,
        bytes,
        interval_ns: SEC,
    })
}

fn reclaim(id: u64, path: &str, mono: u64, latency_ns: u64, nr: u64, kind: &str) -> Record {
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

fn mode(mono: u64, name: &str) -> Record {
    Record::Mode(ModeRecord {
        at: stamp(mono),
        mode: name.into(),
        reason: "test".into(),
        probes: Vec::new(),
    })
}

fn start(mono: u64, full: bool) -> Record {
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

fn feed(acc: &mut Accountant, records: &[Record]) {
    records.iter().for_each(|r| acc.observe(r));
}

fn summaries(acc: &mut Accountant, mono: u64) -> Vec<SummaryRecord> {
    acc.summaries(stamp(mono))
        .into_iter()
        .map(|r| match r {
            Record::Summary(s) => s,
            other => panic!("not a summary: {other:?}"),
        })
        .collect()
}

fn only(mut list: Vec<SummaryRecord>) -> SummaryRecord {
    assert_eq!(list.len(), 1, "{list:?}");
    list.remove(0)
}

#[test]
fn sampled_mode_v1_takes_classes_limits_and_rates_from_cgroupfs() {
    let mut acc = accountant();
    feed(
        &mut acc,
        &[
            start(0, false),
            sample(5, "/docker/abc", SEC, v1_snap(100 << 20, 10, 20, 30, 0, 2)),
        ],
    );
    let first = only(summaries(&mut acc, SEC));
    assert_eq!(
        (first.class_source, first.class_changes),
        (ClassSource::Cgroupfs, None)
    );
    assert_eq!(
        first.charge_rate_bytes_per_s, None,
        "one sample: no rate yet"
    );
    feed(
        &mut acc,
        &[sample(
            5,
            "/docker/abc",
            3 * SEC,
            v1_snap(104 << 20, 14, 21, 40, 8, 5),
        )],
    );
    let s = only(summaries(&mut acc, 3 * SEC));
    assert_eq!(s.cgroup, cref(5, "/docker/abc"));
    assert_eq!(s.identity, identify("/docker/abc"));
    assert_eq!(
        (s.window_ns, s.memory_version.as_deref()),
        (2 * SEC, Some("v1"))
    );
    let classes = ClassBytes {
        anon: Some(14),
        file: Some(21),
        kernel: Some(40),
        swap: Some(8),
        dentry_alloc_bytes: None,
    };
    assert_eq!(s.classes, classes);
    let changes = ClassDeltas {
        anon: 4,
        file: 1,
        kernel: 10,
        swap: 8,
        dentry_alloc_bytes: None,
    };
    assert_eq!(s.class_changes, Some(changes));
    assert_eq!(s.cgroupfs_classes, None);
    assert_eq!(
        (s.usage_bytes, s.effective_limit_bytes),
        (Some(104 << 20), Some(1 << 30))
    );
    assert_eq!(s.usage_ratio, Some(104.0 / 1024.0));
    assert_eq!(
        s.charge_rate_bytes_per_s,
        Some(2.0 * 1024.0 * 1024.0),
        "4 MiB over 2 s"
    );
    assert_eq!(s.event_charge_rate_bytes_per_s, None);
    assert_eq!(
        (s.limit_hits, s.high_hits, s.oom_kills_cgroupfs),
        (Some(3), None, Some(0))
    );
    assert_eq!((s.dentry_allocs, s.dentry_alloc_rate_per_s), (None, None));
    assert_eq!(s.limits.and_then(|l| l.soft), Some(1 << 29));
}

#[test]
fn v2_snapshots_use_v2_keys_and_high_as_effective_limit() {
    let mut acc = accountant();
    feed(
        &mut acc,
        &[sample(
            9,
            "/k",
            SEC,
            v2_snap(1 << 30, 100, 200, 300, 400, 17),
        )],
    );
    summaries(&mut acc, SEC);
    feed(
        &mut acc,
        &[sample(
            9,
            "/k",
            2 * SEC,
            v2_snap(1 << 30, 150, 180, 300, 400, 20),
        )],
    );
    let s = only(summaries(&mut acc, 2 * SEC));
    assert_eq!(s.memory_version.as_deref(), Some("v2"));
    let classes = ClassBytes {
        anon: Some(150),
        file: Some(180),
        kernel: Some(300),
        swap: Some(400),
        dentry_alloc_bytes: None,
    };
    assert_eq!(s.classes, classes);
    assert_eq!(
        s.effective_limit_bytes,
        Some(2 << 30),
        "memory.high is below memory.max"
    );
    assert_eq!(s.usage_ratio, Some(0.5));
    assert_eq!(
        (s.high_hits, s.limit_hits, s.oom_kills_cgroupfs),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(s.charge_rate_bytes_per_s, Some(0.0));
}

#[test]
fn full_mode_changes_come_from_events_and_advance_the_sample_baseline() {
    let (id, path) = (5, "/job");
    let mut acc = accountant();
    // Window 1: stat records before the sample are already in it; the one after is not.
    feed(
        &mut acc,
        &[
            start(0, true),
            stat(id, path, SEC, "NR_ANON_MAPPED", 2),
            sample(
                id,
                path,
                SEC + 1,
                v1_snap(1 << 20, 8 * 4096, 4096, 65536, 0, 0),
            ),
            stat(id, path, SEC + 2, "NR_FILE_PAGES", 3),
        ],
    );
    let w1 = only(summaries(&mut acc, SEC + 2));
    assert_eq!(w1.class_source, ClassSource::Events);
    let c1 = ClassDeltas {
        anon: 2 * PAGE,
        file: 3 * PAGE,
        kernel: 0,
        swap: 0,
        dentry_alloc_bytes: Some(0),
    };
    assert_eq!(
        w1.class_changes,
        Some(c1),
        "dentry probe attached: 0 allocations, not null"
    );
    assert_eq!(
        w1.classes.anon,
        Some(8 * 4096),
        "the sample already includes the earlier anon pages"
    );
    assert_eq!(
        w1.classes.file,
        Some(4 * 4096),
        "the sample plus the later file pages"
    );
    // Window 2: no sample, only events; the stale sample stays as the drift reference.
    feed(
        &mut acc,
        &[
            stat(id, path, 2 * SEC, "NR_ANON_MAPPED", -1),
            stat(id, path, 2 * SEC, "MEMCG_KMEM", 4),
            stat(id, path, 2 * SEC, "NR_SLAB_UNRECLAIMABLE_B", 1),
            stat(id, path, 2 * SEC, "NR_KERNEL_STACK_KB", 4),
            stat(id, path, 2 * SEC, "MEMCG_SWAP", 1),
            event_counter(id, path, 2 * SEC, "PGFAULT", 9),
            dentry(id, path, 2 * SEC, 10, 1920),
        ],
    );
    let w2 = only(summaries(&mut acc, SEC + 2 + SEC));
    assert_eq!(w2.class_source, ClassSource::Events);
    let c2 = ClassDeltas {
        anon: -PAGE,
        file: 0,
        kernel: 4 * PAGE,
        swap: PAGE,
        dentry_alloc_bytes: Some(1920),
    };
    assert_eq!(w2.class_changes, Some(c2));
    let classes = ClassBytes {
        anon: Some(7 * 4096),
        file: Some(4 * 4096),
        kernel: Some(65536 + 4 * 4096),
        swap: Some(4096),
        dentry_alloc_bytes: Some(1920),
    };
    assert_eq!(w2.classes, classes);
    assert_eq!(w2.cgroupfs_classes.and_then(|c| c.anon), Some(8 * 4096));
    assert_eq!(
        w2.stat_item_deltas.get("NR_KERNEL_STACK_KB"),
        Some(&(4 * PAGE)),
        "pages, like every state item in the tracepoints"
    );
    assert_eq!(
        w2.stat_item_deltas.get("NR_SLAB_UNRECLAIMABLE_B"),
        Some(&PAGE)
    );
    assert!(
        !w2.stat_item_deltas.contains_key("PGFAULT"),
        "event counters carry no bytes"
    );
    assert_eq!(
        w2.event_charge_rate_bytes_per_s,
        Some(3.0 * 4096.0),
        "(-1 + 4) pages in 1 s"
    );
    assert_eq!(
        (w2.dentry_allocs, w2.dentry_alloc_rate_per_s),
        (Some(10), Some(10.0))
    );
}

#[test]
fn mode_switch_and_stat_loss_fall_back_to_cgroupfs_and_resync() {
    let (id, path) = (5, "/job");
    let mut acc = accountant();
    feed(
        &mut acc,
        &[
            start(0, true),
            sample(id, path, SEC, v1_snap(1, 4096, 0, 0, 0, 0)),
        ],
    );
    assert_eq!(
        only(summaries(&mut acc, SEC)).class_source,
        ClassSource::Events
    );
    // Sampled mid-window: this window and the next are cgroupfs; baseline dropped.
    feed(
        &mut acc,
        &[
            mode(SEC + 5, "sampled"),
            sample(id, path, 2 * SEC, v1_snap(1, 8192, 0, 0, 0, 0)),
        ],
    );
    let s = only(summaries(&mut acc, 2 * SEC));
    assert_eq!(
        (s.class_source, s.classes.anon),
        (ClassSource::Cgroupfs, Some(8192))
    );
    // Full again mid-window: still cgroupfs, then events from the sample taken after the switch.
    feed(
        &mut acc,
        &[
            mode(2 * SEC + 5, "full"),
            sample(id, path, 3 * SEC, v1_snap(1, 3 * 4096, 0, 0, 0, 0)),
        ],
    );
    assert_eq!(
        only(summaries(&mut acc, 3 * SEC)).class_source,
        ClassSource::Cgroupfs
    );
    feed(&mut acc, &[stat(id, path, 4 * SEC, "NR_ANON_MAPPED", 1)]);
    let s = only(summaries(&mut acc, 4 * SEC));
    assert_eq!(
        (s.class_source, s.classes.anon),
        (ClassSource::Events, Some(4 * 4096))
    );
    // A stat map overflow makes the window cgroupfs and flags the loss.
    let loss = Record::Loss(LossRecord {
        at: stamp(5 * SEC - 1),
        stat_map_full: 1,
        ..LossRecord::default()
    });
    feed(
        &mut acc,
        &[
            stat(id, path, 5 * SEC, "NR_ANON_MAPPED", 1),
            loss,
            sample(id, path, 5 * SEC, v1_snap(1, 9 * 4096, 0, 0, 0, 0)),
        ],
    );
    let s = only(summaries(&mut acc, 5 * SEC));
    assert_eq!(
        (s.class_source, s.events_lost, s.classes.anon),
        (ClassSource::Cgroupfs, true, Some(9 * 4096))
    );
    feed(
        &mut acc,
        &[sample(id, path, 6 * SEC, v1_snap(1, 9 * 4096, 0, 0, 0, 0))],
    );
    let s = only(summaries(&mut acc, 6 * SEC));
    assert_eq!(
        (s.class_source, s.events_lost),
        (ClassSource::Events, false),
        "re-synced from the new sample"
    );
    assert_eq!(s.classes.anon, Some(9 * 4096));
}

#[test]
fn children_roll_up_into_parents_by_path_prefix() {
    let mut acc = accountant();
    feed(
        &mut acc,
        &[
            start(0, false),
            sample(1, "/kubepods", SEC / 2, v1_snap(10, 0, 0, 0, 0, 0)),
            Record::Cgroup(CgroupLifecycleRecord {
                at: stamp(1),
                cgroup: cref(4, "/kubepods2"),
                event: "mkdir".into(),
                level: 1,
                identity: identify("/kubepods2"),
            }),
            reclaim(2, "/kubepods/pod1", SEC, 100, 32, "memcg"),
            reclaim(3, "/kubepods/pod1/c1", SEC, 300, 0, "direct"),
            dentry(3, "/kubepods/pod1/c1", SEC, 4, 768),
            stat(3, "/kubepods/pod1/c1", SEC, "MEMCG_KMEM", 1),
            reclaim(4, "/kubepods2", SEC, 999, 1, "memcg"),
        ],
    );
    let all = summaries(&mut acc, SEC);
    let by_id = |id| {
        all.iter()
            .find(|s| s.cgroup.cgroup_id == id)
            .unwrap_or_else(|| panic!("no summary for {id}"))
    };
    let top = by_id(1);
    assert_eq!(
        (top.includes_children, &top.children),
        (true, &vec![2, 3]),
        "/kubepods2 is not below /kubepods"
    );
    assert_eq!(
        (
            top.reclaim.count,
            top.reclaim.pages_reclaimed,
            top.reclaim.failures
        ),
        (2, 32, 1)
    );
    assert_eq!(
        top.reclaim.by_kind,
        BTreeMap::from([("direct".to_owned(), 1), ("memcg".to_owned(), 1)])
    );
    assert_eq!(
        (top.reclaim.total_latency_ns, top.reclaim.max_latency_ns),
        (400, Some(300))
    );
    assert_eq!(
        (top.dentry_allocs, top.classes.dentry_alloc_bytes),
        (Some(4), Some(768)),
        "records seen"
    );
    assert_eq!(top.stat_item_deltas.get("MEMCG_KMEM"), Some(&PAGE));
    let pod = by_id(2);
    assert_eq!(
        (pod.children.as_slice(), pod.reclaim.count, pod.class_source),
        (&[3][..], 2, ClassSource::Unknown)
    );
    assert_eq!(pod.identity, identify("/kubepods/pod1"));
    let leaf = by_id(3);
    assert_eq!(
        (
            leaf.includes_children,
            leaf.reclaim.count,
            leaf.reclaim.pages_reclaimed
        ),
        (false, 1, 0)
    );
    assert_eq!(by_id(4).reclaim.count, 1);
    assert_eq!(all.len(), 4);
}

#[test]
fn removed_cgroups_get_a_final_summary_then_are_dropped() {
    let mut acc = accountant();
    let rmdir = Record::Cgroup(CgroupLifecycleRecord {
        at: stamp(SEC),
        cgroup: cref(2, "/a/b"),
        event: "rmdir".into(),
        level: 2,
        identity: identify("/a/b"),
    });
    feed(
        &mut acc,
        &[
            sample(1, "/a", 1, v1_snap(10, 0, 0, 0, 0, 0)),
            reclaim(2, "/a/b", 2, 50, 3, "memcg"),
            rmdir,
        ],
    );
    let first = summaries(&mut acc, SEC);
    let child = first
        .iter()
        .find(|s| s.cgroup.cgroup_id == 2)
        .expect("final summary");
    assert!(child.removed);
    let parent = first
        .iter()
        .find(|s| s.cgroup.cgroup_id == 1)
        .expect("parent");
    assert_eq!(
        (parent.children.as_slice(), parent.reclaim.count),
        (&[2][..], 1)
    );
    feed(
        &mut acc,
        &[sample(1, "/a", SEC + 1, v1_snap(10, 0, 0, 0, 0, 0))],
    );
    let next = only(summaries(&mut acc, 2 * SEC));
    assert_eq!(
        (
            next.cgroup.cgroup_id,
            next.includes_children,
            next.reclaim.count
        ),
        (1, false, 0)
    );
}

#[test]
fn reclaim_percentiles_are_exact_and_efficiency_uses_swap_cluster_max() {
    let mut acc = accountant();
    let mut records: Vec<Record> = (1..=100)
        .map(|l| reclaim(1, "/x", l, l, 16, "memcg"))
        .collect();
    let Record::Reclaim(mut unknown) = reclaim(1, "/x", 101, 0, 32, "direct") else {
        unreachable!()
    };
    unknown.missing_begin = true;
    records.push(Record::Reclaim(unknown));
    feed(&mut acc, &records);
    let r = only(summaries(&mut acc, 2 * SEC)).reclaim;
    assert_eq!(
        (
            r.count,
            r.missing_begin,
            r.latency_samples,
            r.latencies_truncated
        ),
        (101, 1, 100, false)
    );
    assert_eq!(
        (r.p50_latency_ns, r.p99_latency_ns, r.max_latency_ns),
        (Some(50), Some(99), Some(100))
    );
    assert_eq!(r.total_latency_ns, 5050);
    assert_eq!((r.pages_reclaimed, r.bytes_reclaimed), (1632, 1632 * 4096));
    assert_eq!(r.requested_pages_assumed, 101 * 32);
    assert_eq!(r.efficiency, Some(1632.0 / 3232.0));
    assert_eq!(r.failures, 0);
}

#[test]
fn latencies_beyond_the_bound_are_truncated_and_say_so() {
    let opts = AccountantOptions {
        max_latencies_per_window: 3,
        ..AccountantOptions::default()
    };
    let mut acc = Accountant::new(opts);
    feed(
        &mut acc,
        &[10, 20, 30, 1000, 5].map(|l| reclaim(1, "/x", 1, l, 1, "memcg")),
    );
    let r = only(summaries(&mut acc, SEC)).reclaim;
    assert_eq!(
        (r.count, r.latency_samples, r.latencies_truncated),
        (5, 3, true)
    );
    assert_eq!(
        (r.p50_latency_ns, r.p99_latency_ns),
        (Some(20), Some(30)),
        "over the first three"
    );
    assert_eq!(
        (r.max_latency_ns, r.total_latency_ns),
        (Some(1000), 1065),
        "over all five"
    );
    // The next window starts empty.
    feed(&mut acc, &[reclaim(1, "/x", SEC + 1, 7, 1, "memcg")]);
    let r = only(summaries(&mut acc, 2 * SEC)).reclaim;
    assert_eq!(
        (r.count, r.latencies_truncated, r.p50_latency_ns),
        (1, false, Some(7))
    );
}

#[test]
fn inactive_unknown_and_own_summaries_are_skipped_and_idle_state_is_forgotten() {
    let opts = AccountantOptions {
        forget_after_idle_windows: 1,
        ..AccountantOptions::default()
    };
    let mut acc = Accountant::new(opts);
    feed(
        &mut acc,
        &[
            sample(1, "/idle", 1, v1_snap(0, 0, 0, 0, 0, 0)),
            reclaim(0, "/x", 2, 1, 1, "direct"),
        ],
    );
    assert!(
        summaries(&mut acc, SEC).is_empty(),
        "usage 0 and id 0 are not activity"
    );
    feed(&mut acc, &[oom(7, SEC + 1)]);
    let list = acc.summaries(stamp(2 * SEC));
    let s = match &list[..] {
        [Record::Summary(s)] => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (s.oom_kills, s.cgroup.cgroup.as_deref()),
        (1, Some("/victim"))
    );
    // Feeding the summary back changes nothing.
    acc.observe(&list[0]);
    assert!(summaries(&mut acc, 3 * SEC).is_empty());
    assert!(summaries(&mut acc, 4 * SEC).is_empty());
    assert!(
        acc.cgroups.is_empty(),
        "idle state dropped: {:?}",
        acc.cgroups.keys()
    );
    assert!(acc.paths.is_empty());
}

fn oom(id: u64, mono: u64) -> Record {
    Record::Oom(OomRecord {
        at: stamp(mono),
        cgroup: cref(id, "/victim"),
        victim_pid: 9,
        victim_comm: "hog".into(),
        uid: 0,
        total_vm_kb: 0,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        pgtables_kb: 0,
        oom_score_adj: 0,
        trigger: task(),
        cgroup_source: "proc".into(),
    })
}

#[test]
fn unresolved_paths_get_a_plain_identity() {
    let mut acc = accountant();
    let Record::Reclaim(mut rec) = reclaim(42, "/", 1, 1, 1, "memcg") else {
        unreachable!()
    };
    rec.cgroup.cgroup = None;
    acc.observe(&Record::Reclaim(rec));
    let s = only(summaries(&mut acc, SEC));
    assert_eq!(
        (s.identity.kind, s.identity.name.as_str()),
        (IdentityKind::Plain, "cgroup id 42 (path unknown)")
    );
}

#[test]
fn cross_check_functions_agree_on_a_consistent_stream() {
    let records = [
        stat(3, "/a", 1, "NR_ANON_MAPPED", 5),
        stat(4, "/a/b", 1, "NR_FILE_PAGES", 2),
        stat(4, "/a/b", 1, "MEMCG_SWAP", 1),
        stat(4, "/a/b", 2, "MEMCG_KMEM", 3),
        stat(4, "/a/b", 2, "NR_SHMEM", 2),
        stat(5, "/ab", 2, "NR_ANON_MAPPED", 100),
        dentry(4, "/a/b", 2, 2, 384),
    ];
    let events = event_class_deltas(&records, 3);
    let expected = ClassDeltas {
        anon: 5 * PAGE,
        file: 2 * PAGE,
        kernel: 3 * PAGE,
        swap: PAGE,
        dentry_alloc_bytes: Some(384),
    };
    assert_eq!(events, expected, "/ab is a sibling, not a child");
    let leaf = event_class_deltas(&records, 5);
    assert_eq!((leaf.anon, leaf.dentry_alloc_bytes), (100 * PAGE, None));
    let first = v1_snap(0, 4096, 0, 8192, 0, 0);
    let last = v1_snap(0, 6 * 4096, 2 * 4096, 5 * 4096, 4096, 0);
    let files = stat_file_class_deltas(&first, &last);
    assert_eq!(
        files,
        ClassDeltas {
            dentry_alloc_bytes: None,
            ..expected
        }
    );
    let v2 = stat_file_class_deltas(&v2_snap(0, 10, 10, 10, 10, 0), &v2_snap(0, 5, 30, 10, 0, 0));
    assert_eq!(
        v2,
        ClassDeltas {
            anon: -5,
            file: 20,
            kernel: 0,
            swap: -10,
            dentry_alloc_bytes: None
        }
    );
}

#[test]
fn summary_serialises_as_a_tagged_flat_record() {
    let mut acc = accountant();
    acc.observe(&sample(5, "/job", 1, v1_snap(1 << 29, 0, 0, 0, 0, 0)));
    let rec = acc.summaries(stamp(SEC)).remove(0);
    let json = serde_json::to_value(&rec).expect("serialise");
    assert_eq!(
        (
            json["type"].as_str(),
            json["cgroup_id"].as_u64(),
            json["cgroup"].as_str()
        ),
        (Some("summary"), Some(5), Some("/job"))
    );
    assert_eq!(
        (json["mono_ns"].as_u64(), json["class_source"].as_str()),
        (Some(SEC), Some("cgroupfs"))
    );
    assert!(json["classes"]["dentry_alloc_bytes"].is_null());
    let back: Record = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, rec);
}
