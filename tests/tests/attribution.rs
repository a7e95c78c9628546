//! Per-container attribution cross-checked against the kernel's own accounting: the class
//! changes derived from the stream's `stat` events over a window must agree with the change of
//! the cgroup's memory.stat (and v1 memory.kmem.usage_in_bytes) over the same window.
use std::{collections::BTreeMap, time::Duration};

use integration_tests::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Kernel-side view of one cgroup's classes, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Classes {
    anon: i64,
    file: i64,
    kernel: i64,
    /// v2 memory.stat `slab`; None on v1 (its memory.stat has no slab figure).
    slab: Option<i64>,
}

fn read_classes(cg: &TestCgroup) -> Classes {
    // v1: reading memory.stat flushes the cgroup's pending per-CPU stat updates first.
    let stat: BTreeMap<String, u64> = cg.memory_stat().expect("read memory.stat");
    let get = |key: &str| -> i64 {
        let value = stat
            .get(key)
            .unwrap_or_else(|| panic!("memory.stat of {} has no {key}: {stat:?}", cg.rel));
        *value as i64
    };
    match cg.version {
        Version::V1 => {
            let kmem = cg
                .read("memory.kmem.usage_in_bytes")
                .expect("read memory.kmem.usage_in_bytes");
            Classes {
                anon: get("total_rss"),
                file: get("total_cache"),
                kernel: kmem.trim().parse().expect("kmem usage is a number"),
                slab: None,
            }
        }
        Version::V2 => Classes {
            anon: get("anon"),
            file: get("file"),
            // `kernel` is missing on older kernels: the sum of its parts (sock is not kmem).
            kernel: match stat.get("kernel") {
                Some(kernel) => *kernel as i64,
                None => [
                    "kernel_stack",
                    "pagetables",
                    "sec_pagetables",
                    "percpu",
                    "slab",
                    "vmalloc",
                ]
                .iter()
                .map(|k| stat.get(*k).copied().unwrap_or(0) as i64)
                .sum(),
            },
            slab: Some(get("slab")),
        },
    }
}

/// Bytes of `items`' stat deltas for cgroup `id` stamped in (`after_mono`, `until_mono`].
fn event_bytes(
    records: &[Value],
    id: u64,
    items: &[&str],
    after_mono: u64,
    until_mono: u64,
) -> i64 {
    of_type_in(records, "stat", id)
        .into_iter()
        .filter(|r| items.iter().any(|i| r["item"] == *i))
        .filter(|r| {
            let t = r["mono_ns"].as_u64().unwrap_or(0);
            t > after_mono && t <= until_mono
        })
        .map(|r| {
            r["delta_bytes"]
                .as_i64()
                .expect("state items carry delta_bytes")
        })
        .sum()
}

/// Kernel-memory items that are not slab (all in MEMCG_KMEM / memory.kmem.usage_in_bytes).
const NON_SLAB_KERNEL_ITEMS: &[&str] = &[
    "NR_PAGETABLE",
    "NR_SECONDARY_PAGETABLE",
    "NR_KERNEL_STACK_KB",
    "MEMCG_PERCPU_B",
    "MEMCG_VMALLOC",
];

/// Relative difference of the event-derived change against the kernel's change.
fn relative_error(events: i64, kernel: i64) -> f64 {
    (events - kernel).abs() as f64 / (kernel.abs().max(1)) as f64
}

