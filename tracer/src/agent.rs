//! `tracer run`: the live agent. Probes the kernel, loads and attaches the programs, then runs
//! one loop: drain the ring buffer as it fills, and at every sample tick read the aggregation
//! maps and the cgroup files, adapt the attached probes, and write records.
use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::{bail, Context as _, Result};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    adaptive::{Adaptive, AdaptiveOptions, Switch},
    analysis::Analysis,
    btf::Btf,
    cgroupfs::{detect_host_layout, CgroupFs, CgroupLayout, CgroupVersion},
    clock::{monotonic_ns, Clock},
    kernel::{plan, PlannedProbe, Via},
    loader::Loader,
    names::ItemNames,
    pipeline::{Pipeline, PipelineConfig},
    record::*,
    sampler::Sampler,
    symbols::Symbols,
    tracefs::Tracefs,
};

pub struct RunOptions {
    pub duration: Option<Duration>,
    pub output: Option<PathBuf>,
    pub sample_interval: Duration,
    pub ring_bytes: u32,
    pub adaptive: AdaptiveOptions,
    /// Trace only this cgroup (path relative to the memory hierarchy root) and, for the
    /// cgroupfs samples, its descendants.
    pub only_cgroup: Option<String>,
    /// Emit a `loss` record every this many ticks (and always at exit or when drops grow).
    pub loss_every_ticks: u64,
    pub prefer_btf: bool,
    /// Test knob: sleep this long after each ring-buffer drain, so a test can overflow the ring
    /// on purpose and check the loss accounting.
    pub stall_reader: Option<Duration>,
}

/// Where records go: NDJSON, one object per line. Every record written is also fed to the
/// analysis stages (accountant, detector), whose own records are written after it — the same
/// stages `tracer diagnose` runs over a recording.
pub struct Sink {
    out: Box<dyn Write>,
    pub records: u64,
    analysis: Analysis,
}

impl Sink {
    pub fn new(output: Option<&PathBuf>, analysis: Analysis) -> Result<Sink> {
        let out: Box<dyn Write> = match output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating output file {}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Sink {
            out,
            records: 0,
            analysis,
        })
    }

    fn write(&mut self, rec: &Record) -> Result<()> {
        serde_json::to_writer(&mut self.out, rec).context("serialising a record")?;
        self.out
            .write_all(b"\n")
            .context("writing the record stream")?;
        self.records += 1;
        Ok(())
    }

    pub fn emit(&mut self, rec: &Record) -> Result<()> {
        self.write(rec)?;
        for derived in self.analysis.observe(rec) {
            self.write(&derived)?;
        }
        Ok(())
    }

    /// End of a sample tick: per-container summaries for the window.
    pub fn end_tick(&mut self, at: Stamp) -> Result<()> {
        for derived in self.analysis.end_tick(at) {
            self.write(&derived)?;
        }
        Ok(())
    }

    /// End of the stream: incidents still open are closed as such.
    pub fn finish(&mut self, at: Stamp) -> Result<()> {
        for derived in self.analysis.finish(at) {
            self.write(&derived)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().context("flushing the record stream")
    }
}

/// Everything the agent learned about the host at start-up.
pub struct HostFacts {
    pub kernel: String,
    pub layout: CgroupLayout,
    pub tracefs: Tracefs,
    pub btf: Option<Btf>,
    pub memory_hierarchy_id: i32,
}

pub fn probe_host() -> Result<HostFacts> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let layout = detect_host_layout().context("detecting the cgroup layout")?;
    let tracefs = match Tracefs::locate() {
        Ok(t) => t,
        Err(_) => {
            // Not mounted on a fresh machine: mount it (we run as root).
            let status = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status();
            log::info!("tracefs was not mounted; mount -t tracefs: {status:?}");
            Tracefs::locate().context(
                "tracefs is not mounted; run `mount -t tracefs nodev /sys/kernel/tracing` as root",
            )?
        }
    };
    let btf = match Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux")) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("kernel BTF unavailable: {e}");
            None
        }
    };
    let memory_hierarchy_id = match layout.memory_version {
        CgroupVersion::V2 => 0,
        CgroupVersion::V1 => memory_hierarchy_id_v1().unwrap_or(-1),
    };
    Ok(HostFacts {
        kernel,
        layout,
        tracefs,
        btf,
        memory_hierarchy_id,
    })
}

/// The v1 memory controller's hierarchy id from /proc/cgroups.
fn memory_hierarchy_id_v1() -> Option<i32> {
    let text = std::fs::read_to_string("/proc/cgroups").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("memory")).then(|| f.next()?.parse().ok())?
    })
}

