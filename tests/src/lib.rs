//! Harness for the root integration tests: each test creates its own uniquely named memory
//! cgroup (v1 or v2), runs the real agent binary and real workloads, and reads the agent's
//! NDJSON stream back. Tests skip with a message (never pass silently) when the host lacks what
//! they need.
use std::{
    io::BufRead,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// Prints why a test is skipped, in a form the CI log makes visible.
pub fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    // Written to the process's stderr directly, not through eprintln!, which libtest captures
    // and hides for passing tests: a skip must be visible in every log.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The agent binary: $TRACER_BIN, else target/release/tracer of this workspace.
pub fn tracer_bin() -> PathBuf {
    std::env::var_os("TRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tracer"))
}

/// The workload binary: $TRACER_WORKLOAD (inside VMs), else the one cargo built for this
/// package next to the test executable (target/<profile>/workload; tests run from deps/).
pub fn workload_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACER_WORKLOAD") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Binaries of the package sit beside it; test executables one level down, in deps/.
    let beside = dir.join("workload");
    if beside.exists() {
        return beside;
    }
    dir.parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("workload")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where the memory controller lives on this host.
pub fn memory_hierarchy() -> Option<(PathBuf, Version)> {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        return Some((v1.to_path_buf(), Version::V1));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    if controllers.split_whitespace().any(|c| c == "memory") {
        // Children only get memory files when the root delegates the controller.
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+memory");
        return Some((v2.to_path_buf(), Version::V2));
    }
    None
}

/// Common preconditions: root and a memory cgroup hierarchy. Returns None (after printing the
/// reason) when the test must be skipped.
pub fn preconditions(test: &str) -> Option<(PathBuf, Version)> {
    if !is_root() {
        skip(
            test,
            "needs root (loads eBPF programs, creates cgroups); run `cargo xtask test`",
        );
        return None;
    }
    let Some(h) = memory_hierarchy() else {
        skip(
            test,
            "no memory cgroup hierarchy on this host (neither v1 memory nor cgroup2 with memory)",
        );
        return None;
    };
    if !tracer_bin().exists() {
        panic!("agent binary {} missing: build it with `cargo build --release -p tracer` or run `cargo xtask test`", tracer_bin().display());
    }
    Some(h)
}

/// A test's own memory cgroup, removed (with its tasks killed) on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Path relative to the hierarchy root, as the agent reports it (e.g. `/tracer-test-x-1-2`).
    pub rel: String,
    pub version: Version,
    children: Vec<Child>,
}

impl TestCgroup {
    /// Creates `<root>/tracer-test-<name>-<pid>-<nanos>` with a hard limit.
    pub fn create(name: &str, limit_bytes: Option<u64>) -> Result<TestCgroup> {
        let (root, version) = memory_hierarchy().context("no memory cgroup hierarchy")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let leaf = format!("tracer-test-{name}-{}-{nanos}", std::process::id());
        let dir = root.join(&leaf);
        std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let cg = TestCgroup {
            dir,
            rel: format!("/{leaf}"),
            version,
            children: Vec::new(),
        };
        if let Some(limit) = limit_bytes {
            cg.set_limit(limit)?;
        }
        Ok(cg)
    }

    pub fn write(&self, file: &str, value: &str) -> Result<()> {
        std::fs::write(self.dir.join(file), value)
            .with_context(|| format!("writing {value:?} to {}", self.dir.join(file).display()))
    }

    pub fn read(&self, file: &str) -> Result<String> {
        std::fs::read_to_string(self.dir.join(file))
            .with_context(|| format!("reading {}", self.dir.join(file).display()))
    }

    pub fn set_limit(&self, bytes: u64) -> Result<()> {
        match self.version {
            Version::V1 => self.write("memory.limit_in_bytes", &bytes.to_string()),
            Version::V2 => self.write("memory.max", &bytes.to_string()),
        }
    }

    /// The soft limit: v1 memory.soft_limit_in_bytes, v2 memory.high.
    pub fn set_soft_limit(&self, bytes: u64) -> Result<()> {
        match self.version {
            Version::V1 => self.write("memory.soft_limit_in_bytes", &bytes.to_string()),
            Version::V2 => self.write("memory.high", &bytes.to_string()),
        }
    }

    /// Kernel cgroup id: the directory's inode number.
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.dir).map(|m| m.ino()).unwrap_or(0)
    }

    /// Starts `cmd` inside this cgroup (the child moves itself in before exec).
    pub fn spawn(&mut self, mut cmd: Command) -> Result<u32> {
        use std::os::fd::AsRawFd;
        // Opened before fork (O_CLOEXEC, so the workload does not inherit it); the child only
        // calls write(2), which is async-signal-safe, between fork and exec.
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
            .context("opening cgroup.procs")?;
        let fd = procs.as_raw_fd();
        // SAFETY: see above; "0" moves the writing task (the child) into the cgroup.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .context("spawning the workload")?;
        drop(procs);
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Runs `cmd` inside this cgroup to completion; returns whether it exited successfully
    /// (false when, e.g., the OOM killer ended it).
    pub fn run(&mut self, cmd: Command) -> Result<std::process::ExitStatus> {
        self.spawn(cmd)?;
        let mut child = self.children.pop().context("no child")?;
        child.wait().context("waiting for the workload")
    }
}