#[test]
fn event_class_changes_agree_with_memory_stat() {
    let test = "event_class_changes_agree_with_memory_stat";
    // Without the memcg tracepoints (< 6.13) class changes come from the cgroup files only:
    // there is nothing to cross-check, and the fixture says so.
    let Some((mut cg, agent)) = full_tracing_fixture(test, "attrib", 1024 * MIB, MEMCG_STAT_PROBES)
    else {
        return;
    };
    let id = cg.id();
    let scratch = TempDir::new("attrib").expect("scratch dir");
    let file = scratch.0.join("cache.bin");
    let dentries = scratch.0.join("dentries");
    let marker = scratch.0.join("anon.ready");

    // The cgroup is new and empty: nothing changes between this read and the first workload.
    let before = read_classes(&cg);
    let t_before = monotonic_ns();

    let status = cg
        .run(workload(&["file", file.to_str().unwrap(), "64"]))
        .expect("run the page-cache workload");
    assert!(status.success(), "page-cache workload failed: {status}");
    let status = cg
        .run(workload(&["dentry", dentries.to_str().unwrap(), "20000"]))
        .expect("run the dentry workload");
    assert!(status.success(), "dentry workload failed: {status}");
    let anon_pid = cg
        .spawn(workload(&["anon-hold", "48", marker.to_str().unwrap()]))
        .expect("start the anon workload");
    assert!(
        wait_for_file(&marker, Duration::from_secs(20)),
        "anon workload never became ready"
    );

    // Everything is charged and held: the page cache and dentries stay charged after their
    // writers exit, the anon workload keeps its memory until the marker goes.
    let after = read_classes(&cg);
    let t_after = monotonic_ns();
    assert!(
        agent.wait_for_tick_after(id, t_after, Duration::from_secs(10)),
        "agent wrote no sample tick after the workloads"
    );
    let records = agent.records_so_far();
    std::fs::remove_file(&marker).expect("release the anon workload");
    let status = cg.wait(anon_pid).expect("anon workload exits");
    assert!(status.success(), "anon workload failed: {status}");
    let stream = agent.stop().expect("agent stops cleanly");

    // The tick that closes the window: the first one stamped after the "after" read.
    let until = records
        .iter()
        .filter(|r| r["type"] == "sample" || r["type"] == "summary")
        .filter(|r| r["cgroup_id"] == id)
        .filter_map(|r| r["mono_ns"].as_u64())
        .find(|t| *t > t_after)
        .expect("closing tick");
    let anon = event_bytes(&records, id, &["NR_ANON_MAPPED"], t_before, until);
    let file_pages = event_bytes(&records, id, &["NR_FILE_PAGES"], t_before, until);
    let kmem = event_bytes(&records, id, &["MEMCG_KMEM"], t_before, until);
    let slab = event_bytes(
        &records,
        id,
        &["NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B"],
        t_before,
        until,
    );
    // Kernel memory that is not slab, from the same events (page-exact items, or small).
    let non_slab_kernel = event_bytes(&records, id, NON_SLAB_KERNEL_ITEMS, t_before, until);
    let kernel_anon = after.anon - before.anon;
    let kernel_file = after.file - before.file;
    let kernel_kmem = after.kernel - before.kernel;
    // v2 reports slab itself; v1 only the kernel total: estimate slab as the kernel counter's
    // change minus the non-slab kernel items.
    let (kernel_slab, slab_reference) = match after.slab.zip(before.slab) {
        Some((a, b)) => (a - b, "memory.stat slab"),
        None => (
            kernel_kmem - non_slab_kernel,
            "memory.kmem.usage_in_bytes minus non-slab kernel items",
        ),
    };
    let anon_err = relative_error(anon, kernel_anon);
    let file_err = relative_error(file_pages, kernel_file);
    let kmem_err = relative_error(kmem, kernel_kmem);
    let slab_err = relative_error(slab, kernel_slab);
    eprintln!(
        "attribution ({:?}): anon events {anon} B vs memory.stat {kernel_anon} B ({:.2} %); \
         page cache {file_pages} vs {kernel_file} ({:.2} %); kernel {kmem} vs {kernel_kmem} \
         ({:.2} %); slab {slab} vs {kernel_slab} [{slab_reference}] ({:.2} %)",
        cg.version,
        anon_err * 100.0,
        file_err * 100.0,
        kmem_err * 100.0,
        slab_err * 100.0,
    );

    // The workloads really ran in the cgroup (guards against comparing two zeros).
    assert!(
        kernel_anon >= 48 * MIB as i64,
        "anon charge {kernel_anon} < 48 MiB"
    );
    assert!(
        kernel_file >= 64 * MIB as i64,
        "page cache {kernel_file} < 64 MiB"
    );
    assert!(
        kernel_slab >= 4 * MIB as i64,
        "slab growth {kernel_slab} < 4 MiB for 20000 files"
    );
    assert!(
        anon_err <= 0.05,
        "anon: events {anon} vs memory.stat {kernel_anon}"
    );
    assert!(
        file_err <= 0.05,
        "page cache: events {file_pages} vs memory.stat {kernel_file}"
    );
    assert!(
        kmem_err <= 0.15,
        "kernel memory: events {kmem} vs kernel counter {kernel_kmem}"
    );
    // Slab deltas are coarse: the kernel hands the tracepoint each batched byte change
    // converted to pages (memcg_state_val_in_pages).
    assert!(
        slab_err <= 0.15,
        "slab: events {slab} vs {slab_reference} {kernel_slab}"
    );

    if probe_traced(&stream, "kmem:kmem_cache_alloc") {
        let allocs: u64 = of_type_in(&records, "dentry", id)
            .iter()
            .map(|r| r["allocs"].as_u64().unwrap_or(0))
            .sum();
        assert!(
            allocs >= 20_000,
            "{allocs} dentry allocations for 20000 new files"
        );
    } else {
        skip(
            test,
            "dentry part: kmem:kmem_cache_alloc is not traced on this kernel",
        );
    }

    // The agent's own summaries: identity, event-sourced classes, and at the closing tick the
    // events-advanced class sizes agree with memory.stat the same way.
    let loss = final_loss(&stream).expect("a loss record");
    assert_eq!(
        loss["stat_map_full"], 0,
        "stat events were lost: the cross-check above is void: {loss}"
    );
    let summaries = of_type_in(&stream, "summary", id);
    assert!(!summaries.is_empty(), "no summary for cgroup {id}");
    for s in &summaries {
        assert_eq!(
            s["identity"]["name"],
            cg.rel.as_str(),
            "summary identity: {s}"
        );
        assert_eq!(s["cgroup"], cg.rel.as_str(), "summary path: {s}");
        // Full tracing from the start and no stat event lost: every window is event-sourced.
        assert_eq!(s["class_source"], "events", "summary class source: {s}");
    }
    let closing = summaries
        .iter()
        .find(|s| s["mono_ns"] == until)
        .expect("a summary at the closing tick");
    let class = |name: &str| closing["classes"][name].as_i64().unwrap_or(-1);
    eprintln!(
        "summary at the closing tick: anon {} file {} kernel {} vs memory.stat {} {} {}",
        class("anon"),
        class("file"),
        class("kernel"),
        after.anon,
        after.file,
        after.kernel
    );
    assert!(
        relative_error(class("anon"), after.anon) <= 0.05,
        "{closing}"
    );
    assert!(
        relative_error(class("file"), after.file) <= 0.05,
        "{closing}"
    );
    assert!(
        relative_error(class("kernel"), after.kernel) <= 0.15,
        "{closing}"
    );
    // Frees the page cache and dentries before the cgroup goes.
    drop(scratch);
}
