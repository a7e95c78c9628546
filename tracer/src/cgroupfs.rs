//! The one interface through which the agent reads cgroup memory state and writes memory limits,
//! for cgroup v1 and v2.
//!
//! There is no trait and no mock: a test fake is a temp directory laid out like a cgroupfs, so the
//! same [`CgroupFs`] code runs against `/sys/fs/cgroup/...` and against fixtures.
//! Relative cgroup paths look like `"/a/b"` (`"/"` is the root of the hierarchy).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Any limit at or above this is "unlimited": v1 reports PAGE_COUNTER_MAX * PAGE_SIZE
/// (9223372036854771712 with 4 KiB pages), which differs by page size, so compare loosely.
const UNLIMITED_THRESHOLD: u64 = 1 << 62;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {op} {path}: {source} ({hint})")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
    #[error("cannot parse {path}: found {found:?}, expected {expected} (wrong cgroup version for this root?)")]
    Parse {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error(
        "cgroup path {rel:?} has a `..` component: pass a path below the root such as \"/a/b\""
    )]
    ParentComponent { rel: String },
    #[error("limit {kind:?} does not exist on cgroup {version:?}: {hint}")]
    UnsupportedLimit {
        kind: LimitKind,
        version: CgroupVersion,
        hint: &'static str,
    },
    #[error(
        "malformed mountinfo line {line_no}: {line:?} ({reason}); pass /proc/self/mountinfo text"
    )]
    Mountinfo {
        line_no: usize,
        line: String,
        reason: &'static str,
    },
    #[error("no cgroup memory controller: {detail}; mount the v1 `memory` controller or enable `memory` in cgroup2's cgroup.subtree_control")]
    NoMemoryController { detail: String },
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    let hint = match source.kind() {
        ErrorKind::NotFound => "the cgroup was removed, or this kernel does not offer that file?",
        ErrorKind::PermissionDenied => "run as root or check the cgroup's ownership",
        ErrorKind::InvalidInput => {
            "the kernel rejected the value; on v1 memory.memsw.limit_in_bytes \
            must stay >= memory.limit_in_bytes, so raise memsw first and lower it last"
        }
        ErrorKind::ResourceBusy => {
            "usage is above the new limit and reclaim could not free enough; \
            lower the limit in steps"
        }
        _ => "check that the cgroup filesystem is mounted and the path is a cgroup",
    };
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
        hint,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Which cgroup hierarchies are mounted: only v1 ones, only cgroup2, or both (systemd "hybrid").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    V1,
    V2,
    Hybrid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLayout {
    pub mode: CgroupMode,
    /// Mount point of the hierarchy that carries the memory controller.
    pub memory_root: PathBuf,
    pub memory_version: CgroupVersion,
    /// Mount point of the cgroup2 hierarchy, with or without the memory controller.
    pub unified_root: Option<PathBuf>,
}

/// Decodes the octal escapes (`\040` = space) the kernel writes in mountinfo paths.
fn unescape_mount_path(raw: &str) -> PathBuf {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Finds the v1 `memory` mount and the cgroup2 mount in `/proc/self/mountinfo` text.
/// `has_memory_controller(cgroup2_root)` says whether cgroup2 offers `memory` (see
/// [`controllers_include_memory`]); it is consulted only when no v1 hierarchy has the controller,
/// because a controller bound to v1 is unavailable to cgroup2.
pub fn detect_layout(
    mountinfo: &str,
    has_memory_controller: impl Fn(&Path) -> bool,
) -> Result<CgroupLayout, CgroupError> {
    let (mut any_v1, mut v1_memory, mut unified) = (false, None, None);
    for (index, line) in mountinfo.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason| CgroupError::Mountinfo {
            line_no: index + 1,
            line: line.into(),
            reason,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Six fixed fields, optional fields, then "-", fstype, source, super options.
        let sep = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6);
        let sep = sep.ok_or_else(|| bad("no ` - ` separator after the sixth field"))?;
        let (Some(fstype), Some(super_options)) = (fields.get(sep + 1), fields.get(sep + 3)) else {
            return Err(bad("fewer than three fields after the separator"));
        };
        let mount_point = unescape_mount_path(fields[4]);
        match *fstype {
            "cgroup" => {
                any_v1 = true;
                if v1_memory.is_none() && super_options.split(',').any(|o| o == "memory") {
                    v1_memory = Some(mount_point);
                }
            }
            "cgroup2" if unified.is_none() => unified = Some(mount_point),
            _ => {}
        }
    }
    let mode = match (any_v1, unified.is_some()) {
        (true, true) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::V1,
        (false, true) => CgroupMode::V2,
        (false, false) => {
            let detail = "mountinfo has no cgroup or cgroup2 mount".to_owned();
            return Err(CgroupError::NoMemoryController { detail });
        }
    };
    if let Some(memory_root) = v1_memory {
        let memory_version = CgroupVersion::V1;
        return Ok(CgroupLayout {
            mode,
            memory_root,
            memory_version,
            unified_root: unified,
        });
    }
    match unified {
        Some(root) if has_memory_controller(&root) => Ok(CgroupLayout {
            mode,
            memory_root: root.clone(),
            memory_version: CgroupVersion::V2,
            unified_root: Some(root),
        }),
        Some(root) => Err(CgroupError::NoMemoryController {
            detail: format!(
                "no v1 mount has the `memory` option and {}/cgroup.controllers lacks `memory`",
                root.display()
            ),
        }),
        None => Err(CgroupError::NoMemoryController {
            detail: "no v1 mount has the `memory` option and cgroup2 is not mounted".to_owned(),
        }),
    }
}

