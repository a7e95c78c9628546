use super::*;

fn fixture_tracefs() -> Tracefs {
    Tracefs::at(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tracefs-6.18"
    ))
}

#[test]
fn classic_plan_from_fixture_formats() {
    let plan = plan(&fixture_tracefs(), None, true);
    for p in &plan.probes {
        assert_eq!(
            p.via,
            Via::Tracepoint,
            "{}:{}",
            p.spec.category,
            p.spec.name
        );
    }
    let c = plan.config;
    assert_eq!(c.tp_offset(TpField::MemcgStateId), 8);
    assert_eq!(c.tp_offset(TpField::EventsVal), 24);
    assert_eq!(c.tp_offset(TpField::ReclaimBeginGfp), 16);
    assert_eq!(c.tp_offset(TpField::ReclaimEndNr), 8);
    assert_eq!(c.tp_offset(TpField::OomComm), 12);
    assert_eq!(c.tp_offset(TpField::CgroupPath), 24);
    assert_eq!(c.tp_offset(TpField::ShrinkEndRetval), 48);
    assert_eq!(c.tp_offset(TpField::KmemBytesAlloc), 40);
    assert_eq!(c.flags & CONFIG_TASK_MEMCG_WALK, 0, "no BTF, no walk");
    assert!(plan.warnings.iter().any(|w| w.contains("no kernel BTF")));
}

#[test]
fn missing_tracepoints_are_unavailable_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tracefs-6.18");
    // A kernel older than 6.13: no memcg tracepoints.
    for cat in ["vmscan", "kmem", "oom", "cgroup"] {
        copy_dir(&std::path::Path::new(src).join(cat), &dir.path().join(cat));
    }
    let plan = plan(&Tracefs::at(dir.path()), None, true);
    let memcg: Vec<_> = plan
        .probes
        .iter()
        .filter(|p| p.spec.category == "memcg")
        .collect();
    assert_eq!(memcg.len(), 3);
    for p in memcg {
        let Via::Unavailable(reason) = &p.via else {
            panic!("{:?}", p.via)
        };
        assert!(reason.contains(p.spec.name), "{reason}");
        assert!(p.spec.fallback.is_some());
    }
}

#[test]
fn a_field_of_the_wrong_size_names_tracepoint_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tracefs-6.18"
    ));
    copy_dir(&src.join("oom"), &dir.path().join("oom"));
    let fmt = dir.path().join("oom/mark_victim/format");
    let text = std::fs::read_to_string(&fmt).unwrap().replace(
        "unsigned long anon_rss;\toffset:24;\tsize:8",
        "unsigned int anon_rss;\toffset:24;\tsize:4",
    );
    std::fs::write(&fmt, text).unwrap();
    let plan = plan(&Tracefs::at(dir.path()), None, true);
    let oom = plan
        .probes
        .iter()
        .find(|p| p.spec.name == "mark_victim")
        .unwrap();
    let Via::Unavailable(reason) = &oom.via else {
        panic!("{:?}", oom.via)
    };
    assert!(
        reason.contains("mark_victim") && reason.contains("anon_rss"),
        "{reason}"
    );
}

#[test]
fn host_kernel_plan_uses_tp_btf_on_hot_paths() {
    let (Ok(tracefs), Ok(btf)) = (
        Tracefs::locate(),
        Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux")),
    ) else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: this host has no tracefs mount or no BTF\n",
        );
        return;
    };
    if !tracefs.has_tracepoint("memcg", "mod_memcg_lruvec_state") {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: kernel without memcg tracepoints (< 6.13)\n",
        );
        return;
    }
    let plan = plan(&tracefs, Some(&btf), true);
    assert_ne!(
        plan.config.flags & CONFIG_TASK_MEMCG_WALK,
        0,
        "{:?}",
        plan.warnings
    );
    let lruvec = plan
        .probes
        .iter()
        .find(|p| p.spec.name == "mod_memcg_lruvec_state")
        .unwrap();
    assert_eq!(lruvec.via, Via::TpBtf);
    assert!(plan.config.off_kn_id > 0 && plan.config.off_task_cgroups > 0);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
