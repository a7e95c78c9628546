//! Runtime probe selection: `tracer check` and the `start` record say how each probe is served
//! on this kernel — tp_btf or classic tracepoint where it exists, the cgroupfs fallback for the
//! memcg stat tracepoints on kernels before 6.13.
use std::process::Command;

use integration_tests::*;
use serde_json::Value;

const MEMCG_PROBES: [&str; 3] = [
    "mod_memcg_state",
    "mod_memcg_lruvec_state",
    "count_memcg_events",
];

#[test]
fn check_reports_how_each_probe_is_served() {
    let test = "check_reports_how_each_probe_is_served";
    let Some(_) = preconditions(test) else { return };
    let out = Command::new(tracer_bin())
        .arg("check")
        .output()
        .expect("run tracer check");
    assert!(
        out.status.success(),
        "tracer check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // tracer check mounts tracefs when needed, so the tracepoint look-ups below see it.
    let line_of = |probe: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(probe))
            .unwrap_or_else(|| panic!("no line for {probe} in:\n{text}"))
            .to_string()
    };
    let has_memcg = has_tracepoint("memcg", "mod_memcg_state");
    for name in MEMCG_PROBES {
        let line = line_of(&format!("memcg:{name}"));
        let via = line.split_whitespace().nth(1).unwrap_or_default();
        if has_memcg {
            assert!(via == "tp_btf" || via == "tracepoint", "{line}");
        } else {
            assert_eq!(via, "fallback", "{line}");
            assert!(
                line.contains("memory.stat"),
                "the fallback is named: {line}"
            );
        }
    }
    let stat_source = line_of("stat");
    if has_memcg {
        assert!(stat_source.contains("memcg tracepoints"), "{stat_source}");
    } else {
        assert!(
            stat_source.contains("cgroup stat files only"),
            "{stat_source}"
        );
    }
    for probe in [
        "vmscan:mm_vmscan_memcg_reclaim_begin",
        "oom:mark_victim",
        "cgroup:cgroup_mkdir",
    ] {
        let line = line_of(probe);
        assert!(
            line.contains("tracepoint") && line.contains("always"),
            "{line}"
        );
    }
    assert!(
        text.contains("BTF            yes"),
        "these hosts and guests have BTF:\n{text}"
    );
    let mode = line_of("cgroup");
    let expected = match memory_hierarchy().map(|(_, v)| v) {
        Some(Version::V1) => "memory controller on v1",
        _ => "memory controller on v2",
    };
    assert!(mode.contains(expected), "{mode}");
}

#[test]
fn start_record_states_the_probe_plan() {
    let test = "start_record_states_the_probe_plan";
    let Some(_) = preconditions(test) else { return };
    let agent = Agent::start(&["--duration", "30"]).expect("agent starts");
    let records = agent.records_so_far();
    let start = records
        .iter()
        .find(|r| r["type"] == "start")
        .expect("start record");
    let probes = start["probes"].as_array().expect("probes array");
    let status = |probe: &str| -> &Value {
        probes
            .iter()
            .find(|p| p["probe"] == probe)
            .unwrap_or_else(|| panic!("{probe} missing"))
    };
    let has_memcg = has_tracepoint("memcg", "mod_memcg_state");
    for name in MEMCG_PROBES {
        let p = status(&format!("memcg:{name}"));
        if has_memcg {
            assert_ne!(p["via"], "fallback", "{p}");
        } else {
            assert_eq!(p["via"], "fallback", "{p}");
            assert_eq!(p["attached"], false);
        }
    }
    // The per-page probes start detached (adaptive); the rare ones are attached.
    assert_eq!(status("memcg:mod_memcg_lruvec_state")["attached"], false);
    assert_eq!(
        status("vmscan:mm_vmscan_memcg_reclaim_end")["attached"],
        true
    );
    assert_eq!(status("oom:mark_victim")["attached"], true);
    let records = agent.stop().expect("agent stops");
    assert_eq!(records.last().unwrap()["type"], "stop");
}
