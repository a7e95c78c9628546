//! Classes, limits and rates per window: from cgroupfs samples, from events in full mode,
//! and across mode switches and stat loss.
use super::fixtures::*;

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
