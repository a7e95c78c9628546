//! `cargo xtask vm-test`: the integration suite inside QEMU guests on other kernels (pure
//! cgroup v2 with the memory controller, unlike the hybrid v1 hosts).
//!
//! 1. `payload`: build the agent and every integration test executable (any new test file of
//!    the integration-tests crate is picked up without changes here).
//! 2. `initramfs`: pack them, their shared libraries and busybox into one initramfs.
//! 3. `kernel`: fetch each Debian cloud kernel once into `target/vm-cache/<version>/`.
//! 4. `qemu`: boot each kernel (TCG), console to `target/vm-cache/<version>/console.log`.
//! 5. `report`: pass/fail from the console markers, then a summary table.
//!
//! Knobs: `TRACER_VM_TIMEOUT_SECS` (whole-guest deadline, default 900), `TRACER_VM_AGENT` and
//! `TRACER_VM_BINARIES` (use prebuilt executables instead of the cargo builds).
mod initramfs;
mod kernel;
mod payload;
mod qemu;
mod report;

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use payload::Payload;

use crate::util::workspace_root;

/// What `--kernel all` runs, oldest first.
const ALL_KERNELS: &[&str] = &["6.1", "6.12"];
const DEFAULT_TIMEOUT_SECS: u64 = 15 * 60;
/// Console lines shown for a failing kernel.
const TAIL_LINES: usize = 150;

pub fn qemu_available() -> bool {
    Command::new(qemu::QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn vm_test(kernel: &str, filter: Option<&str>) -> Result<()> {
    let versions: Vec<&str> = if kernel == "all" {
        ALL_KERNELS.to_vec()
    } else {
        vec![kernel]
    };
    for version in &versions {
        kernel::check_version(version)?;
    }
    if !qemu_available() {
        bail!(
            "{} is not runnable: install qemu-system-x86 (cargo xtask setup --vm)",
            qemu::QEMU
        );
    }
    let timeout = guest_timeout()?;
    let payload = payload::build()?;
    let cache = workspace_root().join("target/vm-cache");
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let initrd = cache.join("initramfs.cpio.gz");
    let tests = initramfs::build(&payload, filter, &initrd)?;
    eprintln!(
        "xtask: vm: initramfs {} ({} MiB) runs {} test executable(s): {}",
        initrd.display(),
        fs::metadata(&initrd)
            .map(|m| m.len() >> 20)
            .unwrap_or_default(),
        tests.len(),
        tests.join(", ")
    );

    let mut rows = Vec::new();
    for version in versions {
        rows.push(run_kernel(version, &cache, &initrd, &tests, timeout));
    }
    print_summary(&rows);
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| format!("{} ({})", r.version, r.problems.join("; ")))
        .collect();
    if !failed.is_empty() {
        bail!("kernel matrix failed on: {}", failed.join(", "));
    }
    Ok(())
}

fn guest_timeout() -> Result<Duration> {
    let secs = match std::env::var("TRACER_VM_TIMEOUT_SECS") {
        Ok(v) => v.trim().parse().with_context(|| {
            format!("TRACER_VM_TIMEOUT_SECS={v} is not a whole number of seconds")
        })?,
        Err(_) => DEFAULT_TIMEOUT_SECS,
    };
    Ok(Duration::from_secs(secs))
}

/// One line of the summary.
struct Row {
    version: String,
    package: String,
    problems: Vec<String>,
    timed_out: bool,
    passed: u64,
    failed: u64,
    boot: Option<Duration>,
    wall: Duration,
}

fn run_kernel(
    version: &str,
    cache: &Path,
    initrd: &Path,
    tests: &[String],
    timeout: Duration,
) -> Row {
    let started = Instant::now();
    let mut row = Row {
        version: version.to_string(),
        package: String::from("-"),
        problems: Vec::new(),
        timed_out: false,
        passed: 0,
        failed: 0,
        boot: None,
        wall: Duration::ZERO,
    };
    let dir = cache.join(version);
    let outcome = fs::create_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))
        .and_then(|()| kernel::ensure(&dir, version));
    let kernel = match outcome {
        Ok(k) => k,
        Err(e) => {
            row.problems.push(format!("kernel fetch failed: {e:#}"));
            row.wall = started.elapsed();
            return row;
        }
    };
    row.package = kernel.package.clone();
    eprintln!(
        "xtask: vm {version}: booting {} (timeout {} s)",
        kernel.package,
        timeout.as_secs()
    );
    let console_log = dir.join("console.log");
    let boot = qemu::Boot {
        label: version,
        kernel: &kernel.vmlinuz,
        initrd,
        console_log: &console_log,
        timeout,
    };
    match qemu::run(&boot) {
        Ok(run) => {
            let judgement = report::judge(
                &run.lines,
                tests,
                run.timed_out.then_some(timeout.as_secs()),
            );
            row.passed = judgement.passed;
            row.failed = judgement.failed;
            row.problems = judgement.problems;
            row.boot = run.boot;
            row.timed_out = run.timed_out;
            if !row.problems.is_empty() {
                eprintln!(
                    "xtask: vm {version}: FAILED ({}); QEMU exit: {}; last {TAIL_LINES} console \
                     lines of {}:",
                    row.problems.join("; "),
                    run.status.map_or("killed".to_string(), |s| s.to_string()),
                    console_log.display()
                );
                for line in &run.lines[run.lines.len().saturating_sub(TAIL_LINES)..] {
                    eprintln!("  | {line}");
                }
            }
        }
        Err(e) => row.problems.push(format!("QEMU did not run: {e:#}")),
    }
    row.wall = started.elapsed();
    row
}

fn print_summary(rows: &[Row]) {
    let mut out = String::from("xtask: kernel matrix summary\n");
    let _ = writeln!(
        out,
        "  {:<7} {:<50} {:<9} {:>6} {:>6} {:>7} {:>8}",
        "kernel", "package", "result", "passed", "failed", "boot", "wall"
    );
    for r in rows {
        let result = match (r.problems.is_empty(), r.timed_out) {
            (true, _) => "ok",
            (false, true) => "TIMED OUT",
            (false, false) => "FAILED",
        };
        let boot = r
            .boot
            .map_or("-".to_string(), |b| format!("{:.1}s", b.as_secs_f64()));
        let _ = writeln!(
            out,
            "  {:<7} {:<50} {:<9} {:>6} {:>6} {:>7} {:>7.1}s",
            r.version,
            r.package,
            result,
            r.passed,
            r.failed,
            boot,
            r.wall.as_secs_f64()
        );
    }
    eprint!("{out}");
}