pub fn probe_statuses(
    probes: &[PlannedProbe],
    attached: &std::collections::HashMap<String, bool>,
) -> Vec<ProbeStatus> {
    probes
        .iter()
        .map(|p| {
            let key = format!("{}:{}", p.spec.category, p.spec.name);
            let (via, note) = match &p.via {
                Via::TpBtf => (
                    "tp_btf",
                    p.spec
                        .hot
                        .then(|| "per-page: attached on demand".to_string()),
                ),
                Via::Tracepoint => (
                    "tracepoint",
                    p.spec
                        .hot
                        .then(|| "per-page: attached on demand".to_string()),
                ),
                Via::Unavailable(reason) => match p.spec.fallback {
                    Some(fb) => ("fallback", Some(format!("{reason}; using {fb}"))),
                    None => ("unavailable", Some(reason.clone())),
                },
            };
            ProbeStatus {
                probe: key.clone(),
                via: via.into(),
                attached: attached.get(&key).copied().unwrap_or(false),
                note,
            }
        })
        .collect()
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

pub async fn run(opts: RunOptions) -> Result<()> {
    let host = probe_host()?;
    let fs = CgroupFs::from_layout(&host.layout);
    let clock = Clock::measure();
    let names = match &host.btf {
        Some(btf) => ItemNames::from_btf(btf).unwrap_or_else(|e| {
            log::warn!("stat item names unavailable: {e}");
            ItemNames::default()
        }),
        None => ItemNames::default(),
    };
    let mut kernel_plan = plan(&host.tracefs, host.btf.as_ref(), opts.prefer_btf);
    for w in &kernel_plan.warnings {
        log::warn!("{w}");
    }
    kernel_plan.config.agent_tgid = std::process::id();
    if let Some(path) = &opts.only_cgroup {
        kernel_plan.config.only_memcg_id = fs.cgroup_id(path).with_context(|| {
            format!("--cgroup {path}: no such cgroup in {}", fs.root().display())
        })?;
    }
    let mut loader =
        Loader::load(&kernel_plan.config, opts.ring_bytes).context("loading the eBPF programs")?;
    let probes = loader.load_programs(&kernel_plan.probes);
    loader
        .set_attached(|s| !s.hot, true)
        .context("attaching the probes")?;
    let mut adaptive = Adaptive::new(opts.adaptive);
    if adaptive.is_full() {
        loader
            .set_attached(|s| s.hot, true)
            .context("attaching the per-page probes")?;
    }
    let ring = loader.take_ring().context("opening the ring buffer")?;
    // SAFETY: the RingBuf owns the map's fd and the AsyncFd owns the RingBuf, so the fd stays
    // open and is not reused for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;

    let config = PipelineConfig {
        page_size: page_size(),
        memory_hierarchy_id: host.memory_hierarchy_id,
        proc_root: PathBuf::from("/proc"),
    };
    let mut pipeline = Pipeline::new(clock, names, Symbols::load(), fs.clone(), config);
    let analysis = Analysis::new(page_size());
    let mut sink = Sink::new(opts.output.as_ref(), analysis)?;
    let statuses = probe_statuses(&probes, &loader.attached());
    sink.emit(&Record::Start(StartRecord {
        at: clock.now(),
        schema: SCHEMA_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: hostname(),
        kernel: host.kernel.clone(),
        cgroup_mode: host.layout.mode.as_str().into(),
        memory_version: host.layout.memory_version.as_str().into(),
        memory_root: host.layout.memory_root.display().to_string(),
        page_size: page_size(),
        sample_interval_ms: opts.sample_interval.as_millis() as u64,
        probes: statuses.clone(),
    }))?;
    sink.flush()?;
    eprintln!(
        "tracer: kernel {} cgroup {} (memory on {} at {}), {} probes attached, tracing mode {}{}",
        host.kernel,
        host.layout.mode.as_str(),
        host.layout.memory_version.as_str(),
        host.layout.memory_root.display(),
        statuses.iter().filter(|s| s.attached).count(),
        if adaptive.is_full() {
            "full"
        } else {
            "sampled (per-page probes attach near limits)"
        },
        opts.output
            .as_ref()
            .map(|p| format!(", writing {}", p.display()))
            .unwrap_or_default()
    );

    let mut sampler = Sampler::new(fs, opts.only_cgroup.clone(), page_size());
    let mut ticker = tokio::time::interval(opts.sample_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut ticks: u64 = 0;
    let mut last_dropped = 0u64;
    let reason = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                drain(guard.get_inner_mut(), &mut pipeline, &mut sink, &mut adaptive, &mut sampler)?;
                guard.clear_ready();
                // Discrete events (and the incidents they open) reach readers at once, not at
                // the next tick: one write per drained batch.
                sink.flush()?;
                if let Some(stall) = opts.stall_reader {
                    std::thread::sleep(stall);
                }
            }
            _ = ticker.tick() => {
                ticks += 1;
                tick(&mut loader, &mut pipeline, &mut sink, &mut sampler, &mut adaptive)?;
                let counters = loader.counters()?;
                let loss = pipeline.loss(monotonic_ns(), &counters);
                let dropped = loss.total_dropped();
                if ticks.is_multiple_of(opts.loss_every_ticks.max(1)) || dropped != last_dropped {
                    last_dropped = dropped;
                    sink.emit(&Record::Loss(loss))?;
                }
                sink.flush()?;
            }
            _ = sleep_until(deadline) => break "duration elapsed",
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
        }
    };
    // Stop the producers first so the final drain and counters are exact.
    loader.detach_all().context("detaching the probes")?;
    drain(
        ring.get_mut(),
        &mut pipeline,
        &mut sink,
        &mut adaptive,
        &mut sampler,
    )?;
    tick(
        &mut loader,
        &mut pipeline,
        &mut sink,
        &mut sampler,
        &mut adaptive,
    )?;
    let loss = pipeline.loss(monotonic_ns(), &loader.counters()?);
    let dropped = loss.total_dropped();
    sink.emit(&Record::Loss(loss))?;
    sink.finish(clock.now())?;
    let records = sink.records + 1;
    sink.emit(&Record::Stop(StopRecord {
        at: clock.now(),
        reason: reason.into(),
        records,
    }))?;
    sink.flush()?;
    eprintln!("tracer: stopped ({reason}): {records} records, {dropped} events lost");
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    pipeline: &mut Pipeline,
    sink: &mut Sink,
    adaptive: &mut Adaptive,
    sampler: &mut Sampler,
) -> Result<()> {
    let mut limited = Vec::new();
    while let Some(item) = ring.next() {
        if let Some(rec) = pipeline.on_ring_record(&item) {
            if let Record::Reclaim(r) = &rec {
                if r.kind == "memcg" {
                    if !adaptive.is_full() {
                        adaptive.note_limit_pressure(format!(
                            "memcg reclaim in {}",
                            r.cgroup.cgroup.as_deref().unwrap_or("?")
                        ));
                    }
                    if let Some(path) = &r.cgroup.cgroup {
                        if !limited.contains(path) {
                            limited.push(path.clone());
                        }
                    }
                }
            }
            sink.emit(&rec)?;
        }
    }
    if !limited.is_empty() {
        for s in sampler.sample_urgent(pipeline.clock(), monotonic_ns(), &limited) {
            sink.emit(&Record::Sample(s.record))?;
        }
    }
    Ok(())
}

