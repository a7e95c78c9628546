use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cgroupfs/");

fn fixture(name: &str) -> String {
    fs::read_to_string(format!("{FIXTURES}{name}")).expect("fixture is readable")
}

/// A writable fake cgroupfs: a temp copy of fixtures/cgroupfs/<version>/ (one cgroup "job";
/// v1 file contents copied from this host's /sys/fs/cgroup/memory).
fn fake_tree(version: &str) -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from)
            .expect("list fixture dir")
            .map(|e| e.expect("entry"))
        {
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), target).expect("copy fixture");
            }
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&Path::new(FIXTURES).join(version), tmp.path());
    tmp
}

#[test]
fn detects_this_hosts_hybrid_layout() {
    let layout = detect_layout(&fixture("mountinfo-hybrid.txt"), |_| false).expect("layout");
    assert_eq!(layout.mode, CgroupMode::Hybrid);
    assert_eq!(layout.memory_version, CgroupVersion::V1);
    assert_eq!(layout.memory_root, Path::new("/sys/fs/cgroup/memory"));
    assert_eq!(
        layout.unified_root.as_deref(),
        Some(Path::new("/sys/fs/cgroup/unified"))
    );
}

#[test]
fn detects_pure_v2_and_pure_v1_layouts() {
    let v2 = detect_layout(&fixture("mountinfo-v2.txt"), |p| {
        p == Path::new("/sys/fs/cgroup")
    })
    .expect("v2 layout");
    assert_eq!(
        (v2.mode, v2.memory_version),
        (CgroupMode::V2, CgroupVersion::V2)
    );
    assert_eq!(v2.memory_root, Path::new("/sys/fs/cgroup"));
    let v1 = detect_layout(&fixture("mountinfo-v1.txt"), |_| true).expect("v1 layout");
    assert_eq!(
        (v1.mode, v1.memory_version),
        (CgroupMode::V1, CgroupVersion::V1)
    );
    assert_eq!(
        (v1.memory_root.as_path(), v1.unified_root),
        (Path::new("/sys/fs/cgroup/memory"), None)
    );
}

