//! Per-container summaries name containers the way operators know them and roll children up
//! into their parents — on every kernel (from the cgroup stat files where the memcg
//! tracepoints are missing).
use std::time::Duration;

use integration_tests::*;

const MIB: u64 = 1 << 20;
const CONTAINER_ID: &str = "4f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

#[test]
fn summaries_name_the_container_and_roll_up_to_the_parent() {
    let test = "summaries_name_the_container_and_roll_up_to_the_parent";
    let Some(_) = preconditions(test) else { return };
    let parent = TestCgroup::create("sum", Some(512 * MIB)).expect("create parent");
    // A Docker-shaped leaf (systemd driver): the agent must call it docker:<short id>.
    let mut leaf = parent
        .child(&format!("docker-{CONTAINER_ID}.scope"))
        .expect("create leaf");
    let agent = Agent::start(&["--cgroup", &parent.rel, "--interval-ms", "250"]).expect("agent");
    let scratch = TempDir::new("sum").expect("scratch");
    let marker = scratch.0.join("ready");
    leaf.spawn(workload(&["anon-hold", "32", marker.to_str().unwrap()]))
        .expect("spawn");
    assert!(
        wait_for_file(&marker, Duration::from_secs(30)),
        "workload never got ready"
    );
    let leaf_id = leaf.id();
    let parent_id = parent.id();
    let seen = agent.wait_for(Duration::from_secs(20), |r| {
        r["type"] == "summary"
            && r["cgroup_id"] == parent_id
            && r["children"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| *x == leaf_id))
            && r["classes"]["anon"].as_u64().unwrap_or(0) >= 30 * MIB
    });
    let _ = std::fs::remove_file(&marker);
    leaf.kill_tasks();
    let records = agent.stop().expect("agent stops");
    assert!(seen, "no parent summary rolling up the leaf's 32 MiB");

    let leaf_summaries = of_type_in(&records, "summary", leaf_id);
    assert!(!leaf_summaries.is_empty(), "no summary for the leaf");
    let s = leaf_summaries.last().unwrap();
    assert_eq!(s["cgroup"], leaf.rel.as_str());
    assert_eq!(s["identity"]["kind"], "container");
    assert_eq!(s["identity"]["runtime"], "docker");
    assert_eq!(
        s["identity"]["name"],
        format!("docker:{}", &CONTAINER_ID[..12])
    );
    let held = leaf_summaries
        .iter()
        .map(|s| s["classes"]["anon"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        held >= 30 * MIB,
        "the leaf's anon class shows the 32 MiB held: {held}"
    );
    let source = s["class_source"].as_str().unwrap_or_default();
    assert!(
        source == "events" || source == "cgroupfs",
        "class source stated: {s}"
    );
    let parent_summary = of_type_in(&records, "summary", parent_id);
    let p = parent_summary
        .iter()
        .find(|p| p["includes_children"] == true)
        .expect("rolled up");
    assert_eq!(
        p["limits"]["hard"],
        512 * MIB,
        "the parent's own limit is reported: {p}"
    );
    drop(leaf);
}