impl TestCgroup {
    /// Creates a child cgroup `name` of this one (on v2 the memory controller is delegated to
    /// children first). Drop the child before its parent.
    pub fn child(&self, name: &str) -> Result<TestCgroup> {
        if self.version == Version::V2 {
            self.write("cgroup.subtree_control", "+memory")?;
        }
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(TestCgroup {
            dir,
            rel: format!("{}/{name}", self.rel),
            version: self.version,
            children: Vec::new(),
        })
    }

    /// Kills and reaps every task this test started in the cgroup (by pid, nothing else).
    pub fn kill_tasks(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Removal fails while the kernel still frees the cgroup's last charges; retry briefly.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "warning: could not remove test cgroup {}",
            self.dir.display()
        );
    }
}

/// A running agent writing its stream to a temporary file.
pub struct Agent {
    child: Child,
    pub output: PathBuf,
    _dir: TempDir,
}

/// Minimal self-removing temp dir (no extra dependency).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("tracer-it-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Agent {
    /// Starts `tracer run --output <tmp> ARGS...` and waits until its `start` record is written
    /// (programs loaded and attached).
    pub fn start(args: &[&str]) -> Result<Agent> {
        let dir = TempDir::new("agent")?;
        let output = dir.0.join("stream.ndjson");
        let mut cmd = Command::new(tracer_bin());
        cmd.arg("run").arg("--output").arg(&output).args(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", tracer_bin().display()))?;
        let mut agent = Agent {
            child,
            output,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if agent.records_so_far().iter().any(|r| r["type"] == "start") {
                return Ok(agent);
            }
            if let Some(status) = agent.child.try_wait()? {
                bail!("agent exited during start-up with {status}");
            }
            if Instant::now() > deadline {
                bail!("agent wrote no start record within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Records written so far (a partially written last line is ignored).
    pub fn records_so_far(&self) -> Vec<Value> {
        read_records(&self.output).unwrap_or_default()
    }

    /// Polls until `pred` holds for some record, or the timeout passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.records_so_far().iter().any(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Like [`Agent::stop`], keeping a copy of the recording at `dest` (the agent's own
    /// temporary directory goes away with it).
    pub fn stop_saving(mut self, dest: &Path) -> Result<Vec<Value>> {
        let output = self.output.clone();
        // Take the directory out so it outlives `stop` until the copy is made.
        let dir = std::mem::replace(&mut self._dir, TempDir(PathBuf::new()));
        let records = self.stop()?;
        std::fs::copy(&output, dest)
            .with_context(|| format!("copying the recording to {}", dest.display()))?;
        drop(dir);
        Ok(records)
    }

    /// Stops the agent with SIGINT and returns the whole stream (ending with `stop`).
    pub fn stop(mut self) -> Result<Vec<Value>> {
        // SAFETY: kill(2) on the pid of the child we spawned and still own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().context("waiting for the agent")?;
        if !status.success() {
            bail!("agent exited with {status}");
        }
        let records = read_records(&self.output)?;
        match records.last() {
            Some(last) if last["type"] == "stop" => Ok(records),
            _ => bail!("stream does not end with a stop record"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn read_records(path: &Path) -> Result<Vec<Value>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            out.push(v);
        }
    }
    Ok(out)
}

/// Records of `kind` attributed to cgroup `id`.
pub fn of_type_in<'a>(records: &'a [Value], kind: &str, id: u64) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == kind && r["cgroup_id"] == id)
        .collect()
}

pub fn workload(args: &[&str]) -> Command {
    let mut cmd = Command::new(workload_bin());
    cmd.args(args);
    cmd
}

/// Whether this kernel has a tracepoint (tracefs must be mounted; the agent mounts it).
pub fn has_tracepoint(category: &str, name: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| {
            Path::new(root)
                .join("events")
                .join(category)
                .join(name)
                .exists()
        })
}

// ---- Helpers for the probe-family and attribution tests ----

/// CLOCK_MONOTONIC in nanoseconds: the clock of the records' `mono_ns` (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Parses a flat keyed cgroup file (`memory.stat`, `memory.events`): `key value` lines.
pub fn parse_keyed(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

impl TestCgroup {
    /// Runs `cmd` inside this cgroup to completion; returns its pid and exit status.
    pub fn run_with_pid(&mut self, cmd: Command) -> Result<(u32, std::process::ExitStatus)> {
        let pid = self.spawn(cmd)?;
        let status = self.wait(pid)?;
        Ok((pid, status))
    }

    /// Waits for a workload started with [`TestCgroup::spawn`].
    pub fn wait(&mut self, pid: u32) -> Result<std::process::ExitStatus> {
        let index = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("pid {pid} is not a workload of this cgroup"))?;
        let mut child = self.children.remove(index);
        child.wait().context("waiting for the workload")
    }

    /// memory.stat as a map.
    pub fn memory_stat(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        Ok(parse_keyed(&self.read("memory.stat")?))
    }

    /// Usage: v1 memory.usage_in_bytes, v2 memory.current.
    pub fn usage(&self) -> Result<u64> {
        let file = match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        let text = self.read(file)?;
        text.trim()
            .parse()
            .with_context(|| format!("parsing {file}: {text:?}"))
    }
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the agent has finished a sample tick stamped after `mono_ns` (a `sample` or
    /// `summary` record of `cgroup_id`, written at the end of the tick): every stat and dentry
    /// change made before `mono_ns` is in the stream by then. The cgroup must have usage > 0
    /// (idle empty cgroups get neither record).
    pub fn wait_for_tick_after(&self, cgroup_id: u64, mono_ns: u64, timeout: Duration) -> bool {
        self.wait_for(timeout, |r| {
            (r["type"] == "sample" || r["type"] == "summary")
                && r["cgroup_id"] == cgroup_id
                && r["mono_ns"].as_u64().is_some_and(|t| t > mono_ns)
        })
    }
}

/// Waits until `path` exists (a workload's ready marker); false on timeout.
pub fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The `start` record's status of `probe` (e.g. `memcg:mod_memcg_lruvec_state`).
pub fn probe_status<'a>(records: &'a [Value], probe: &str) -> Option<&'a Value> {
    let start = records.iter().find(|r| r["type"] == "start")?;
    start["probes"]
        .as_array()?
        .iter()
        .find(|p| p["probe"] == probe)
}

