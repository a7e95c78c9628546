//! Where the memory controller lives on this host: the cgroup mounts in /proc/self/mountinfo
//! (v1, cgroup2, or both: systemd's "hybrid" layout) and which one carries `memory`.
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroupfs::{io_error, CgroupError, CgroupVersion};

/// Which cgroup hierarchies are mounted: only v1 ones, only cgroup2, or both (systemd "hybrid").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    V1,
    V2,
    Hybrid,
}

impl CgroupMode {
    /// As the records spell it: `v1` / `v2` / `hybrid`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
            CgroupMode::Hybrid => "hybrid",
        }
    }
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
