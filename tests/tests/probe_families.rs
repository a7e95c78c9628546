//! Kernel side: every probe family, driven by a deterministic workload in the test's own memcg,
//! must produce records attributed to that memcg (id and path).
use std::{os::unix::process::ExitStatusExt, path::Path, time::Duration};

use integration_tests::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(15);
const EVENTS: &str = "memcg:count_memcg_events";

fn page_size() -> i64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as i64
    } else {
        4096
    }
}

/// Every record that names a cgroup with `id` must name it by the test cgroup's path.
fn assert_paths(records: &[Value], id: u64, rel: &str) {
    for r in records.iter().filter(|r| r["cgroup_id"] == id) {
        assert_eq!(r["cgroup"], rel, "record attributed to the wrong path: {r}");
    }
}

/// Largest memory one anonymous write fault can map here (THP and mTHP sizes set to
/// `always`), so fault counts can be bounded from below on any kernel configuration.
fn max_anon_fault_bytes() -> i64 {
    let thp = Path::new("/sys/kernel/mm/transparent_hugepage");
    let always = |file: &Path| std::fs::read_to_string(file).is_ok_and(|s| s.contains("[always]"));
    let top_always = always(&thp.join("enabled"));
    let mut largest = page_size();
    if top_always {
        largest = largest.max(2 * MIB as i64);
    }
    for entry in std::fs::read_dir(thp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kib) = name
            .strip_prefix("hugepages-")
            .and_then(|n| n.strip_suffix("kB"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let setting = std::fs::read_to_string(entry.path().join("enabled")).unwrap_or_default();
        if setting.contains("[always]") || (setting.contains("[inherit]") && top_always) {
            largest = largest.max(kib * 1024);
        }
    }
    largest
}

/// An anonymous allocation held in the memcg: NR_ANON_MAPPED rises by the allocation (the
/// running total of the per-tick deltas peaks at it while the memory is held), falls back to
/// exactly 0 once the workload has exited, and the faults show up as PGFAULT events.
#[test]
fn anonymous_allocation_is_attributed() {
    let test = "anonymous_allocation_is_attributed";
    let Some((mut cg, agent)) = full_tracing_fixture(test, "anon", 256 * MIB, MEMCG_STAT_PROBES)
    else {
        return;
    };
    let id = cg.id();
    let scratch = TempDir::new("anon").expect("scratch dir");
    let marker = scratch.0.join("ready");
    let pid = cg
        .spawn(workload(&["anon-hold", "48", marker.to_str().unwrap()]))
        .expect("start the anon workload");
    assert!(
        wait_for_file(&marker, WAIT),
        "anon workload never became ready"
    );
    // A tick while the memory is held, so the running total reaches the peak.
    assert!(
        agent.wait_for_tick_after(id, monotonic_ns(), WAIT),
        "no sample tick while the anon memory was held"
    );
    std::fs::remove_file(&marker).expect("release the anon workload");
    let status = cg.wait(pid).expect("anon workload exits");
    assert!(status.success(), "anon workload failed: {status}");
    // Stopping reads the maps a last time: the frees at exit are in the stream.
    let records = agent.stop().expect("agent stops cleanly");
    assert_paths(&records, id, &cg.rel);

    let anon_records = stat_records(&records, id, "NR_ANON_MAPPED");
    assert!(
        !anon_records.is_empty(),
        "no NR_ANON_MAPPED record for cgroup {id}"
    );
    for r in &anon_records {
        assert_eq!(r["family"], "lruvec_state", "{r}");
        assert_eq!(r["unit"], "pages", "{r}");
        assert_eq!(
            r["delta_bytes"],
            r["delta"].as_i64().unwrap() * page_size(),
            "{r}"
        );
    }
    let pages = 48 * MIB as i64 / page_size();
    let peak = stat_running_peak(&records, id, "NR_ANON_MAPPED");
    let last = stat_delta_until(&records, id, "NR_ANON_MAPPED", u64::MAX);
    eprintln!("anon: NR_ANON_MAPPED peak {peak} pages, net after exit {last} (48 MiB = {pages})");
    // Slack above: the workload's own heap, stack and libc data.
    assert!(
        peak >= pages && peak <= pages + 4 * MIB as i64 / page_size(),
        "NR_ANON_MAPPED peaked at {peak} pages for a 48 MiB ({pages} pages) allocation"
    );
    assert_eq!(last, 0, "anon pages left mapped after the workload exited");

    if probe_traced(&records, EVENTS) {
        let faults = stat_delta_until(&records, id, "PGFAULT", u64::MAX);
        let least = 48 * MIB as i64 / max_anon_fault_bytes();
        eprintln!("anon: {faults} PGFAULT events (at least {least} expected)");
        assert!(
            faults >= least,
            "{faults} page faults for 48 MiB, expected >= {least}"
        );
    } else {
        skip(test, "PGFAULT part: memcg:count_memcg_events is not traced");
    }
}

/// Page-cache writes: NR_FILE_PAGES of the memcg rises by the file's size and stays (the cache
/// stays charged after the writer exits).
#[test]
fn page_cache_writes_are_attributed() {
    let test = "page_cache_writes_are_attributed";
    let Some((mut cg, agent)) = full_tracing_fixture(test, "file", 256 * MIB, MEMCG_STAT_PROBES)
    else {
        return;
    };
    let id = cg.id();
    let scratch = TempDir::new("file").expect("scratch dir");
    let file = scratch.0.join("cache.bin");
    let status = cg
        .run(workload(&["file", file.to_str().unwrap(), "64"]))
        .expect("run the page-cache workload");
    assert!(status.success(), "page-cache workload failed: {status}");
    let records = agent.stop().expect("agent stops cleanly");
    assert_paths(&records, id, &cg.rel);

    let pages = 64 * MIB as i64 / page_size();
    let net = stat_delta_until(&records, id, "NR_FILE_PAGES", u64::MAX);
    eprintln!("file: NR_FILE_PAGES +{net} pages (64 MiB = {pages})");
    // Slack above: directory and metadata blocks read or written on the workload's behalf.
    assert!(
        net >= pages && net <= pages + 4 * MIB as i64 / page_size(),
        "NR_FILE_PAGES grew by {net} pages for a 64 MiB ({pages} pages) file"
    );
    drop(scratch);
}

/// Dentry churn: the dentry-cache allocations of 20000 new files are counted for the memcg.
#[test]
fn dentry_allocations_are_attributed() {
    let test = "dentry_allocations_are_attributed";
    let needs = ["kmem:kmem_cache_alloc"];
    let Some((mut cg, agent)) = full_tracing_fixture(test, "dentry", 256 * MIB, &needs) else {
        return;
    };
    let id = cg.id();
    let scratch = TempDir::new("dentry").expect("scratch dir");
    let dir = scratch.0.join("entries");
    let status = cg
        .run(workload(&["dentry", dir.to_str().unwrap(), "20000"]))
        .expect("run the dentry workload");
    assert!(status.success(), "dentry workload failed: {status}");
    let records = agent.stop().expect("agent stops cleanly");
    // The agent is gone: remove the 20000 files now.
    drop(scratch);
    assert_paths(&records, id, &cg.rel);

    let dentries = of_type_in(&records, "dentry", id);
    let allocs: u64 = dentries.iter().map(|r| r["allocs"].as_u64().unwrap()).sum();
    eprintln!("dentry: {allocs} allocations in {} records", dentries.len());
    // Lower bound only: path lookups of the workload's own start-up allocate dentries too.
    assert!(
        allocs >= 20_000,
        "{allocs} dentry allocations for 20000 new files"
    );
    // One slab cache, one object size: every record's bytes are allocs x that size.
    let sizes: Vec<u64> = dentries
        .iter()
        .map(|r| {
            let (n, bytes) = (r["allocs"].as_u64().unwrap(), r["bytes"].as_u64().unwrap());
            assert!(
                n > 0 && bytes % n == 0,
                "bytes not a multiple of allocs: {r}"
            );
            bytes / n
        })
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] == w[1]) && sizes[0] >= 64,
        "dentry object sizes differ or are implausible: {sizes:?}"
    );
}

