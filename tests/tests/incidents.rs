//! Overshoot incidents, live and rebuilt offline: each test drives one condition in its own
//! memcg, checks the live `incident` records, then runs `tracer diagnose --json --report` on the
//! recording and checks the rebuilt incident, the live/rebuilt agreement and the report files.
use std::{path::Path, process::Command, time::Duration};

use integration_tests::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn in_vm() -> bool {
    std::env::var_os("TRACER_IN_VM").is_some()
}

/// Incident records of `kind` for cgroup `id`.
fn incidents<'a>(records: &'a [Value], kind: &str, id: u64) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == "incident" && r["kind"] == kind)
        .filter(|r| r["container"]["cgroup_id"] == id)
        .collect()
}

/// Runs `tracer diagnose --json --report DIR` on a recording.
fn diagnose(recording: &Path, report_dir: &Path) -> Value {
    let out = Command::new(tracer_bin())
        .arg("diagnose")
        .arg(recording)
        .arg("--json")
        .arg("--report")
        .arg(report_dir)
        .output()
        .expect("run tracer diagnose");
    assert!(
        out.status.success(),
        "tracer diagnose failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("diagnose --json prints one JSON object")
}

/// The rebuilt incident of `kind` for the cgroup, with the report checked: markdown and HTML
/// written, every SVG timeline well-formed XML with an <svg> root.
fn check_rebuilt(recording: &Path, scratch: &Path, kind: &str, id: u64, rel: &str) -> Value {
    let report_dir = scratch.join("report");
    let summary = diagnose(recording, &report_dir);
    assert_eq!(
        summary["skipped_count"], 0,
        "a clean recording has no skipped lines"
    );
    assert_eq!(
        summary["agreement"]["status"], "agree",
        "live and rebuilt incidents agree"
    );
    let rebuilt = summary["incidents"]
        .as_array()
        .expect("incidents array")
        .iter()
        .find(|i| i["kind"] == kind && i["container"]["cgroup_id"] == id)
        .unwrap_or_else(|| {
            panic!(
                "no rebuilt {kind} incident for {rel}: {}",
                summary["incidents"]
            )
        })
        .clone();
    assert_eq!(rebuilt["container"]["cgroup"], rel);
    for file in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(report_dir.join(file)).expect("report file written");
        assert!(text.contains(rel), "{file} names the container {rel}");
    }
    let svgs: Vec<_> = std::fs::read_dir(&report_dir)
        .expect("report dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "svg"))
        .collect();
    assert!(!svgs.is_empty(), "one SVG timeline per incident");
    for svg in svgs {
        let text = std::fs::read_to_string(&svg).expect("read svg");
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", svg.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }
    rebuilt
}

#[test]
fn limit_hit_with_reclaim_is_an_incident_live_and_offline() {
    let test = "limit_hit_with_reclaim_is_an_incident_live_and_offline";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("limithit", Some(64 * MIB)).expect("create cgroup");
    let scratch = TempDir::new("limithit").expect("scratch");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "250"]).expect("agent");
    let copy = scratch.0.join("recording.ndjson");
    if in_vm() {
        // No disk in the guest: page cache is not reclaimable there, so the hit ends in OOM.
        let _ = cg
            .run(workload(&["anon", "128"]))
            .expect("run anon workload");
    } else {
        let file = scratch.0.join("cache.bin");
        let status = cg
            .run(workload(&["file", file.to_str().unwrap(), "160"]))
            .expect("run");
        assert!(status.success(), "page-cache workload failed: {status}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let records = agent.stop_saving(&copy).expect("agent stops");

    let id = cg.id();
    let live = incidents(&records, "limit_hit", id);
    assert!(
        !live.is_empty(),
        "no live limit_hit incident for {}",
        cg.rel
    );
    assert_eq!(live[0]["phase"], "open");
    assert_eq!(live[0]["container"]["cgroup"], cg.rel.as_str());
    let last = live.last().unwrap();
    assert!(
        last["limit_hits"].as_u64().unwrap_or(0) > 0,
        "limit hits counted: {last}"
    );
    if !in_vm() {
        assert_eq!(
            last["phase"], "close",
            "the hit ends when the workload ends: {last}"
        );
        assert!(
            last["reclaim"]["count"].as_u64().unwrap_or(0) > 0,
            "reclaims collected: {last}"
        );
        assert!(last["reclaim"]["pages_reclaimed"].as_u64().unwrap_or(0) > 0);
        assert_eq!(last["outcome"]["kind"], "recovered_by_reclaim");
    }
    check_rebuilt(&copy, &scratch.0, "limit_hit", id, &cg.rel);
}

#[test]
fn memcg_oom_kill_is_an_incident_with_the_victim() {
    let test = "memcg_oom_kill_is_an_incident_with_the_victim";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("oom", Some(32 * MIB)).expect("create cgroup");
    let scratch = TempDir::new("oom").expect("scratch");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "250"]).expect("agent");
    let copy = scratch.0.join("recording.ndjson");
    let pid = cg.spawn(workload(&["hog"])).expect("spawn hog");
    let found = agent.wait_for(Duration::from_secs(30), |r| {
        r["type"] == "incident" && r["kind"] == "oom" && r["phase"] == "close"
    });
    // Let the incident close (no new kills for two samples) before stopping.
    std::thread::sleep(Duration::from_millis(300));
    let records = agent.stop_saving(&copy).expect("agent stops");
    assert!(found, "no closed oom incident within 30 s");

    let id = cg.id();
    let oom = records
        .iter()
        .find(|r| r["type"] == "oom" && r["victim_pid"] == pid)
        .unwrap_or_else(|| panic!("no oom record for victim {pid}"));
    assert_eq!(oom["cgroup_id"], id);
    assert_eq!(oom["victim_comm"], "workload");
    let live = incidents(&records, "oom", id);
    let closed = live
        .iter()
        .find(|r| r["phase"] == "close")
        .expect("closed oom incident");
    assert_eq!(closed["outcome"]["kind"], "oom_killed");
    assert_eq!(closed["outcome"]["pid"], pid);
    assert_eq!(closed["outcome"]["comm"], "workload");
    assert!(closed["oom_kills"].as_u64().unwrap_or(0) >= 1);
    let rebuilt = check_rebuilt(&copy, &scratch.0, "oom", id, &cg.rel);
    assert_eq!(rebuilt["outcome"]["pid"], pid);
}