/// True when `<cgroup2_root>/cgroup.controllers` lists `memory` (unreadable counts as no).
pub fn controllers_include_memory(cgroup2_root: &Path) -> bool {
    fs::read_to_string(cgroup2_root.join("cgroup.controllers"))
        .is_ok_and(|text| text.split_whitespace().any(|c| c == "memory"))
}

/// [`detect_layout`] on this process's `/proc/self/mountinfo`.
pub fn detect_host_layout() -> Result<CgroupLayout, CgroupError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
    detect_layout(&text, controllers_include_memory)
}

/// A memory limit the agent can read or set. v1 offers Hard, Soft, MemSwap; v2 offers Hard,
/// High, Low, Min, Swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LimitKind {
    /// v1 memory.limit_in_bytes, v2 memory.max.
    Hard,
    /// v1 memory.soft_limit_in_bytes (v2 has no equivalent; memory.low protects instead).
    Soft,
    /// v2 memory.high (throttling threshold).
    High,
    /// v2 memory.low (best-effort protection).
    Low,
    /// v2 memory.min (hard protection).
    Min,
    /// v2 memory.swap.max: swap alone.
    Swap,
    /// v1 memory.memsw.limit_in_bytes: memory plus swap together.
    MemSwap,
}

impl LimitKind {
    fn file_name(self, version: CgroupVersion) -> Result<&'static str, CgroupError> {
        use {CgroupVersion::*, LimitKind::*};
        match (version, self) {
            (V1, Hard) => Ok("memory.limit_in_bytes"),
            (V1, Soft) => Ok("memory.soft_limit_in_bytes"),
            (V1, MemSwap) => Ok("memory.memsw.limit_in_bytes"),
            (V2, Hard) => Ok("memory.max"),
            (V2, High) => Ok("memory.high"),
            (V2, Low) => Ok("memory.low"),
            (V2, Min) => Ok("memory.min"),
            (V2, Swap) => Ok("memory.swap.max"),
            (V1, _) => Err("cgroup v1 offers Hard, Soft and MemSwap"),
            (V2, _) => Err("cgroup v2 offers Hard, High, Low, Min and Swap"),
        }
        .map_err(|hint| CgroupError::UnsupportedLimit {
            kind: self,
            version,
            hint,
        })
    }
}

/// Limits in bytes; `None` = unlimited (v2 "max", v1 >= 2^62) or the file is absent (e.g. no
/// swap accounting, or the v2 root). Low/min report their real value (`Some(0)` = no protection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub hard: Option<u64>,
    /// v1 only.
    pub soft: Option<u64>,
    /// v2 only.
    pub high: Option<u64>,
    /// v2 only.
    pub low: Option<u64>,
    /// v2 only.
    pub min: Option<u64>,
    /// v2 memory.swap.max (swap alone).
    pub swap: Option<u64>,
    /// v1 memory.memsw.limit_in_bytes as-is (memory + swap, not swap alone).
    pub mem_swap: Option<u64>,
}