fn tick(
    loader: &mut Loader,
    pipeline: &mut Pipeline,
    sink: &mut Sink,
    sampler: &mut Sampler,
    adaptive: &mut Adaptive,
) -> Result<()> {
    pipeline.tick();
    let now = monotonic_ns();
    for rec in pipeline.on_stat_totals(now, &loader.stat_totals()?) {
        sink.emit(&rec)?;
    }
    for rec in pipeline.on_dentry_totals(now, &loader.dentry_totals()?) {
        sink.emit(&rec)?;
    }
    let samples = sampler.sample(pipeline.clock(), now);
    for s in &samples {
        sink.emit(&Record::Sample(s.record.clone()))?;
    }
    let switch = adaptive.evaluate(samples.iter().map(|s| {
        (
            s.record.cgroup.cgroup.as_deref().unwrap_or("?"),
            &s.record.snapshot,
            s.limit_hits,
        )
    }));
    if let Some(switch) = switch {
        let (attach, mode, reason) = match switch {
            Switch::ToFull(r) => (true, "full", r),
            Switch::ToSampled(r) => (false, "sampled", r),
        };
        let probes = loader
            .set_attached(|s| s.hot, attach)
            .context("switching the per-page probes")?;
        eprintln!("tracer: tracing mode {mode}: {reason}");
        sink.emit(&Record::Mode(ModeRecord {
            at: pipeline.clock().stamp(now),
            mode: mode.into(),
            reason,
            probes,
        }))?;
    }
    for (id, keys) in pipeline.take_removed() {
        loader.forget_memcg(id, &keys);
    }
    sink.end_tick(pipeline.clock().stamp(now))?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Fails unless running as root (loading BPF programs and reading cgroups need it).
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("tracer must run as root (it loads eBPF programs); try `sudo tracer run`");
    }
    Ok(())
}