/// Whether `probe` is served by a kernel program on this host (tp_btf or tracepoint).
pub fn probe_traced(records: &[Value], probe: &str) -> bool {
    probe_status(records, probe).is_some_and(|p| p["via"] == "tp_btf" || p["via"] == "tracepoint")
}

/// `stat` records of cgroup `id` for kernel item `item`, in stream order.
pub fn stat_records<'a>(records: &'a [Value], id: u64, item: &str) -> Vec<&'a Value> {
    of_type_in(records, "stat", id)
        .into_iter()
        .filter(|r| r["item"] == item)
        .collect()
}

/// Sum of the `delta`s (pages, bytes or events, per the item's unit) of `item` for cgroup `id`
/// over the records stamped at or before `until_mono_ns`.
pub fn stat_delta_until(records: &[Value], id: u64, item: &str, until_mono_ns: u64) -> i64 {
    stat_records(records, id, item)
        .iter()
        .filter(|r| r["mono_ns"].as_u64().unwrap_or(u64::MAX) <= until_mono_ns)
        .map(|r| r["delta"].as_i64().unwrap_or(0))
        .sum()
}

/// Highest running total of `item`'s deltas for cgroup `id` over the stream: for a cgroup that
/// was empty when the agent started, the item's peak value as seen at the sample ticks.
pub fn stat_running_peak(records: &[Value], id: u64, item: &str) -> i64 {
    let mut total = 0i64;
    let mut peak = 0i64;
    for r in stat_records(records, id, item) {
        total += r["delta"].as_i64().unwrap_or(0);
        peak = peak.max(total);
    }
    peak
}

/// The last `loss` record of a stream (the exact one, written after the final drain).
pub fn final_loss(records: &[Value]) -> Option<&Value> {
    records.iter().rev().find(|r| r["type"] == "loss")
}

/// A test cgroup (with hard limit `limit`) and an agent pinned to it with the per-page probes
/// always attached, sampling every 200 ms. None, after a skip message, when the test cannot run
/// here or the kernel does not trace every probe in `needs` (e.g. no memcg stat tracepoints
/// before 6.13).
pub fn full_tracing_fixture(
    test: &str,
    name: &str,
    limit: u64,
    needs: &[&str],
) -> Option<(TestCgroup, Agent)> {
    preconditions(test)?;
    let cg = TestCgroup::create(name, Some(limit)).expect("create test cgroup");
    let agent = Agent::start(&[
        "--cgroup",
        &cg.rel,
        "--full-tracing",
        "--interval-ms",
        "200",
    ])
    .expect("agent starts");
    let early = agent.records_so_far();
    if let Some(missing) = needs.iter().find(|p| !probe_traced(&early, p)) {
        skip(test, &format!("{missing} is not traced on this kernel"));
        return None;
    }
    Some((cg, agent))
}

/// The record's monotonic time.
pub fn mono(r: &Value) -> u64 {
    r["mono_ns"].as_u64().expect("record has mono_ns")
}

/// The per-page memcg stat probes (Linux 6.13+).
pub const MEMCG_STAT_PROBES: &[&str] = &["memcg:mod_memcg_lruvec_state", "memcg:mod_memcg_state"];