/// One read of a cgroup's memory files. All sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySnapshot {
    pub version: CgroupVersion,
    /// v1 memory.usage_in_bytes, v2 memory.current (both hierarchical).
    pub usage_bytes: u64,
    /// v1 memory.max_usage_in_bytes, v2 memory.peak (6.8+); None when absent.
    pub max_usage_bytes: Option<u64>,
    pub limits: Limits,
    /// memory.stat as read (unparsable lines skipped: new kernels may add any key).
    pub stat: BTreeMap<String, u64>,
    /// v2 memory.events; v1 synthesized: `max` = failcnt, `oom_kill` and `under_oom` from
    /// memory.oom_control.
    pub events: BTreeMap<String, u64>,
    /// v1 memory.failcnt.
    pub failcnt: Option<u64>,
    /// v1 memory.kmem.usage_in_bytes.
    pub kmem_usage_bytes: Option<u64>,
    /// v2 memory.swap.current; v1 memsw.usage - usage (saturating: the two reads are not atomic).
    pub swap_usage_bytes: Option<u64>,
}

/// The vSwap memory classes of a cgroup, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryClasses {
    pub anon: u64,
    pub file: u64,
    pub kernel: u64,
    /// Always None: neither version's memory.stat breaks kernel memory down by slab cache, so
    /// dentry bytes must come from tracing (`kmem:kmem_cache_alloc` name "dentry").
    pub dentry: Option<u64>,
    pub swap: u64,
}

impl MemorySnapshot {
    /// Derives [`MemoryClasses`] from this snapshot; absent keys count as 0.
    ///
    /// v2 (memory.stat is always hierarchical, `hierarchical` is ignored):
    /// anon = `anon`; file = `file` (includes shmem/tmpfs); kernel = `kernel` (5.18+: all
    /// __GFP_ACCOUNT memory, the analogue of v1 kmem, which excludes `sock`), else the sum
    /// kernel_stack + pagetables + sec_pagetables + percpu + sock + slab + vmalloc (an estimate
    /// that misses other accounted allocations); swap = memory.swap.current.
    ///
    /// v1: `rss`/`cache`/`swap` cover this cgroup only while usage_in_bytes covers descendants,
    /// so `hierarchical` picks `total_rss`/`total_cache`/`total_swap` instead. anon = rss (which
    /// includes transparent hugepages; rss_huge is a subset, not an addition); file = cache
    /// (includes shmem); swap = swap. kernel = memory.kmem.usage_in_bytes, which is
    /// hierarchical either way: v1 has no local-only kernel counter.
    pub fn classes(&self, hierarchical: bool) -> MemoryClasses {
        let stat = |key: &str| self.stat.get(key).copied().unwrap_or(0);
        match self.version {
            CgroupVersion::V2 => {
                let kernel = self.stat.get("kernel").copied().unwrap_or_else(|| {
                    let parts = ["kernel_stack", "pagetables", "sec_pagetables", "percpu"];
                    parts
                        .into_iter()
                        .chain(["sock", "slab", "vmalloc"])
                        .map(stat)
                        .sum()
                });
                MemoryClasses {
                    anon: stat("anon"),
                    file: stat("file"),
                    kernel,
                    dentry: None,
                    swap: self.swap_usage_bytes.unwrap_or(0),
                }
            }
            CgroupVersion::V1 => {
                let prefix = if hierarchical { "total_" } else { "" };
                let stat = |key: &str| stat(&format!("{prefix}{key}"));
                MemoryClasses {
                    anon: stat("rss"),
                    file: stat("cache"),
                    kernel: self.kmem_usage_bytes.unwrap_or(0),
                    dentry: None,
                    swap: stat("swap"),
                }
            }
        }
    }
}

/// A memory-controller hierarchy rooted at `root` (real mount point or a fake temp dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFs {
    root: PathBuf,
    version: CgroupVersion,
}

impl CgroupFs {
    pub fn at(root: impl Into<PathBuf>, version: CgroupVersion) -> Self {
        CgroupFs {
            root: root.into(),
            version,
        }
    }

