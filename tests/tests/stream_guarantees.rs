//! What the stream promises beyond single events: cgroup lifecycle records, exact loss
//! accounting under ring overflow, adaptive attaching of the per-page probes, and the agent
//! filtering out its own events.
use std::time::Duration;

use integration_tests::*;

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(15);
const LRUVEC: &str = "memcg:mod_memcg_lruvec_state";

/// cgroup lifecycle: a child created and removed under the test cgroup while the agent runs
/// gives a `mkdir` then an `rmdir` record with its id, path and level.
#[test]
fn cgroup_lifecycle_is_recorded() {
    let test = "cgroup_lifecycle_is_recorded";
    let Some(_) = preconditions(test) else { return };
    let cg = TestCgroup::create("life", None).expect("create test cgroup");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "200"]).expect("agent starts");
    let child = cg.dir.join("child");
    std::fs::create_dir(&child).expect("mkdir child cgroup");
    let child_id = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&child).expect("stat child").ino()
    };
    std::fs::remove_dir(&child).expect("rmdir child cgroup");
    assert!(
        agent.wait_for(WAIT, |r| r["type"] == "cgroup"
            && r["event"] == "rmdir"
            && r["cgroup_id"] == child_id),
        "no rmdir record for the child cgroup"
    );
    let records = agent.stop().expect("agent stops cleanly");

    let path = format!("{}/child", cg.rel);
    let events = of_type_in(&records, "cgroup", child_id);
    let kinds: Vec<_> = events
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["mkdir", "rmdir"],
        "lifecycle of the child: {events:?}"
    );
    for r in &events {
        assert_eq!(r["cgroup"], path.as_str(), "{r}");
        assert_eq!(r["level"], 2, "root is level 0, the test cgroup 1: {r}");
        assert_eq!(r["identity"]["name"], path.as_str(), "{r}");
    }
    assert!(
        mono(events[0]) <= mono(events[1]),
        "rmdir before mkdir: {events:?}"
    );
}

/// Loss accounting: a 4 KiB ring, a reader that stalls 200 ms after each drain and a burst of
/// 3000 child mkdir/rmdir pairs overflow the ring for sure. The final `loss` record (written
/// after the probes are detached and the ring drained) must balance for every kind, show the
/// drops, and the stream must hold exactly the lifecycle events the agent received.
#[test]
fn ring_overflow_is_counted_exactly() {
    let test = "ring_overflow_is_counted_exactly";
    let Some(_) = preconditions(test) else { return };
    let cg = TestCgroup::create("loss", None).expect("create test cgroup");
    let agent = Agent::start(&[
        "--cgroup",
        &cg.rel,
        "--interval-ms",
        "200",
        "--ring-kib",
        "4",
        "--stall-reader-ms",
        "200",
    ])
    .expect("agent starts");
    const CHILDREN: usize = 3000;
    for i in 0..CHILDREN {
        let child = cg.dir.join(format!("c{i}"));
        std::fs::create_dir(&child).expect("mkdir child cgroup");
        std::fs::remove_dir(&child).expect("rmdir child cgroup");
    }
    let records = agent.stop().expect("agent stops cleanly");

    let loss = final_loss(&records).expect("a loss record");
    let count = |field: &str, kind: &str| loss[field][kind].as_u64().unwrap_or(0);
    let kinds: Vec<&str> = loss["produced"]
        .as_object()
        .expect("produced counts")
        .keys()
        .map(String::as_str)
        .collect();
    for kind in &kinds {
        let (produced, received, dropped) = (
            count("produced", kind),
            count("received", kind),
            count("dropped", kind),
        );
        assert_eq!(
            received + dropped,
            produced,
            "{kind}: received {received} + dropped {dropped} != produced {produced}"
        );
    }
    let mkdir_dropped = count("dropped", "cgroup_mkdir");
    let rmdir_dropped = count("dropped", "cgroup_rmdir");
    let produced = count("produced", "cgroup_mkdir") + count("produced", "cgroup_rmdir");
    let received = count("received", "cgroup_mkdir") + count("received", "cgroup_rmdir");
    eprintln!(
        "loss: lifecycle produced {produced}, received {received}, dropped {} (mkdir {mkdir_dropped}, rmdir {rmdir_dropped})",
        mkdir_dropped + rmdir_dropped
    );
    assert!(
        produced >= 2 * CHILDREN as u64,
        "only {produced} lifecycle events produced"
    );
    assert!(
        mkdir_dropped > 0 && rmdir_dropped > 0,
        "the flood did not overflow the ring: {loss}"
    );

    let prefix = format!("{}/c", cg.rel);
    let lifecycle: Vec<_> = records.iter().filter(|r| r["type"] == "cgroup").collect();
    let of_children = lifecycle
        .iter()
        .filter(|r| r["cgroup"].as_str().is_some_and(|p| p.starts_with(&prefix)))
        .count() as u64;
    // Every lifecycle event the agent read became a record: the children's, plus those of any
    // cgroup created elsewhere meanwhile (none when the tests run one at a time). Events of other
    // v1 hierarchies would be read and ignored uncounted; nothing creates cgroups there.
    let others = lifecycle.len() as u64 - of_children;
    eprintln!("loss: {of_children} lifecycle records of the children, {others} of other cgroups");
    assert!(
        of_children > 0,
        "no lifecycle record of the test's children"
    );
    assert_eq!(
        of_children + others,
        received,
        "lifecycle records in the stream vs lifecycle events received"
    );
}

