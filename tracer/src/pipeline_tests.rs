use super::*;
use crate::cgroupfs::CgroupVersion;
use crate::decode::tests::{bytes_of, header, reclaim};
use tracer_common::{CgroupEvent, CGROUP_PATH_LEN};

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    child_id: u64,
}

/// A fake v1 memory hierarchy with one child cgroup `/job`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("memory");
    std::fs::create_dir_all(root.join("job")).unwrap();
    let fs = CgroupFs::at(&root, CgroupVersion::V1);
    let child_id = fs.cgroup_id("/job").unwrap();
    let proc_root = dir.path().join("proc");
    std::fs::create_dir_all(proc_root.join("77")).unwrap();
    std::fs::write(
        proc_root.join("77/cgroup"),
        "5:devices:/\n4:memory:/job\n0::/\n",
    )
    .unwrap();
    let names = ItemNames::from_pairs(
        &[("NR_ANON_MAPPED", 17), ("NR_SLAB_UNRECLAIMABLE_B", 7)],
        &[("PGFAULT", 23)],
    );
    let config = PipelineConfig {
        page_size: 4096,
        memory_hierarchy_id: 4,
        proc_root,
    };
    let pipeline = Pipeline::new(
        Clock::with_offset_ns(0),
        names,
        Symbols::default(),
        fs,
        config,
    );
    Fixture {
        _dir: dir,
        pipeline,
        child_id,
    }
}

#[test]
fn reclaim_is_attributed_to_its_cgroup_path() {
    let mut f = fixture();
    let rec = f
        .pipeline
        .on_ring_record(&bytes_of(&reclaim(f.child_id, 32)))
        .unwrap();
    let Record::Reclaim(r) = rec else {
        panic!("not a reclaim: {rec:?}")
    };
    assert_eq!(r.cgroup.cgroup_id, f.child_id);
    assert_eq!(r.cgroup.cgroup.as_deref(), Some("/job"));
    assert_eq!(r.kind, "memcg");
    assert_eq!(r.nr_reclaimed, 32);
    assert!(!r.missing_begin);
    let json = serde_json::to_value(Record::Reclaim(r)).unwrap();
    assert_eq!(json["type"], "reclaim");
    assert_eq!(json["cgroup"], "/job");
    assert_eq!(json["latency_ns"], 5000);
}

#[test]
fn unknown_ids_resolve_to_null_paths() {
    let mut f = fixture();
    let rec = f
        .pipeline
        .on_ring_record(&bytes_of(&reclaim(999_999_999, 1)))
        .unwrap();
    let Record::Reclaim(r) = rec else { panic!() };
    assert_eq!(r.cgroup.cgroup, None);
}

#[test]
fn stat_totals_become_deltas_in_bytes() {
    let mut f = fixture();
    let key = StatKey {
        memcg_id: f.child_id,
        family: StatFamily::LruvecState as u32,
        item: 17,
    };
    let slab = StatKey {
        memcg_id: f.child_id,
        family: StatFamily::LruvecState as u32,
        item: 7,
    };
    let first = f.pipeline.on_stat_totals(
        1_000,
        &[
            (key, StatValue { sum: 10, hits: 10 }),
            (slab, StatValue { sum: 512, hits: 2 }),
        ],
    );
    assert_eq!(first.len(), 2);
    let second = f.pipeline.on_stat_totals(
        2_000,
        &[
            (key, StatValue { sum: 25, hits: 30 }),
            (slab, StatValue { sum: 512, hits: 2 }),
        ],
    );
    assert_eq!(second.len(), 1, "unchanged keys produce no record");
    let Record::Stat(s) = &second[0] else {
        panic!()
    };
    assert_eq!(s.item, "NR_ANON_MAPPED");
    assert_eq!(s.delta, 15);
    assert_eq!(s.unit, "pages");
    assert_eq!(s.delta_bytes, Some(15 * 4096));
    assert_eq!(s.hits, 20);
    assert_eq!(s.interval_ns, 1_000);
    assert_eq!(s.cgroup.cgroup.as_deref(), Some("/job"));
    let Record::Stat(b) = &first[0] else { panic!() };
    // Byte-sized items arrive in (rounded) pages from the tracepoint.
    assert_eq!(
        (b.item.as_str(), b.unit.as_str(), b.delta_bytes),
        ("NR_SLAB_UNRECLAIMABLE_B", "pages", Some(512 * 4096))
    );
}

fn lifecycle(kind: EventKind, id: u64, hierarchy_id: i32, path: &str) -> Vec<u8> {
    let mut buf = [0u8; CGROUP_PATH_LEN];
    buf[..path.len()].copy_from_slice(path.as_bytes());
    bytes_of(&CgroupEvent {
        header: header(kind, 0),
        cgroup_id: id,
        hierarchy_id,
        level: 1,
        flags: 0,
        _pad: 0,
        path: buf,
    })
}