    /// The memory hierarchy of a detected layout.
    pub fn from_layout(layout: &CgroupLayout) -> Self {
        Self::at(&layout.memory_root, layout.memory_version)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory of cgroup `rel` ("/a/b" or "a/b"); `..` is rejected so a caller-supplied
    /// name can never reach outside the hierarchy.
    pub fn path_of(&self, rel: &str) -> Result<PathBuf, CgroupError> {
        let mut path = self.root.clone();
        for component in Path::new(rel).components() {
            match component {
                Component::Normal(name) => path.push(name),
                Component::ParentDir => {
                    return Err(CgroupError::ParentComponent {
                        rel: rel.to_owned(),
                    })
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(path)
    }

    pub fn read_snapshot(&self, rel: &str) -> Result<MemorySnapshot, CgroupError> {
        let dir = self.path_of(rel)?;
        let value = |name: &str| read_u64(&dir.join(name));
        let optional = |name: &str| read_optional(&dir.join(name), parse_u64);
        let limit = |name: &str| Ok(read_optional(&dir.join(name), parse_limit)?.flatten());
        let stat = read_flat_keyed(&dir.join("memory.stat"))?;
        match self.version {
            CgroupVersion::V1 => {
                let usage_bytes = value("memory.usage_in_bytes")?;
                let failcnt = optional("memory.failcnt")?;
                let oom = read_optional(&dir.join("memory.oom_control"), |_, t| Ok(flat_keyed(t)))?
                    .unwrap_or_default();
                let mut events = BTreeMap::new();
                events.extend(failcnt.map(|n| ("max".to_owned(), n)));
                for key in ["oom_kill", "under_oom"] {
                    events.extend(oom.get(key).map(|n| (key.to_owned(), *n)));
                }
                let memsw_usage = optional("memory.memsw.usage_in_bytes")?;
                Ok(MemorySnapshot {
                    version: self.version,
                    usage_bytes,
                    max_usage_bytes: optional("memory.max_usage_in_bytes")?,
                    limits: Limits {
                        hard: limit("memory.limit_in_bytes")?,
                        soft: limit("memory.soft_limit_in_bytes")?,
                        mem_swap: limit("memory.memsw.limit_in_bytes")?,
                        ..Limits::default()
                    },
                    stat,
                    events,
                    failcnt,
                    kmem_usage_bytes: optional("memory.kmem.usage_in_bytes")?,
                    swap_usage_bytes: memsw_usage.map(|m| m.saturating_sub(usage_bytes)),
                })
            }
            CgroupVersion::V2 => Ok(MemorySnapshot {
                version: self.version,
                usage_bytes: value("memory.current")?,
                max_usage_bytes: optional("memory.peak")?,
                limits: Limits {
                    hard: limit("memory.max")?,
                    high: limit("memory.high")?,
                    low: limit("memory.low")?,
                    min: limit("memory.min")?,
                    swap: limit("memory.swap.max")?,
                    ..Limits::default()
                },
                stat,
                events: read_optional(&dir.join("memory.events"), |_, t| Ok(flat_keyed(t)))?
                    .unwrap_or_default(),
                failcnt: None,
                kmem_usage_bytes: None,
                swap_usage_bytes: optional("memory.swap.current")?,
            }),
        }
    }

    /// Reads one limit; `None` = unlimited. Unlike [`Self::read_snapshot`], a missing file is an
    /// error here, because the caller asked for this limit specifically.
    pub fn read_limit(&self, rel: &str, kind: LimitKind) -> Result<Option<u64>, CgroupError> {
        let path = self.path_of(rel)?.join(kind.file_name(self.version)?);
        let text = fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
        parse_limit(&path, &text)
    }

    /// Sets one limit; `None` = unlimited (v1 "-1", v2 "max"). Never creates the file: a missing
    /// file means the cgroup or the kernel feature is absent.
    pub fn write_limit(
        &self,
        rel: &str,
        kind: LimitKind,
        limit: Option<u64>,
    ) -> Result<(), CgroupError> {
        let path = self.path_of(rel)?.join(kind.file_name(self.version)?);
        let text = match (limit, self.version) {
            (Some(bytes), _) => bytes.to_string(),
            (None, CgroupVersion::V1) => "-1".to_owned(),
            (None, CgroupVersion::V2) => "max".to_owned(),
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_error("open for writing", &path, e))?;
        // One write call: kernfs parses each write(2) as a whole value.
        file.write_all(text.as_bytes())
            .map_err(|e| io_error("write", &path, e))
    }

    /// The process ids in cgroup.procs (this cgroup only, not descendants).
    pub fn procs(&self, rel: &str) -> Result<Vec<u32>, CgroupError> {
        let path = self.path_of(rel)?.join("cgroup.procs");
        let text = fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
        text.split_whitespace()
            .map(|pid| {
                pid.parse()
                    .map_err(|_| parse_error(&path, pid, "one pid per line"))
            })
            .collect()
    }

    /// Names of the child cgroups, sorted. Names that are not UTF-8 are skipped.
    pub fn children(&self, rel: &str) -> Result<Vec<String>, CgroupError> {
        let dir = self.path_of(rel)?;
        let entries = fs::read_dir(&dir).map_err(|e| io_error("list", &dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &dir, e))?;
            let is_dir = entry
                .file_type()
                .map_err(|e| io_error("stat", &entry.path(), e))?;
            if let (true, Ok(name)) = (is_dir.is_dir(), entry.file_name().into_string()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The kernel's cgroup id: on 64-bit kernels it equals the cgroupfs directory's inode
    /// number (v1 and v2), which is what the memcg tracepoints report as `id`.
    pub fn cgroup_id(&self, rel: &str) -> Result<u64, CgroupError> {
        let dir = self.path_of(rel)?;
        Ok(fs::metadata(&dir)
            .map_err(|e| io_error("stat", &dir, e))?
            .ino())
    }
}

fn parse_error(path: &Path, found: &str, expected: &'static str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        found: found.to_owned(),
        expected,
    }
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let text = text.trim();
    text.parse()
        .map_err(|_| parse_error(path, text, "a byte count"))
}

/// `max` (v2) or -1 (what v1 accepts; a fake tree may hold it) or >= 2^62 (v1) = unlimited.
fn parse_limit(path: &Path, text: &str) -> Result<Option<u64>, CgroupError> {
    match text.trim() {
        "max" | "-1" => Ok(None),
        _ => Ok(Some(parse_u64(path, text)?).filter(|&v| v < UNLIMITED_THRESHOLD)),
    }
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
    parse_u64(path, &text)
}

/// Reads and parses a file that older kernels or some configurations lack: absent = `None`.
fn read_optional<T>(
    path: &Path,
    parse: impl Fn(&Path, &str) -> Result<T, CgroupError>,
) -> Result<Option<T>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// "key value" lines; lines whose value is not a u64 are skipped, since kernels add keys freely.
fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn read_flat_keyed(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    let text = fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
    Ok(flat_keyed(&text))
}

/// What a full tree walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    pub entries: usize,
    /// The walk stopped at the depth or entry bound, so some cgroups were not seen.
    pub truncated: bool,
}

/// Maps cgroup ids (from tracepoints) to relative paths, rescanning the tree on a miss.
/// Rescans cost a walk of the whole hierarchy, so [`Self::resolve`] does at most one per
/// `generation` value: the caller advances the generation (e.g. once per second, or on a
/// `cgroup:cgroup_mkdir` event) and ids that stay unknown cost nothing until then.
#[derive(Debug)]
pub struct IdPathResolver {
    fs: CgroupFs,
    paths: HashMap<u64, String>,
    max_depth: usize,
    max_entries: usize,
    last_rescan_generation: Option<u64>,
}

impl IdPathResolver {
    /// `max_depth` counts levels below the root (0 = root only); `max_entries` bounds one walk.
    pub fn new(fs: CgroupFs, max_depth: usize, max_entries: usize) -> Self {
        let paths = HashMap::new();
        IdPathResolver {
            fs,
            paths,
            max_depth,
            max_entries,
            last_rescan_generation: None,
        }
    }

    /// The path of `id`: cached, else after one rescan if none ran yet in `generation`.
    /// A failed rescan reads as a miss; call [`Self::rescan`] to see the error.
    pub fn resolve(&mut self, id: u64, generation: u64) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        if self.last_rescan_generation == Some(generation) {
            return None;
        }
        self.last_rescan_generation = Some(generation);
        self.rescan().ok()?;
        self.paths.get(&id).cloned()
    }

    /// Walks the tree breadth-first within the bounds. A complete walk replaces the cache (so
    /// removed cgroups drop out); a truncated one only adds to it. Cgroups removed during the
    /// walk are skipped; only an unreadable root is an error.
    pub fn rescan(&mut self) -> Result<ScanSummary, CgroupError> {
        let mut found = HashMap::new();
        let mut queue = std::collections::VecDeque::from([("/".to_owned(), 0usize)]);
        let mut truncated = false;
        while let Some((rel, depth)) = queue.pop_front() {
            if found.len() >= self.max_entries {
                truncated = true;
                break;
            }
            let id = match self.fs.cgroup_id(&rel) {
                Ok(id) => id,
                Err(e) if rel == "/" => return Err(e),
                Err(_) => continue,
            };
            found.insert(id, rel.clone());
            let children = match self.fs.children(&rel) {
                Ok(children) => children,
                Err(e) if rel == "/" => return Err(e),
                Err(_) => continue,
            };
            if depth >= self.max_depth {
                truncated |= !children.is_empty();
                continue;
            }
            let parent = rel.trim_end_matches('/');
            queue.extend(
                children
                    .into_iter()
                    .map(|c| (format!("{parent}/{c}"), depth + 1)),
            );
        }
        let entries = found.len();
        if truncated {
            self.paths.extend(found);
        } else {
            self.paths = found;
        }
        Ok(ScanSummary { entries, truncated })
    }

    pub fn insert(&mut self, id: u64, path: String) {
        self.paths.insert(id, path);
    }

    pub fn remove(&mut self, id: u64) -> Option<String> {
        self.paths.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cgroupfs/");

    fn fixture(name: &str) -> String {
        fs::read_to_string(format!("{FIXTURES}{name}")).expect("fixture is readable")
    }

    /// A writable fake cgroupfs: a temp copy of fixtures/cgroupfs/<version>/ (one cgroup "job";
    /// v1 file contents copied from this host's /sys/fs/cgroup/memory).
    fn fake_tree(version: &str) -> tempfile::TempDir {
        fn copy_dir(from: &Path, to: &Path) {
            fs::create_dir_all(to).expect("mkdir");
            for entry in fs::read_dir(from)
                .expect("list fixture dir")
                .map(|e| e.expect("entry"))
            {
                let target = to.join(entry.file_name());
                if entry.file_type().expect("file type").is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    fs::copy(entry.path(), target).expect("copy fixture");
                }
            }
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_dir(&Path::new(FIXTURES).join(version), tmp.path());
        tmp
    }

    #[test]
    fn detects_this_hosts_hybrid_layout() {
        let layout = detect_layout(&fixture("mountinfo-hybrid.txt"), |_| false).expect("layout");
        assert_eq!(layout.mode, CgroupMode::Hybrid);
        assert_eq!(layout.memory_version, CgroupVersion::V1);
        assert_eq!(layout.memory_root, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            layout.unified_root.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn detects_pure_v2_and_pure_v1_layouts() {
        let v2 = detect_layout(&fixture("mountinfo-v2.txt"), |p| {
            p == Path::new("/sys/fs/cgroup")
        })
        .expect("v2 layout");
        assert_eq!(
            (v2.mode, v2.memory_version),
            (CgroupMode::V2, CgroupVersion::V2)
        );
        assert_eq!(v2.memory_root, Path::new("/sys/fs/cgroup"));
        let v1 = detect_layout(&fixture("mountinfo-v1.txt"), |_| true).expect("v1 layout");
        assert_eq!(
            (v1.mode, v1.memory_version),
            (CgroupMode::V1, CgroupVersion::V1)
        );
        assert_eq!(
            (v1.memory_root.as_path(), v1.unified_root),
            (Path::new("/sys/fs/cgroup/memory"), None)
        );
    }

    #[test]
    fn no_memory_controller_is_an_error_naming_the_cgroup2_root() {
        // The fixture has a v1 mount named "memory\040disabled" with `name=memory`: not the controller.
        let err = detect_layout(&fixture("mountinfo-no-memory.txt"), |_| false).expect_err("none");
        assert!(
            matches!(err, CgroupError::NoMemoryController { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("/sys/fs/cgroup/unified/cgroup.controllers"),
            "{err}"
        );
        let bad = detect_layout("1 2 0:3 / /x rw shared:1\n", |_| true).expect_err("malformed");
        assert!(
            matches!(bad, CgroupError::Mountinfo { line_no: 1, .. }),
            "{bad}"
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        let line = "35 31 0:32 / /sys/fs/cgroup/my\\040mem rw - cgroup cgroup rw,memory\n";
        let layout = detect_layout(line, |_| false).expect("layout");
        assert_eq!(layout.memory_root, Path::new("/sys/fs/cgroup/my mem"));
    }

    #[test]
    fn v1_snapshot_and_classes() {
        let tmp = fake_tree("v1");
        let snap = CgroupFs::at(tmp.path(), CgroupVersion::V1)
            .read_snapshot("/job")
            .expect("snap");
        assert_eq!(
            (snap.usage_bytes, snap.max_usage_bytes),
            (368185344, Some(1786122240))
        );
        let limits = Limits {
            soft: Some(268435456),
            ..Limits::default()
        };
        assert_eq!(
            snap.limits, limits,
            "9223372036854771712 reads as unlimited"
        );
        assert_eq!(
            (snap.failcnt, snap.kmem_usage_bytes),
            (Some(5), Some(69115904))
        );
        assert_eq!(snap.swap_usage_bytes, Some(368312320 - 368185344));
        let events: Vec<_> = snap.events.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(events, [("max", 5), ("oom_kill", 2), ("under_oom", 1)]);
        assert_eq!(snap.stat.get("rss_huge"), Some(&0));
        let local = MemoryClasses {
            anon: 6045696,
            file: 12759040,
            kernel: 69115904,
            dentry: None,
            swap: 0,
        };
        assert_eq!(snap.classes(false), local);
        let total = MemoryClasses {
            anon: 11124736,
            file: 301613056,
            ..local
        };
        assert_eq!(snap.classes(true), total);
    }

    #[test]
    fn v2_snapshot_and_classes() {
        let tmp = fake_tree("v2");
        let fs = CgroupFs::at(tmp.path(), CgroupVersion::V2);
        let snap = fs.read_snapshot("job").expect("snapshot");
        assert_eq!(
            (snap.usage_bytes, snap.max_usage_bytes),
            (3654524928, Some(4294967296))
        );
        let limits = Limits {
            high: Some(4294967296),
            low: Some(0),
            min: Some(0),
            ..Limits::default()
        };
        assert_eq!(snap.limits, limits);
        assert_eq!(
            (
                snap.events["high"],
                snap.events["oom_kill"],
                snap.events.len()
            ),
            (17, 1, 6)
        );
        assert_eq!((snap.failcnt, snap.swap_usage_bytes), (None, Some(8388608)));
        let classes = MemoryClasses {
            anon: 1288343552,
            file: 2205876224,
            kernel: 160259840,
            dentry: None,
            swap: 8388608,
        };
        assert_eq!(snap.classes(false), classes);
        assert_eq!(
            snap.classes(true),
            classes,
            "v2 stat is hierarchical already"
        );
        // Kernels before 5.18 have no `kernel` key: sum the parts instead.
        let mut old = snap.clone();
        old.stat.remove("kernel");
        let parts = 3260416 + 11780096 + 1154816 + 212992 + 143581184 + 278528;
        assert_eq!(old.classes(false).kernel, parts);
    }

    #[test]
    fn write_limit_writes_what_the_kernel_expects() {
        let (v1_tree, v2_tree) = (fake_tree("v1"), fake_tree("v2"));
        let (v1_dir, v2_dir) = (v1_tree.path().join("job"), v2_tree.path().join("job"));
        let v1 = CgroupFs::at(v1_tree.path(), CgroupVersion::V1);
        v1.write_limit("/job", LimitKind::Hard, Some(536870912))
            .expect("write");
        let read = |p: PathBuf| fs::read_to_string(p).expect("read back");
        assert_eq!(read(v1_dir.join("memory.limit_in_bytes")), "536870912");
        assert_eq!(
            v1.read_limit("/job", LimitKind::Hard).expect("read"),
            Some(536870912)
        );
        v1.write_limit("/job", LimitKind::MemSwap, None)
            .expect("write");
        assert_eq!(read(v1_dir.join("memory.memsw.limit_in_bytes")), "-1");
        assert_eq!(
            v1.read_limit("/job", LimitKind::MemSwap).expect("read"),
            None
        );
        let v2 = CgroupFs::at(v2_tree.path(), CgroupVersion::V2);
        v2.write_limit("/job", LimitKind::High, None)
            .expect("write");
        assert_eq!(read(v2_dir.join("memory.high")), "max");
        v2.write_limit("/job", LimitKind::Swap, Some(0))
            .expect("write");
        assert_eq!(read(v2_dir.join("memory.swap.max")), "0");
        let unsupported = v1
            .write_limit("/job", LimitKind::High, Some(1))
            .expect_err("v1 high");
        assert!(
            matches!(unsupported, CgroupError::UnsupportedLimit { .. }),
            "{unsupported}"
        );
        assert!(v2.read_limit("/job", LimitKind::Soft).is_err());
        // A missing file is reported, never created.
        let gone = v2
            .write_limit("/gone", LimitKind::Hard, None)
            .expect_err("no cgroup");
        assert!(gone.to_string().contains("gone/memory.max"), "{gone}");
        assert!(!v2_tree.path().join("gone").exists());
    }

    #[test]
    fn parent_components_are_rejected() {
        let fs = CgroupFs::at("/sys/fs/cgroup/memory", CgroupVersion::V1);
        assert_eq!(
            fs.path_of("/a/b").expect("path"),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            fs.path_of("/").expect("root"),
            Path::new("/sys/fs/cgroup/memory")
        );
        for rel in ["/a/../b", "..", "/../../etc"] {
            let err = fs.path_of(rel).expect_err("`..` must be rejected");
            assert!(
                matches!(err, CgroupError::ParentComponent { .. }),
                "{rel}: {err}"
            );
            assert!(fs.read_snapshot(rel).is_err());
        }
        let limit = fs
            .write_limit("/x/..", LimitKind::Hard, Some(1))
            .expect_err("rejected");
        assert!(
            matches!(limit, CgroupError::ParentComponent { .. }),
            "{limit}"
        );
    }

    #[test]
    fn removed_cgroup_error_names_file_and_cause() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = CgroupFs::at(tmp.path(), CgroupVersion::V1)
            .read_snapshot("/x")
            .expect_err("gone");
        let text = err.to_string();
        assert!(
            text.contains("/x/memory.stat") && text.contains("removed"),
            "{text}"
        );
    }

    #[test]
    fn procs_children_and_ids() {
        let tmp = fake_tree("v1");
        fs::create_dir_all(tmp.path().join("job/zeta")).expect("mkdir");
        fs::create_dir_all(tmp.path().join("job/alpha")).expect("mkdir");
        let cg = CgroupFs::at(tmp.path(), CgroupVersion::V1);
        assert_eq!(cg.procs("/job").expect("procs"), [1, 42]);
        assert_eq!(cg.children("/job").expect("children"), ["alpha", "zeta"]);
        let inode = fs::metadata(tmp.path().join("job/alpha"))
            .expect("stat")
            .ino();
        assert_eq!(cg.cgroup_id("/job/alpha").expect("id"), inode);
    }

    #[test]
    fn resolver_rescans_once_per_generation_within_bounds() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
        let cg = CgroupFs::at(tmp.path(), CgroupVersion::V2);
        let id_b = cg.cgroup_id("/a/b").expect("id");
        let mut resolver = IdPathResolver::new(cg.clone(), 8, 100);
        assert_eq!(resolver.resolve(id_b, 0).as_deref(), Some("/a/b"));
        assert_eq!(resolver.len(), 3, "root, /a and /a/b");
        fs::create_dir(tmp.path().join("a/c")).expect("mkdir");
        let id_c = cg.cgroup_id("/a/c").expect("id");
        assert_eq!(
            resolver.resolve(id_c, 0),
            None,
            "generation 0 already rescanned"
        );
        assert_eq!(resolver.resolve(id_c, 1).as_deref(), Some("/a/c"));
        assert_eq!(resolver.remove(id_c).as_deref(), Some("/a/c"));
        resolver.insert(7, "/manual".to_owned());
        assert_eq!(resolver.resolve(7, 1).as_deref(), Some("/manual"));
        let mut shallow = IdPathResolver::new(cg, 1, 100);
        let summary = shallow.rescan().expect("scan");
        assert_eq!(
            summary,
            ScanSummary {
                entries: 2,
                truncated: true
            }
        );
        assert_eq!(shallow.resolve(id_b, 0), None, "/a/b is below max_depth");
    }

    /// Reads the real host hierarchy; never writes.
    #[test]
    fn reads_the_real_v1_root_read_only() {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.stat").exists() {
            eprintln!(
                "skipped: no cgroup v1 memory controller at {}",
                root.display()
            );
            return;
        }
        let layout = detect_host_layout().expect("host layout");
        assert_eq!(
            (layout.memory_version, layout.memory_root.as_path()),
            (CgroupVersion::V1, root)
        );
        let cg = CgroupFs::from_layout(&layout);
        let snap = cg.read_snapshot("/").expect("root snapshot");
        assert!(
            snap.usage_bytes > 0 && snap.stat.contains_key("total_rss"),
            "{snap:?}"
        );
        let classes = snap.classes(true);
        assert!(classes.anon + classes.file > 0, "{classes:?}");
        assert!(cg.cgroup_id("/").expect("root id") > 0);
    }
}
