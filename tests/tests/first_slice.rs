//! The first vertical slice: kernel programs -> ring buffer / per-CPU maps -> agent -> NDJSON,
//! attributed to the test's own memory cgroup.
use std::time::Duration;

use integration_tests::*;

const MIB: u64 = 1 << 20;

/// A 64 MiB memcg whose child writes 192 MiB of page cache: the kernel must reclaim the
/// cgroup's own cache to stay under the limit, so memcg reclaim begin/end pairs and stat
/// updates appear, attributed to this cgroup's id and path.
#[test]
fn stat_updates_and_reclaim_pairs_are_attributed_to_the_test_cgroup() {
    let test = "stat_updates_and_reclaim_pairs_are_attributed_to_the_test_cgroup";
    let Some(_) = preconditions(test) else { return };
    if !has_tracepoint("vmscan", "mm_vmscan_memcg_reclaim_begin") {
        // The agent mounts tracefs; a host without the tracepoint cannot run this test.
        let agent = Agent::start(&["--duration", "1"]).expect("agent starts");
        drop(agent);
        if !has_tracepoint("vmscan", "mm_vmscan_memcg_reclaim_begin") {
            skip(
                test,
                "kernel has no vmscan:mm_vmscan_memcg_reclaim_begin tracepoint",
            );
            return;
        }
    }
    let mut cg = TestCgroup::create("slice", Some(64 * MIB)).expect("create test cgroup");
    let agent = Agent::start(&[
        "--cgroup",
        &cg.rel,
        "--full-tracing",
        "--interval-ms",
        "250",
    ])
    .expect("agent starts");

    let scratch = TempDir::new("slice").expect("scratch dir");
    let file = scratch.0.join("cache.bin");
    // QEMU guests have no disk: their page cache lives in the initramfs and cannot be reclaimed
    // without swap, so there the child allocates anonymous memory past the limit instead and
    // the memcg reclaims (in vain) before the OOM killer ends it.
    let in_vm = std::env::var_os("TRACER_IN_VM").is_some();
    if in_vm {
        let status = cg
            .run(workload(&["anon", "192"]))
            .expect("run the anon workload");
        assert!(
            !status.success(),
            "192 MiB of anon memory fit in a 64 MiB memcg without swap"
        );
    } else {
        let status = cg
            .run(workload(&["file", file.to_str().unwrap(), "192"]))
            .expect("run the page-cache workload");
        assert!(status.success(), "page-cache workload failed: {status}");
    }
    // Let one more sample tick read the maps.
    std::thread::sleep(Duration::from_millis(600));
    let records = agent.stop().expect("agent stops cleanly");

    let id = cg.id();
    let start = records.first().expect("stream is not empty");
    assert_eq!(start["type"], "start");

    let reclaims = of_type_in(&records, "reclaim", id);
    assert!(
        !reclaims.is_empty(),
        "no reclaim record for cgroup {id} ({})",
        cg.rel
    );
    for r in &reclaims {
        assert_eq!(
            r["cgroup"],
            cg.rel.as_str(),
            "reclaim attributed to the wrong path: {r}"
        );
        assert_eq!(
            r["comm"], "workload",
            "reclaim ran in the workload's context: {r}"
        );
    }
    let paired: Vec<_> = reclaims
        .iter()
        .filter(|r| r["kind"] == "memcg" && r["missing_begin"] == false)
        .collect();
    assert!(
        !paired.is_empty(),
        "no joined memcg reclaim begin/end pair: {reclaims:?}"
    );
    assert!(paired
        .iter()
        .any(|r| r["latency_ns"].as_u64().unwrap_or(0) > 0));
    let reclaimed: u64 = paired
        .iter()
        .map(|r| r["nr_reclaimed"].as_u64().unwrap_or(0))
        .sum();
    if in_vm {
        skip(
            test,
            "pages reclaimed: the guest has neither swap nor disk-backed page cache",
        );
    } else {
        assert!(
            reclaimed > 0,
            "memcg reclaim freed no pages of a page-cache workload"
        );
    }

    if has_tracepoint("memcg", "mod_memcg_lruvec_state") {
        let stats = of_type_in(&records, "stat", id);
        assert!(!stats.is_empty(), "no stat record for cgroup {id}");
        assert!(stats.iter().all(|s| s["cgroup"] == cg.rel.as_str()));
        let item = if in_vm {
            "NR_ANON_MAPPED"
        } else {
            "NR_FILE_PAGES"
        };
        let file_pages: i64 = stats
            .iter()
            .filter(|s| s["item"] == item)
            .map(|s| s["hits"].as_i64().unwrap_or(0))
            .sum();
        assert!(
            file_pages > 0,
            "no {item} updates from the workload: {stats:?}"
        );
    } else {
        skip(
            test,
            "stat part: kernel has no memcg tracepoints (< 6.13); stats come from cgroup files",
        );
    }

    let loss = records
        .iter()
        .rev()
        .find(|r| r["type"] == "loss")
        .expect("a loss record");
    assert!(
        loss["dropped"]["reclaim"].is_u64(),
        "loss record carries drop counts: {loss}"
    );
    let produced = loss["produced"]["reclaim"].as_u64().unwrap();
    let received = loss["received"]["reclaim"].as_u64().unwrap();
    let dropped = loss["dropped"]["reclaim"].as_u64().unwrap();
    assert_eq!(
        received + dropped,
        produced,
        "every reclaim event is received or counted lost"
    );
    assert_eq!(records.last().unwrap()["type"], "stop");
}