#[test]
fn lifecycle_events_update_the_resolver_and_skip_other_hierarchies() {
    let mut f = fixture();
    assert!(f
        .pipeline
        .on_ring_record(&lifecycle(EventKind::CgroupMkdir, 5, 2, "/cpu-only"))
        .is_none());
    let rec = f
        .pipeline
        .on_ring_record(&lifecycle(EventKind::CgroupMkdir, 123, 4, "/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope"))
        .unwrap();
    let Record::Cgroup(c) = rec else { panic!() };
    assert_eq!(c.event, "mkdir");
    assert_eq!(c.identity.name, "docker:0123456789ab");
    assert_eq!(
        f.pipeline.cgroup_ref(123).cgroup.as_deref(),
        c.cgroup.cgroup.as_deref()
    );
    let key = StatKey {
        memcg_id: 123,
        family: 2,
        item: 17,
    };
    f.pipeline
        .on_stat_totals(1, &[(key, StatValue { sum: 1, hits: 1 })]);
    f.pipeline
        .on_ring_record(&lifecycle(EventKind::CgroupRmdir, 123, 4, "/x"))
        .unwrap();
    // The final delta of a removed cgroup is still read at the next tick...
    let last = f
        .pipeline
        .on_stat_totals(2, &[(key, StatValue { sum: 3, hits: 2 })]);
    assert_eq!(last.len(), 1);
    let Record::Stat(s) = &last[0] else { panic!() };
    assert_eq!(s.delta, 2);
    assert!(s.cgroup.cgroup.is_some(), "path kept until the tick");
    // ...then its state is dropped and its kernel map keys handed to the loader.
    let removed = f.pipeline.take_removed();
    assert_eq!(removed, vec![(123, vec![key])]);
    assert!(f.pipeline.take_removed().is_empty());
}

#[test]
fn oom_victim_memcg_comes_from_proc() {
    let mut f = fixture();
    let mut comm = [0u8; 16];
    comm[..5].copy_from_slice(b"hog\0\0");
    let ev = tracer_common::OomVictimEvent {
        header: header(EventKind::OomVictim, 0),
        victim_memcg_id: 0,
        total_vm_kb: 1,
        anon_rss_kb: 65536,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        pgtables_kb: 4,
        victim_pid: 77,
        uid: 0,
        oom_score_adj: 0,
        _pad: 0,
        victim_comm: comm,
    };
    let Record::Oom(o) = f.pipeline.on_ring_record(&bytes_of(&ev)).unwrap() else {
        panic!()
    };
    assert_eq!(o.cgroup.cgroup.as_deref(), Some("/job"));
    assert_eq!(o.cgroup.cgroup_id, f.child_id);
    assert_eq!(o.cgroup_source, "proc");
    assert_eq!(o.victim_comm, "hog");
    let mut gone = ev;
    gone.victim_pid = 78;
    let Record::Oom(o) = f.pipeline.on_ring_record(&bytes_of(&gone)).unwrap() else {
        panic!()
    };
    assert_eq!(o.cgroup_source, "trigger");
}

#[test]
fn loss_record_reports_exact_counts() {
    let mut f = fixture();
    f.pipeline
        .on_ring_record(&bytes_of(&reclaim(f.child_id, 1)));
    f.pipeline.on_ring_record(&[0u8; 3]);
    let mut counters = [0u64; COUNTER_SLOTS as usize];
    counters[Counter::Produced as usize + EventKind::Reclaim as usize] = 5;
    counters[Counter::Dropped as usize + EventKind::Reclaim as usize] = 4;
    counters[Counter::StatMapFull as usize] = 2;
    let loss = f.pipeline.loss(10, &counters);
    assert_eq!(loss.produced["reclaim"], 5);
    assert_eq!(loss.dropped["reclaim"], 4);
    assert_eq!(loss.received["reclaim"], 1);
    assert_eq!(loss.decode_errors, 1);
    assert_eq!(loss.total_dropped(), 6);
}

#[test]
fn proc_cgroup_memory_path_for_both_versions() {
    let v1 = "12:pids:/a\n4:memory:/docker/abc\n0::/\n";
    assert_eq!(
        memory_path_in_proc_cgroup(v1, CgroupVersion::V1).as_deref(),
        Some("/docker/abc")
    );
    let v2 = "0::/system.slice/x.service\n";
    assert_eq!(
        memory_path_in_proc_cgroup(v2, CgroupVersion::V2).as_deref(),
        Some("/system.slice/x.service")
    );
    assert_eq!(
        memory_path_in_proc_cgroup("0::/gone (deleted)\n", CgroupVersion::V2),
        None
    );
}