#[test]
fn no_memory_controller_is_an_error_naming_the_cgroup2_root() {
    // The fixture has a v1 mount named "memory\040disabled" with `name=memory`: not the controller.
    let err = detect_layout(&fixture("mountinfo-no-memory.txt"), |_| false).expect_err("none");
    assert!(
        matches!(err, CgroupError::NoMemoryController { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("/sys/fs/cgroup/unified/cgroup.controllers"),
        "{err}"
    );
    let bad = detect_layout("1 2 0:3 / /x rw shared:1\n", |_| true).expect_err("malformed");
    assert!(
        matches!(bad, CgroupError::Mountinfo { line_no: 1, .. }),
        "{bad}"
    );
}

#[test]
fn mount_points_are_unescaped() {
    let line = "35 31 0:32 / /sys/fs/cgroup/my\\040mem rw - cgroup cgroup rw,memory\n";
    let layout = detect_layout(line, |_| false).expect("layout");
    assert_eq!(layout.memory_root, Path::new("/sys/fs/cgroup/my mem"));
}

#[test]
fn v1_snapshot_and_classes() {
    let tmp = fake_tree("v1");
    let snap = CgroupFs::at(tmp.path(), CgroupVersion::V1)
        .read_snapshot("/job")
        .expect("snap");
    assert_eq!(
        (snap.usage_bytes, snap.max_usage_bytes),
        (368185344, Some(1786122240))
    );
    let limits = Limits {
        soft: Some(268435456),
        ..Limits::default()
    };
    assert_eq!(
        snap.limits, limits,
        "9223372036854771712 reads as unlimited"
    );
    assert_eq!(
        (snap.failcnt, snap.kmem_usage_bytes),
        (Some(5), Some(69115904))
    );
    assert_eq!(snap.swap_usage_bytes, Some(368312320 - 368185344));
    let events: Vec<_> = snap.events.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(events, [("max", 5), ("oom_kill", 2), ("under_oom", 1)]);
    assert_eq!(snap.stat.get("rss_huge"), Some(&0));
    let local = MemoryClasses {
        anon: 6045696,
        file: 12759040,
        kernel: 69115904,
        dentry: None,
        swap: 0,
    };
    assert_eq!(snap.classes(false), local);
    let total = MemoryClasses {
        anon: 11124736,
        file: 301613056,
        ..local
    };
    assert_eq!(snap.classes(true), total);
}

#[test]
fn v2_snapshot_and_classes() {
    let tmp = fake_tree("v2");
    let fs = CgroupFs::at(tmp.path(), CgroupVersion::V2);
    let snap = fs.read_snapshot("job").expect("snapshot");
    assert_eq!(
        (snap.usage_bytes, snap.max_usage_bytes),
        (3654524928, Some(4294967296))
    );
    let limits = Limits {
        high: Some(4294967296),
        low: Some(0),
        min: Some(0),
        ..Limits::default()
    };
    assert_eq!(snap.limits, limits);
    assert_eq!(
        (
            snap.events["high"],
            snap.events["oom_kill"],
            snap.events.len()
        ),
        (17, 1, 6)
    );
    assert_eq!((snap.failcnt, snap.swap_usage_bytes), (None, Some(8388608)));
    let classes = MemoryClasses {
        anon: 1288343552,
        file: 2205876224,
        kernel: 160259840,
        dentry: None,
        swap: 8388608,
    };
    assert_eq!(snap.classes(false), classes);
    assert_eq!(
        snap.classes(true),
        classes,
        "v2 stat is hierarchical already"
    );
    // Kernels before 5.18 have no `kernel` key: sum the parts instead.
    let mut old = snap.clone();
    old.stat.remove("kernel");
    let parts = 3260416 + 11780096 + 1154816 + 212992 + 143581184 + 278528;
    assert_eq!(old.classes(false).kernel, parts);
}

#[test]
fn write_limit_writes_what_the_kernel_expects() {
    let (v1_tree, v2_tree) = (fake_tree("v1"), fake_tree("v2"));
    let (v1_dir, v2_dir) = (v1_tree.path().join("job"), v2_tree.path().join("job"));
    let v1 = CgroupFs::at(v1_tree.path(), CgroupVersion::V1);
    v1.write_limit("/job", LimitKind::Hard, Some(536870912))
        .expect("write");
    let read = |p: PathBuf| fs::read_to_string(p).expect("read back");
    assert_eq!(read(v1_dir.join("memory.limit_in_bytes")), "536870912");
    assert_eq!(
        v1.read_limit("/job", LimitKind::Hard).expect("read"),
        Some(536870912)
    );
    v1.write_limit("/job", LimitKind::MemSwap, None)
        .expect("write");
    assert_eq!(read(v1_dir.join("memory.memsw.limit_in_bytes")), "-1");
    assert_eq!(
        v1.read_limit("/job", LimitKind::MemSwap).expect("read"),
        None
    );
    let v2 = CgroupFs::at(v2_tree.path(), CgroupVersion::V2);
    v2.write_limit("/job", LimitKind::High, None)
        .expect("write");
    assert_eq!(read(v2_dir.join("memory.high")), "max");
    v2.write_limit("/job", LimitKind::Swap, Some(0))
        .expect("write");
    assert_eq!(read(v2_dir.join("memory.swap.max")), "0");
    let unsupported = v1
        .write_limit("/job", LimitKind::High, Some(1))
        .expect_err("v1 high");
    assert!(
        matches!(unsupported, CgroupError::UnsupportedLimit { .. }),
        "{unsupported}"
    );
    assert!(v2.read_limit("/job", LimitKind::Soft).is_err());
    // A missing file is reported, never created.
    let gone = v2
        .write_limit("/gone", LimitKind::Hard, None)
        .expect_err("no cgroup");
    assert!(gone.to_string().contains("gone/memory.max"), "{gone}");
    assert!(!v2_tree.path().join("gone").exists());
}

#[test]
fn parent_components_are_rejected() {
    let fs = CgroupFs::at("/sys/fs/cgroup/memory", CgroupVersion::V1);
    assert_eq!(
        fs.path_of("/a/b").expect("path"),
        Path::new("/sys/fs/cgroup/memory/a/b")
    );
    assert_eq!(
        fs.path_of("/").expect("root"),
        Path::new("/sys/fs/cgroup/memory")
    );
    for rel in ["/a/../b", "..", "/../../etc"] {
        let err = fs.path_of(rel).expect_err("`..` must be rejected");
        assert!(
            matches!(err, CgroupError::ParentComponent { .. }),
            "{rel}: {err}"
        );
        assert!(fs.read_snapshot(rel).is_err());
    }
    let limit = fs
        .write_limit("/x/..", LimitKind::Hard, Some(1))
        .expect_err("rejected");
    assert!(
        matches!(limit, CgroupError::ParentComponent { .. }),
        "{limit}"
    );
}

#[test]
fn removed_cgroup_error_names_file_and_cause() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = CgroupFs::at(tmp.path(), CgroupVersion::V1)
        .read_snapshot("/x")
        .expect_err("gone");
    let text = err.to_string();
    assert!(
        text.contains("/x/memory.stat") && text.contains("removed"),
        "{text}"
    );
}

#[test]
fn procs_children_and_ids() {
    let tmp = fake_tree("v1");
    fs::create_dir_all(tmp.path().join("job/zeta")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("job/alpha")).expect("mkdir");
    let cg = CgroupFs::at(tmp.path(), CgroupVersion::V1);
    assert_eq!(cg.procs("/job").expect("procs"), [1, 42]);
    assert_eq!(cg.children("/job").expect("children"), ["alpha", "zeta"]);
    let inode = fs::metadata(tmp.path().join("job/alpha"))
        .expect("stat")
        .ino();
    assert_eq!(cg.cgroup_id("/job/alpha").expect("id"), inode);
}

/// Reads the real host hierarchy; never writes.
#[test]
fn reads_the_real_v1_root_read_only() {
    let root = Path::new("/sys/fs/cgroup/memory");
    if !root.join("memory.stat").exists() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "SKIPPED: no cgroup v1 memory controller at {}\n",
                root.display()
            )
            .as_bytes(),
        );
        return;
    }
    let layout = detect_host_layout().expect("host layout");
    assert_eq!(
        (layout.memory_version, layout.memory_root.as_path()),
        (CgroupVersion::V1, root)
    );
    let cg = CgroupFs::from_layout(&layout);
    let snap = cg.read_snapshot("/").expect("root snapshot");
    assert!(
        snap.usage_bytes > 0 && snap.stat.contains_key("total_rss"),
        "{snap:?}"
    );
    let classes = snap.classes(true);
    assert!(classes.anon + classes.file > 0, "{classes:?}");
    assert!(cg.cgroup_id("/").expect("root id") > 0);
}
