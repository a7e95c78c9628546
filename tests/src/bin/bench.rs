//! Benchmarks (speed, never pass/fail), run as root by `cargo xtask bench`:
//!
//! bench latency [ROUNDS]   detection latency: kernel event -> incident line read from the
//!                          agent's stdout, over ROUNDS limit hits in fresh memcgs (default 30)
//! bench cost [SECS]        probe cost: page-fault loop throughput with no agent, the agent in
//!                          its default (sampled) mode and with --full-tracing (default 3 s each,
//!                          three interleaved rounds)
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use integration_tests::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(rounds: usize) -> anyhow::Result<()> {
    let mut agent = Command::new(tracer_bin())
        .args(["run", "--interval-ms", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = agent.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<(u64, Value)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let read_at = monotonic_ns();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send((read_at, v)).is_err() {
                    break;
                }
            }
        }
    });
    // Wait for the start record.
    loop {
        let (_, v) = rx.recv_timeout(Duration::from_secs(60))?;
        if v["type"] == "start" {
            break;
        }
    }
    let scratch = TempDir::new("bench")?;
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let mut cg = TestCgroup::create(&format!("bench{round}"), Some(32 * MIB))?;
        let id = cg.id();
        let file = scratch.0.join(format!("cache-{round}.bin"));
        cg.run(workload(&["file", file.to_str().unwrap_or_default(), "48"]))?;
        let _ = std::fs::remove_file(&file);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first_reclaim: Option<u64> = None;
        while let Ok((read_at, v)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if v["type"] == "reclaim" && v["cgroup_id"] == id && first_reclaim.is_none() {
                first_reclaim = v["mono_ns"].as_u64();
            }
            if v["type"] == "incident" && v["phase"] == "open" && v["container"]["cgroup_id"] == id
            {
                if let Some(kernel_ns) = first_reclaim {
                    latencies.push(read_at.saturating_sub(kernel_ns));
                }
                break;
            }
        }
        drop(cg);
    }
    // SAFETY: SIGINT to the agent we spawned.
    unsafe { libc::kill(agent.id() as i32, libc::SIGINT) };
    let _ = agent.wait();
    latencies.sort_unstable();
    println!("detection latency: first memcg reclaim event (kernel time) -> incident line read");
    println!("  rounds {rounds}, incidents detected {}", latencies.len());
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        println!(
            "  {name:<4} {:>9.3} ms",
            percentile(&latencies, p) as f64 / 1e6
        );
    }
    Ok(())
}

/// Faults `mib` MiB of fresh anonymous pages per iteration for `secs`; returns pages/s.
fn fault_loop(mib: usize, secs: f64) -> f64 {
    let len = mib << 20;
    let page = 4096;
    let started = Instant::now();
    let mut pages = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        // SAFETY: anonymous private mapping we own; touched within bounds and unmapped below.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                break;
            }
            let bytes = p.cast::<u8>();
            for off in (0..len).step_by(page) {
                bytes.add(off).write_volatile(1);
            }
            libc::munmap(p, len);
        }
        pages += (len / page) as u64;
    }
    pages as f64 / started.elapsed().as_secs_f64()
}

fn cost(secs: f64) -> anyhow::Result<()> {
    let modes: [(&str, Option<&[&str]>); 3] = [
        ("no agent", None),
        ("agent, default (sampled)", Some(&[])),
        ("agent, --full-tracing", Some(&["--full-tracing"])),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _round in 0..3 {
        for (i, (_, args)) in modes.iter().enumerate() {
            let mut agent = match args {
                None => None,
                Some(extra) => {
                    let a = Agent::start(extra)?;
                    std::thread::sleep(Duration::from_millis(300));
                    Some(a)
                }
            };
            results[i].push(fault_loop(32, secs));
            if let Some(a) = agent.take() {
                a.stop()?;
            }
        }
    }
    let base: f64 = results[0].iter().sum::<f64>() / results[0].len() as f64;
    println!("probe cost: anonymous page-fault loop (32 MiB mmap/touch/munmap), {secs} s x 3 interleaved rounds");
    println!("  {:<28} {:>30} {:>8}", "mode", "pages/s (rounds)", "ratio");
    for (i, (name, _)) in modes.iter().enumerate() {
        let mean = results[i].iter().sum::<f64>() / results[i].len() as f64;
        let rounds: Vec<String> = results[i]
            .iter()
            .map(|r| format!("{:.0}k", r / 1e3))
            .collect();
        println!(
            "  {name:<28} {:>30} {:>8.2}",
            rounds.join(", "),
            mean / base
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if !is_root() {
        anyhow::bail!("bench needs root (it loads eBPF programs and creates cgroups)");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let n = |default: f64| args.get(1).and_then(|s| s.parse().ok()).unwrap_or(default);
    match what {
        "latency" => latency(n(30.0) as usize),
        "cost" => cost(n(3.0)),
        "all" => {
            latency(30)?;
            cost(3.0)
        }
        other => anyhow::bail!("unknown benchmark {other:?}: latency | cost | all"),
    }
}