#[test]
fn soft_limit_overshoot_is_an_incident() {
    let test = "soft_limit_overshoot_is_an_incident";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("soft", Some(256 * MIB)).expect("create cgroup");
    // v1: soft limit well below the workload; v2: memory.high (the kernel throttles and
    // reclaims above it, but anon memory cannot go anywhere without swap: usage stays above).
    let soft = if cg.version == Version::V1 {
        16 * MIB
    } else {
        40 * MIB
    };
    cg.set_soft_limit(soft).expect("set the soft limit");
    let scratch = TempDir::new("soft").expect("scratch");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "250"]).expect("agent");
    let copy = scratch.0.join("recording.ndjson");
    cg.spawn(workload(&["anon", "48", "20000"]))
        .expect("spawn anon workload");
    let found = agent.wait_for(Duration::from_secs(30), |r| {
        r["type"] == "incident" && r["kind"] == "soft_overshoot"
    });
    // Release the memory: the incident closes after two samples under the limit.
    cg.kill_tasks();
    std::thread::sleep(Duration::from_millis(1200));
    let records = agent.stop_saving(&copy).expect("agent stops");
    assert!(found, "no soft_overshoot incident within 30 s");

    let id = cg.id();
    let live = incidents(&records, "soft_overshoot", id);
    assert!(!live.is_empty());
    let open = live[0];
    assert_eq!(open["container"]["cgroup"], cg.rel.as_str());
    let peak = &live.last().unwrap()["peak"];
    assert_eq!(
        peak["limit_bytes"], soft,
        "the soft limit is the one exceeded: {peak}"
    );
    assert!(
        peak["excess_bytes"].as_i64().unwrap_or(0) > 0,
        "usage above the soft limit: {peak}"
    );
    let expected = if cg.version == Version::V1 {
        "memory.soft_limit_in_bytes"
    } else {
        "memory.high"
    };
    assert_eq!(open["limit_file"], expected);
    check_rebuilt(&copy, &scratch.0, "soft_overshoot", id, &cg.rel);
}
