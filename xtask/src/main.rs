//! Project tasks. The README's two commands go through here:
//! `cargo xtask run` (build and start the agent) and `cargo xtask test` (everything CI checks).
mod setup;
mod util;
mod vm;

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

use util::{cargo, run_status, workspace_root};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Tasks of the memory reclamation tracer project"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what a fresh machine lacks (nightly rust-src, bpf-linker, Debian packages) and
    /// mount tracefs. Idempotent: a fast no-op when everything is present.
    Setup {
        /// Also install what the QEMU kernel matrix needs.
        #[arg(long)]
        vm: bool,
    },
    /// Build everything and start the agent as root; arguments after `--` go to `tracer`
    /// (default: `run`), e.g. `cargo xtask run -- run --duration 5`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// fmt check, clippy, unit tests, root integration tests, then the QEMU kernel matrix when
    /// QEMU is available.
    Test {
        /// Skip the QEMU kernel matrix.
        #[arg(long)]
        no_vm: bool,
        /// Only run integration tests whose name contains this filter.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Benchmarks (speed, never pass/fail): detection latency and probe cost.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the integration suite inside QEMU guests on other kernels (pure cgroup v2).
    VmTest {
        /// 6.1, 6.12 or all.
        #[arg(long, default_value = "all")]
        kernel: String,
        /// Only run integration tests whose name contains this filter.
        #[arg(long)]
        filter: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup { vm } => setup::setup(setup::SetupOptions { vm }),
        Command::Run { args } => run(args),
        Command::Test { no_vm, filter } => test(no_vm, filter),
        Command::Bench { args } => bench(args),
        Command::VmTest { kernel, filter } => {
            setup::setup(setup::SetupOptions { vm: true })?;
            vm::vm_test(&kernel, filter.as_deref())
        }
    }
}

/// Path of the release agent binary.
fn agent_binary() -> PathBuf {
    workspace_root().join("target/release/tracer")
}

fn build_agent() -> Result<PathBuf> {
    run_status(cargo().args(["build", "--release", "-p", "tracer"]))
        .context("building the agent (cargo build --release -p tracer)")?;
    Ok(agent_binary())
}

fn run(args: Vec<String>) -> Result<()> {
    setup::setup(setup::SetupOptions { vm: false })?;
    let bin = build_agent()?;
    let args = if args.is_empty() {
        vec!["run".to_string()]
    } else {
        args
    };
    let mut cmd = util::as_root(&bin);
    cmd.args(&args);
    eprintln!("xtask: starting {} {}", bin.display(), args.join(" "));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("tracer exited with {status}");
    }
    Ok(())
}

fn test(no_vm: bool, filter: Option<String>) -> Result<()> {
    let started = std::time::Instant::now();
    let want_vm = !no_vm && std::env::var_os("TRACER_NO_VM").is_none();
    setup::setup(setup::SetupOptions { vm: want_vm })?;
    let mut timings = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let t = std::time::Instant::now();
        eprintln!("xtask: == {name}");
        f().with_context(|| format!("step `{name}` failed"))?;
        timings.push((name.to_string(), t.elapsed()));
        Ok(())
    };
    step("fmt", &mut || {
        run_status(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy", &mut || {
        run_status(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy (eBPF target)", &mut || util::clippy_ebpf())?;
    step("unit tests", &mut || {
        run_status(cargo().args(["test", "--workspace", "--exclude", "integration-tests"]))
    })?;
    step("build agent", &mut || build_agent().map(|_| ()))?;
    step("integration tests (root, this host)", &mut || {
        let mut cmd = cargo();
        cmd.args(["test", "-p", "integration-tests", "--", "--test-threads=1"]);
        if let Some(f) = &filter {
            cmd.arg(f);
        }
        cmd.env("TRACER_BIN", agent_binary());
        run_status(&mut cmd)
    })?;
    if want_vm {
        if vm::qemu_available() {
            step("kernel matrix (QEMU)", &mut || {
                vm::vm_test("all", filter.as_deref())
            })?;
        } else {
            eprintln!("xtask: QEMU not available: kernel matrix skipped (cargo xtask setup --vm installs it)");
        }
    }
    eprintln!("xtask: all steps passed in {:.0?}", started.elapsed());
    for (name, took) in &timings {
        eprintln!("xtask:   {name:<40} {took:.1?}");
    }
    Ok(())
}

fn bench(args: Vec<String>) -> Result<()> {
    setup::setup(setup::SetupOptions { vm: false })?;
    let bin = build_agent()?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "integration-tests",
        "--bin",
        "bench",
        "--",
    ]);
    cmd.args(&args);
    cmd.env("TRACER_BIN", bin);
    run_status(&mut cmd)
}