/// Adaptive tracing (default mode): the per-page probes attach (`mode` full) when the memcg
/// nears its limit, and detach (`mode` sampled) after the usage has stayed low for the
/// 5-sample cooldown. Anonymous memory drives it: it is charged and released the same way on
/// every kernel and filesystem (page cache on a VM's initramfs is not reclaimable).
#[test]
fn adaptive_tracing_switches_on_near_the_limit_and_back() {
    let test = "adaptive_tracing_switches_on_near_the_limit_and_back";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("adapt", Some(64 * MIB)).expect("create test cgroup");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "200"]).expect("agent starts");
    let start = agent.records_so_far();
    if let Some(status) = probe_status(&start, LRUVEC) {
        assert_eq!(
            status["attached"], false,
            "per-page probe attached at start: {status}"
        );
    }
    let id = cg.id();
    let scratch = TempDir::new("adapt").expect("scratch dir");
    let marker = scratch.0.join("ready");
    // 60 of 64 MiB: above the 90 % high watermark, below the limit (no OOM).
    let pid = cg
        .spawn(workload(&["anon-hold", "60", marker.to_str().unwrap()]))
        .expect("start the anon workload");
    assert!(
        wait_for_file(&marker, WAIT),
        "anon workload never became ready"
    );
    let went_full = agent.wait_for(WAIT, |r| r["type"] == "mode" && r["mode"] == "full");
    let usage = cg.usage().unwrap_or(0);
    std::fs::remove_file(&marker).expect("release the anon workload");
    let status = cg.wait(pid).expect("anon workload exits");
    let released = monotonic_ns();
    assert!(status.success(), "anon workload failed: {status}");
    assert!(
        went_full,
        "no switch to full tracing at usage {usage} of a 64 MiB limit"
    );
    let went_back = agent.wait_for(WAIT, |r| r["type"] == "mode" && r["mode"] == "sampled");
    let records = agent.stop().expect("agent stops cleanly");
    assert!(
        went_back,
        "no switch back to sampled after the memcg emptied"
    );

    let modes: Vec<_> = records.iter().filter(|r| r["type"] == "mode").collect();
    let kinds: Vec<_> = modes.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["full", "sampled"], "mode switches: {modes:?}");
    let (full, sampled) = (modes[0], modes[1]);
    assert!(
        full["reason"].as_str().unwrap().contains(&cg.rel),
        "the switch names the memcg near its limit: {full}"
    );
    assert!(
        full["probes"].as_array().is_some_and(|p| !p.is_empty()),
        "the switch lists the probes it attached: {full}"
    );
    // Hysteresis: the switch back comes only after the memory was released, with the
    // cooldown in its reason, and no sample after the last warm one (>= 80 % of the limit).
    assert!(
        mono(sampled) > released,
        "switched back before the memory was released: {sampled}"
    );
    assert!(
        sampled["reason"].as_str().unwrap().contains("5 samples"),
        "the switch back names the cooldown: {sampled}"
    );
    let samples = of_type_in(&records, "sample", id);
    let last_warm = samples
        .iter()
        .filter(|r| r["snapshot"]["usage_bytes"].as_u64().unwrap_or(0) * 10 >= 64 * MIB * 8)
        .map(|r| mono(r))
        .max();
    assert!(
        last_warm.is_some_and(|t| t < mono(sampled)),
        "a warm sample at or after the switch back: {samples:?}"
    );
    if probe_traced(&records, LRUVEC) {
        let in_full = of_type_in(&records, "stat", id)
            .into_iter()
            .filter(|r| r["family"] == "lruvec_state")
            .filter(|r| mono(r) > mono(full) && mono(r) <= mono(sampled))
            .count();
        assert!(in_full > 0, "no per-page stat record while in full mode");
    }
    drop(scratch);
}

/// Self-filtering: the agent's own events are dropped in the kernel and counted.
#[test]
fn agent_filters_its_own_events() {
    let test = "agent_filters_its_own_events";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("self", Some(256 * MIB)).expect("create test cgroup");
    // No --cgroup filter: the agent's own memcg is traced like any other.
    let agent = Agent::start(&["--full-tracing", "--interval-ms", "200"]).expect("agent starts");
    let agent_pid = agent.pid();
    let scratch = TempDir::new("self").expect("scratch dir");
    let file = scratch.0.join("cache.bin");
    let status = cg
        .run(workload(&["file", file.to_str().unwrap(), "16"]))
        .expect("run the page-cache workload");
    assert!(status.success(), "page-cache workload failed: {status}");
    let records = agent.stop().expect("agent stops cleanly");

    let loss = final_loss(&records).expect("a loss record");
    assert!(
        loss["self_filtered"].is_u64(),
        "loss record has self_filtered: {loss}"
    );
    eprintln!(
        "self filter: {} events of the agent dropped",
        loss["self_filtered"]
    );
    let own: Vec<_> = records.iter().filter(|r| r["pid"] == agent_pid).collect();
    assert!(own.is_empty(), "records of the agent's own task: {own:?}");
    drop(scratch);
}
