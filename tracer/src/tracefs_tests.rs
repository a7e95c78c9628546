use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tracefs-6.18");

fn fixture(category: &str, name: &str) -> TracepointFormat {
    Tracefs::at(FIXTURES).format(category, name).unwrap()
}

#[test]
fn every_fixture_parses_with_the_common_header() {
    let mut parsed = 0;
    for category in std::fs::read_dir(FIXTURES).unwrap() {
        for event in std::fs::read_dir(category.unwrap().path()).unwrap() {
            let dir = event.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let category = dir
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let text = std::fs::read_to_string(dir.join("format")).unwrap();
            let format = parse_format(&category, &name, &text).unwrap();
            assert!(format.id > 0, "{category}:{name}");
            let common_type = format.field_sized("common_type", 2).unwrap();
            assert_eq!(
                (common_type.offset, common_type.c_type.as_str()),
                (0, "unsigned short")
            );
            assert!(format.field("common_pid").unwrap().signed);
            parsed += 1;
        }
    }
    assert_eq!(parsed, 16, "fixture count changed");
}

#[test]
fn known_fixture_offsets() {
    let layout = |f: &FormatField| (f.offset, f.size, f.signed, f.data_loc);
    let memcg = fixture("memcg", "mod_memcg_state");
    assert_eq!(memcg.id, 763);
    assert_eq!(
        layout(memcg.field_sized("id", 8).unwrap()),
        (8, 8, false, false)
    );
    assert_eq!(layout(memcg.field("item").unwrap()), (16, 4, true, false));
    assert_eq!(layout(memcg.field("val").unwrap()), (20, 4, true, false));
    assert_eq!(memcg.field("id").unwrap().c_type, "u64");
    let events = fixture("memcg", "count_memcg_events");
    assert_eq!(
        layout(events.field_sized("val", 8).unwrap()),
        (24, 8, false, false)
    );
    let kmem = fixture("kmem", "kmem_cache_alloc");
    let name = kmem.field("name").unwrap();
    assert_eq!(
        (layout(name), name.c_type.as_str()),
        ((24, 4, false, true), "char[]")
    );
    assert_eq!(kmem.field("ptr").unwrap().c_type, "const void *");
    assert_eq!(kmem.field("accounted").unwrap().offset, 60);
    assert_eq!(
        layout(fixture("oom", "mark_victim").field("comm").unwrap()),
        (12, 4, false, true)
    );
    assert_eq!(
        layout(fixture("cgroup", "cgroup_mkdir").field("path").unwrap()),
        (24, 4, false, true)
    );
}

#[test]
fn declarations_split_into_type_and_name() {
    let split = |d: &str| split_declaration(d).unwrap();
    assert_eq!(split("char comm[16]"), ("char[16]".into(), "comm".into()));
    assert_eq!(
        split("const void * ptr"),
        ("const void *".into(), "ptr".into())
    );
    assert_eq!(
        split("struct foo *bar"),
        ("struct foo *".into(), "bar".into())
    );
    assert_eq!(
        split("__data_loc char[] name"),
        ("__data_loc char[]".into(), "name".into())
    );
    assert!(split_declaration("lonely").is_none());
    assert!(split_declaration("int 3x").is_none());
}

#[test]
fn missing_and_mis_sized_fields_say_what_exists() {
    let memcg = fixture("memcg", "mod_memcg_state");
    let missing = memcg.field("memcg_id").unwrap_err().to_string();
    for expected in [
        "memcg:mod_memcg_state",
        "`memcg_id`",
        "common_pid, id, item, val",
    ] {
        assert!(missing.contains(expected), "{missing}");
    }
    let sized = memcg.field_sized("val", 8).unwrap_err().to_string();
    for expected in ["`val`", "memcg:mod_memcg_state", "is 4 bytes", "expects 8"] {
        assert!(sized.contains(expected), "{sized}");
    }
}

#[test]
fn garbage_input_is_an_error() {
    let good = std::fs::read_to_string(format!("{FIXTURES}/memcg/mod_memcg_state/format")).unwrap();
    let cases = [
        ("", "no `ID:` line"),
        ("hello\nworld\n", "no `ID:` line"),
        (
            "name: mod_memcg_state\nID: 7\nformat:\n",
            "no `field:` lines",
        ),
        ("ID: x\n", "ID `x` is not a number"),
        (
            "ID: 1\n\tfield:int val;\toffset:zz;\tsize:4;\tsigned:1;\n",
            "offset `zz` is not a number",
        ),
        ("ID: 1\n\tfield:int val;\tsize:4;\tsigned:1;\n", "no offset"),
        (
            "ID: 1\n\tfield:val;\toffset:1;\tsize:4;\n",
            "cannot split `val`",
        ),
        ("ID: 1\n\tfield:int val;\toffset 8;\n", "is not key:value"),
        ("name: other\nID: 1\n", "names tracepoint `other`"),
    ];
    for (text, expected) in cases {
        let error = parse_format("memcg", "mod_memcg_state", text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected) && error.contains("memcg:mod_memcg_state"),
            "{error}"
        );
    }
    let binary: String = (0u8..=255).map(char::from).cycle().take(4096).collect();
    assert!(parse_format("memcg", "mod_memcg_state", &binary).is_err());
    for cut in (0..good.len()).step_by(7) {
        // Truncation never panics; a cut inside the field list may still parse.
        let _ = parse_format("memcg", "mod_memcg_state", &good[..cut]);
    }
    assert!(parse_format("memcg", "mod_memcg_state", &good[..20]).is_err());
}

#[test]
fn tracefs_accepts_mount_points_and_event_directories() {
    let events_root = Tracefs::at(FIXTURES);
    assert!(events_root.has_tracepoint("memcg", "mod_memcg_state"));
    assert!(!events_root.has_tracepoint("memcg", "nope"));
    let missing = events_root.format("memcg", "nope").unwrap_err();
    assert!(matches!(missing, TracefsError::Missing { .. }), "{missing}");
    assert!(missing.to_string().contains("memcg:nope"));

    let mount = tempfile::tempdir().unwrap();
    let dir = mount.path().join("events/oom/mark_victim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        format!("{FIXTURES}/oom/mark_victim/format"),
        dir.join("format"),
    )
    .unwrap();
    let mounted = Tracefs::at(mount.path());
    assert_eq!(
        mounted.format("oom", "mark_victim").unwrap(),
        fixture("oom", "mark_victim")
    );
    assert!(mounted.has_tracepoint("oom", "mark_victim"));

    let empty = tempfile::tempdir().unwrap();
    let found = Tracefs::locate_among(&[empty.path(), mount.path()]).unwrap();
    assert_eq!(found.root(), mount.path());
    let error = Tracefs::locate_among(&[empty.path()])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("mount -t tracefs nodev /sys/kernel/tracing"),
        "{error}"
    );
}

#[test]
fn running_kernel_matches_the_parser() {
    let Ok(tracefs) = Tracefs::locate() else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: tracefs is not mounted on this machine\n",
        );
        return;
    };
    if !tracefs.has_tracepoint("memcg", "mod_memcg_state") {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: this kernel has no memcg:mod_memcg_state (older than 6.13)\n",
        );
        return;
    }
    let live = tracefs.format("memcg", "mod_memcg_state").unwrap();
    for field in ["id", "item", "val"] {
        assert!(live.field(field).is_ok(), "{live:?}");
    }
    eprintln!("live memcg:mod_memcg_state: {live:?}");
}
