//! Hierarchy roll-up, removal, reclaim statistics, idle state, identities, the cross-check
//! functions and the summary's JSON form.
use super::fixtures::*;

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
