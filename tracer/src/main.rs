//! `tracer`: eBPF memory reclamation tracer for container hosts.
use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use tracer::{
    adaptive::AdaptiveOptions,
    agent::{self, RunOptions},
    kernel::{plan, Via},
    loader::Loader,
};

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Trace and explain memory reclaim and limit overshoot per container"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trace every cgroup: NDJSON records on stdout (or --output), status on stderr.
    Run {
        /// Stop cleanly after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Write the record stream to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Sample interval in milliseconds (map reads, cgroup files, summaries).
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Ring-buffer size in KiB (a power of two, at least 4).
        #[arg(long, default_value_t = 1024)]
        ring_kib: u32,
        /// Keep the per-page probes attached all the time (costly; default: attach near limits).
        #[arg(long)]
        full_tracing: bool,
        /// Trace only this cgroup (path relative to the memory hierarchy, e.g. /docker/abc).
        #[arg(long)]
        cgroup: Option<String>,
        /// Emit a loss record every N sample ticks (always at exit and when drops grow).
        #[arg(long, default_value_t = 10)]
        loss_every: u64,
        /// Use classic tracepoints even where tp_btf is available.
        #[arg(long)]
        no_btf: bool,
        /// Testing only: pause this many ms after each ring-buffer drain (forces loss).
        #[arg(long, hide = true)]
        stall_reader_ms: Option<u64>,
    },
    /// Print what this kernel offers and how each probe would be served.
    Check,
    /// Rebuild the incidents of a recording (`tracer run --output FILE`) and explain them.
    Diagnose {
        /// The NDJSON recording.
        file: PathBuf,
        /// Also write report.html, report.md and one SVG timeline per incident here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Print the result as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            duration,
            output,
            interval_ms,
            ring_kib,
            full_tracing,
            cgroup,
            loss_every,
            no_btf,
            stall_reader_ms,
        } => {
            agent::require_root()?;
            let ring_bytes = ring_kib
                .checked_next_power_of_two()
                .and_then(|k| k.max(4).checked_mul(1024))
                .context("--ring-kib too large")?;
            let opts = RunOptions {
                duration: duration.map(Duration::from_secs_f64),
                output,
                sample_interval: Duration::from_millis(interval_ms.max(10)),
                ring_bytes,
                adaptive: AdaptiveOptions {
                    force_full: full_tracing,
                    ..Default::default()
                },
                only_cgroup: cgroup,
                loss_every_ticks: loss_every,
                prefer_btf: !no_btf,
                stall_reader: stall_reader_ms.map(Duration::from_millis),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(agent::run(opts))
        }
        Command::Check => check(),
        Command::Diagnose { file, report, json } => {
            let summary = tracer::diagnose::diagnose(&file, report.as_deref())
                .with_context(|| format!("diagnosing {}", file.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&summary).context("serialising the result")?
                );
            } else {
                print!("{}", tracer::diagnose::render_summary(&summary));
            }
            Ok(())
        }
    }
}

/// The capability table: kernel, BTF, cgroup mode, and how each probe is served.
fn check() -> Result<()> {
    let host = agent::probe_host()?;
    println!("kernel         {}", host.kernel);
    println!(
        "BTF            {}",
        if host.btf.is_some() {
            "yes (/sys/kernel/btf/vmlinux)"
        } else {
            "no"
        }
    );
    println!(
        "cgroup mode    {} (memory controller on {} at {})",
        host.layout.mode.as_str(),
        host.layout.memory_version.as_str(),
        host.layout.memory_root.display()
    );
    println!("tracefs        {}", host.tracefs.root().display());
    let mut p = plan(&host.tracefs, host.btf.as_ref(), true);
    p.config.agent_tgid = std::process::id();
    // Loading proves the verifier accepts each program on this kernel (needs root).
    let (probes, verified) = match Loader::load(&p.config, 4096 * 16) {
        Ok(mut loader) => (loader.load_programs(&p.probes), true),
        Err(e) => {
            println!("load check     skipped: {e:#}");
            (p.probes.clone(), false)
        }
    };
    let memcg_tps = probes.iter().any(|p| {
        p.spec.category == "memcg"
            && p.via != Via::Unavailable(String::new())
            && !matches!(p.via, Via::Unavailable(_))
    });
    println!(
        "stat source    {}",
        if memcg_tps {
            "memcg tracepoints (per-page ones attached near limits) + cgroup stat files"
        } else {
            "cgroup stat files only (memory.stat / memory.events): kernel has no memcg tracepoints (< 6.13)"
        }
    );
    println!();
    println!("{:<48} {:<12} {:<10} note", "probe", "via", "used");
    for s in agent::probe_statuses(&probes, &Default::default()) {
        let used = match s.via.as_str() {
            "fallback" => "fallback",
            "unavailable" => "no",
            _ if s.note.is_some() => "on demand",
            _ => "always",
        };
        println!(
            "{:<48} {:<12} {:<10} {}",
            s.probe,
            s.via,
            used,
            s.note.unwrap_or_default()
        );
    }
    if !p.warnings.is_empty() {
        println!();
        for w in &p.warnings {
            println!("warning: {w}");
        }
    }
    if !verified {
        println!("\n(programs not loaded: run as root to verify them against this kernel)");
    }
    Ok(())
}
