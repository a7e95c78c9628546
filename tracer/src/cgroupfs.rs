//! The one interface through which the agent reads cgroup memory state and writes memory limits,
//! for cgroup v1 and v2.
//!
//! There is no trait and no mock: a test fake is a temp directory laid out like a cgroupfs, so the
//! same [`CgroupFs`] code runs against `/sys/fs/cgroup/...` and against fixtures.
//! Relative cgroup paths look like `"/a/b"` (`"/"` is the root of the hierarchy).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind, Write};
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

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
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

impl CgroupVersion {
    /// As the records spell it: `v1` / `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

pub use crate::cgroup_layout::*;

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

#[cfg(test)]
#[path = "cgroupfs_tests.rs"]
mod tests;