/// A memcg OOM kill: the hog in a 32 MiB memcg (no swap) is the victim, the `oom` record names
/// it and the memcg, and memcg reclaim ran in the memcg before the kill.
#[test]
fn memcg_oom_kill_is_attributed() {
    let test = "memcg_oom_kill_is_attributed";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("oom", Some(32 * MIB)).expect("create test cgroup");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "200"]).expect("agent starts");
    let id = cg.id();
    let (pid, status) = cg.run_with_pid(workload(&["hog"])).expect("run the hog");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "hog was not OOM-killed: {status}"
    );
    assert!(
        agent.wait_for(WAIT, |r| r["type"] == "oom" && r["victim_pid"] == pid),
        "no oom record for victim {pid}"
    );
    let records = agent.stop().expect("agent stops cleanly");
    assert_paths(&records, id, &cg.rel);

    let oom = records
        .iter()
        .find(|r| r["type"] == "oom" && r["victim_pid"] == pid)
        .unwrap();
    assert_eq!(
        oom["cgroup_id"], id,
        "oom attributed to the wrong memcg: {oom}"
    );
    assert_eq!(oom["cgroup"], cg.rel.as_str(), "{oom}");
    assert_eq!(oom["victim_comm"], "workload", "{oom}");
    assert_eq!(
        oom["trigger"]["pid"], pid,
        "the hog's own charge ran the OOM killer: {oom}"
    );
    let anon_kib = oom["anon_rss_kb"].as_u64().unwrap();
    assert!(
        (16 * 1024..=32 * 1024).contains(&anon_kib),
        "victim anon rss {anon_kib} KiB in a 32 MiB memcg"
    );
    let reclaims_before: Vec<_> = of_type_in(&records, "reclaim", id)
        .into_iter()
        .filter(|r| r["kind"] == "memcg" && mono(r) < mono(oom))
        .collect();
    assert!(
        !reclaims_before.is_empty(),
        "no memcg reclaim before the OOM kill"
    );
    assert!(
        reclaims_before.iter().all(|r| r["pid"] == pid),
        "reclaim ran in another task's context: {reclaims_before:?}"
    );
    let oom_kills: u64 = of_type_in(&records, "summary", id)
        .iter()
        .map(|s| s["oom_kills"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(oom_kills, 1, "summaries count the OOM kill once");
}

/// Slab shrinking under memcg pressure: negative dentries (unpinned, on the memcg's dcache LRU
/// on any filesystem) are created in a small memcg, then a hog forces memcg reclaim, which runs
/// the memcg-aware shrinkers (super_cache_scan for the dcache/icache) in the hog's context
/// before the OOM kill.
#[test]
fn slab_shrinking_is_attributed() {
    let test = "slab_shrinking_is_attributed";
    let Some(_) = preconditions(test) else { return };
    let mut cg = TestCgroup::create("shrink", Some(48 * MIB)).expect("create test cgroup");
    let agent = Agent::start(&["--cgroup", &cg.rel, "--interval-ms", "200"]).expect("agent starts");
    if !probe_traced(&agent.records_so_far(), "vmscan:mm_shrink_slab_end") {
        skip(
            test,
            "vmscan:mm_shrink_slab_start/end are not traced on this kernel",
        );
        return;
    }
    let id = cg.id();
    let scratch = TempDir::new("shrink").expect("scratch dir");
    let dir = scratch.0.join("lookups");
    let status = cg
        .run(workload(&["negdentry", dir.to_str().unwrap(), "50000"]))
        .expect("run the negative-dentry workload");
    assert!(
        status.success(),
        "negative-dentry workload failed: {status}"
    );
    let (pid, status) = cg.run_with_pid(workload(&["hog"])).expect("run the hog");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "hog was not OOM-killed: {status}"
    );
    let records = agent.stop().expect("agent stops cleanly");
    drop(scratch);
    assert_paths(&records, id, &cg.rel);

    let shrinks = of_type_in(&records, "shrink_slab", id);
    let by_hog: Vec<_> = shrinks.iter().filter(|r| r["pid"] == pid).collect();
    let names: std::collections::BTreeSet<_> = shrinks
        .iter()
        .filter_map(|r| r["shrinker"].as_str())
        .collect();
    let freed: i64 = shrinks
        .iter()
        .map(|r| r["freed"].as_i64().unwrap_or(0))
        .sum();
    eprintln!(
        "shrink_slab: {} records ({} by the hog), shrinkers {names:?}, {freed} objects freed",
        shrinks.len(),
        by_hog.len()
    );
    assert!(
        !by_hog.is_empty(),
        "no shrink_slab record in the hog's memcg reclaim"
    );
    for r in &shrinks {
        assert!(
            r["freed"].as_i64().unwrap() >= 0,
            "negative freed count: {r}"
        );
        if r["missing_start"] == false {
            assert!(r["nid"].as_i64().unwrap() >= 0, "start fields missing: {r}");
            assert!(
                r["cache_items"].as_u64().unwrap() > 0,
                "shrinker had nothing: {r}"
            );
            assert!(r["shrinker"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        }
    }
    assert!(
        shrinks.iter().any(|r| r["missing_start"] == false),
        "no shrink_slab record with its start joined: {shrinks:?}"
    );
}
