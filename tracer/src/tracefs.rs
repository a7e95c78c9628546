//! Tracepoint `format` files from tracefs: the field offsets a classic tracepoint program must use.
//!
//! Field layouts change between kernel builds, so the agent reads them at start-up from
//! `<tracefs>/events/<category>/<name>/format` instead of hard-coding offsets.

use std::io;
use std::path::{Path, PathBuf};

const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (no events/ under {tried}); mount it with \
         `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NotMounted { tried: String },
    #[error(
        "tracepoint {tracepoint} does not exist in this kernel ({path} is missing); check the \
         kernel version and config (the memcg tracepoints need Linux 6.13 or later)"
    )]
    Missing { tracepoint: String, path: PathBuf },
    #[error("cannot read {path}: {source}; the agent needs root to read tracefs")]
    Read { path: PathBuf, source: io::Error },
    #[error("malformed format of tracepoint {tracepoint}: {reason}")]
    Malformed { tracepoint: String, reason: String },
    #[error(
        "tracepoint {tracepoint} has no field `{field}` in this kernel; its fields are: \
         {available}"
    )]
    FieldNotFound {
        tracepoint: String,
        field: String,
        available: String,
    },
    #[error(
        "field `{field}` of tracepoint {tracepoint} is {actual} bytes in this kernel, the agent \
         expects {expected}; the tracepoint's layout changed, the agent needs updating"
    )]
    FieldSize {
        tracepoint: String,
        field: String,
        expected: u32,
        actual: u32,
    },
}

/// The parsed `format` file of one tracepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    pub category: String,
    pub name: String,
    /// Event id (the `ID:` line); what perf_event_open attaches to.
    pub id: u32,
    /// All fields in file order, including the `common_*` header fields.
    pub fields: Vec<FormatField>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatField {
    pub name: String,
    /// C type without the name, array suffix kept (`char[16]`); `char[]` for `__data_loc` fields.
    pub c_type: String,
    /// Byte offset in the raw record passed to a classic tracepoint program.
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// `__data_loc char[] x`: the field is a u32 holding (length << 16 | offset of the data).
    pub data_loc: bool,
}

/// Parses the text of `events/<category>/<name>/format`.
pub fn parse_format(
    category: &str,
    name: &str,
    text: &str,
) -> Result<TracepointFormat, TracefsError> {
    let tracepoint = format!("{category}:{name}");
    let malformed = |reason: String| TracefsError::Malformed {
        tracepoint: tracepoint.clone(),
        reason,
    };
    let (mut id, mut fields) = (None, Vec::new());
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if let Some(file_name) = line.strip_prefix("name:") {
            if file_name.trim() != name {
                let found = file_name.trim();
                return Err(malformed(format!(
                    "line {line_no} names tracepoint `{found}`, not `{name}`"
                )));
            }
        } else if let Some(value) = line.strip_prefix("ID:") {
            let parsed = value.trim().parse().map_err(|_| {
                malformed(format!(
                    "line {line_no}: ID `{}` is not a number",
                    value.trim()
                ))
            })?;
            id = Some(parsed);
        } else if line.starts_with("field:") {
            fields.push(
                parse_field(line)
                    .map_err(|reason| malformed(format!("line {line_no}: {reason}")))?,
            );
        }
    }
    let id = id.ok_or_else(|| malformed("there is no `ID:` line".into()))?;
    if fields.is_empty() {
        return Err(malformed("there are no `field:` lines".into()));
    }
    Ok(TracepointFormat {
        category: category.to_owned(),
        name: name.to_owned(),
        id,
        fields,
    })
}

/// Parses `field:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;`.
fn parse_field(line: &str) -> Result<FormatField, String> {
    let (mut declaration, mut offset, mut size, mut signed) = (None, None, None, false);
    for part in line
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}` is not key:value"))?;
        let number = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{key} `{value}` is not a number"))
        };
        match key.trim() {
            "field" => declaration = Some(value.trim()),
            "offset" => offset = Some(number()?),
            "size" => size = Some(number()?),
            "signed" => signed = number()? != 0,
            _ => {} // newer kernels may add keys; the ones we need are checked below
        }
    }
    let declaration = declaration.ok_or("no field declaration")?;
    let (c_type, name) = split_declaration(declaration)
        .ok_or_else(|| format!("cannot split `{declaration}` into a C type and a field name"))?;
    let (offset, size) = (offset.ok_or("no offset")?, size.ok_or("no size")?);
    let data_loc = c_type.starts_with("__data_loc ");
    let c_type = c_type.trim_start_matches("__data_loc ").trim().to_owned();
    Ok(FormatField {
        name,
        c_type,
        offset,
        size,
        signed,
        data_loc,
    })
}

/// `const void * ptr` -> ("const void *", "ptr"); `char comm[16]` -> ("char[16]", "comm").
fn split_declaration(declaration: &str) -> Option<(String, String)> {
    let split = declaration.rfind(|c: char| c.is_whitespace() || c == '*')?;
    let (c_type, last) = declaration.split_at(split + 1);
    let (name, array) = last.split_at(last.find('[').unwrap_or(last.len()));
    let is_identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let c_type = c_type.trim();
    (is_identifier && !c_type.is_empty()).then(|| (format!("{c_type}{array}"), name.to_owned()))
}

impl TracepointFormat {
    /// The named field; the error names the tracepoint and lists the fields that do exist.
    pub fn field(&self, name: &str) -> Result<&FormatField, TracefsError> {
        self.fields
            .iter()
            .find(|field| field.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .fields
                    .iter()
                    .map(|field| field.name.as_str())
                    .collect();
                TracefsError::FieldNotFound {
                    tracepoint: self.full_name(),
                    field: name.to_owned(),
                    available: names.join(", "),
                }
            })
    }

    /// The named field, checked to be `size` bytes wide (e.g. 8 for a u64 the program reads).
    pub fn field_sized(&self, name: &str, size: u32) -> Result<&FormatField, TracefsError> {
        let field = self.field(name)?;
        if field.size != size {
            return Err(TracefsError::FieldSize {
                tracepoint: self.full_name(),
                field: name.to_owned(),
                expected: size,
                actual: field.size,
            });
        }
        Ok(field)
    }

    fn full_name(&self) -> String {
        format!("{}:{}", self.category, self.name)
    }
}

/// A tracefs tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// `/sys/kernel/tracing` if it has `events/`, else `/sys/kernel/debug/tracing`.
    pub fn locate() -> Result<Tracefs, TracefsError> {
        Self::locate_among(&TRACEFS_MOUNTS.map(Path::new))
    }

    fn locate_among(candidates: &[&Path]) -> Result<Tracefs, TracefsError> {
        candidates
            .iter()
            .find(|root| root.join("events").is_dir())
            .map(|root| Tracefs::at(*root))
            .ok_or_else(|| {
                let tried: Vec<String> = candidates
                    .iter()
                    .map(|root| root.display().to_string())
                    .collect();
                TracefsError::NotMounted {
                    tried: tried.join(" or "),
                }
            })
    }

    /// A tracefs tree at `root`: either a tracefs mount point (it contains `events/`) or an
    /// events directory itself (it contains `<category>/<name>/format`, as test fixtures do).
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `events/<category>/<name>/` exists.
    pub fn has_tracepoint(&self, category: &str, name: &str) -> bool {
        self.tracepoint_dir(category, name).is_dir()
    }

    /// Reads and parses `events/<category>/<name>/format`.
    pub fn format(&self, category: &str, name: &str) -> Result<TracepointFormat, TracefsError> {
        let path = self.tracepoint_dir(category, name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => TracefsError::Missing {
                tracepoint: format!("{category}:{name}"),
                path: path.clone(),
            },
            _ => TracefsError::Read {
                path: path.clone(),
                source,
            },
        })?;
        parse_format(category, name, &text)
    }

    fn tracepoint_dir(&self, category: &str, name: &str) -> PathBuf {
        let events = self.root.join("events");
        let events = if events.is_dir() {
            events
        } else {
            self.root.clone()
        };
        events.join(category).join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tracefs-6.18");

    fn fixture(category: &str, name: &str) -> TracepointFormat {
        Tracefs::at(FIXTURES).format(category, name).unwrap()
    }

    #[test]
    fn every_fixture_parses_with_the_common_header() {
        let mut parsed = 0;
        for category in std::fs::read_dir(FIXTURES).unwrap() {
            for event in std::fs::read_dir(category.unwrap().path()).unwrap() {
                let dir = event.unwrap().path();
                let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
                let category = dir
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let text = std::fs::read_to_string(dir.join("format")).unwrap();
                let format = parse_format(&category, &name, &text).unwrap();
                assert!(format.id > 0, "{category}:{name}");
                let common_type = format.field_sized("common_type", 2).unwrap();
                assert_eq!(
                    (common_type.offset, common_type.c_type.as_str()),
                    (0, "unsigned short")
                );
                assert!(format.field("common_pid").unwrap().signed);
                parsed += 1;
            }
        }
        assert_eq!(parsed, 16, "fixture count changed");
    }

    #[test]
    fn known_fixture_offsets() {
        let layout = |f: &FormatField| (f.offset, f.size, f.signed, f.data_loc);
        let memcg = fixture("memcg", "mod_memcg_state");
        assert_eq!(memcg.id, 763);
        assert_eq!(
            layout(memcg.field_sized("id", 8).unwrap()),
            (8, 8, false, false)
        );
        assert_eq!(layout(memcg.field("item").unwrap()), (16, 4, true, false));
        assert_eq!(layout(memcg.field("val").unwrap()), (20, 4, true, false));
        assert_eq!(memcg.field("id").unwrap().c_type, "u64");
        let events = fixture("memcg", "count_memcg_events");
        assert_eq!(
            layout(events.field_sized("val", 8).unwrap()),
            (24, 8, false, false)
        );
        let kmem = fixture("kmem", "kmem_cache_alloc");
        let name = kmem.field("name").unwrap();
        assert_eq!(
            (layout(name), name.c_type.as_str()),
            ((24, 4, false, true), "char[]")
        );
        assert_eq!(kmem.field("ptr").unwrap().c_type, "const void *");
        assert_eq!(kmem.field("accounted").unwrap().offset, 60);
        assert_eq!(
            layout(fixture("oom", "mark_victim").field("comm").unwrap()),
            (12, 4, false, true)
        );
        assert_eq!(
            layout(fixture("cgroup", "cgroup_mkdir").field("path").unwrap()),
            (24, 4, false, true)
        );
    }

    #[test]
    fn declarations_split_into_type_and_name() {
        let split = |d: &str| split_declaration(d).unwrap();
        assert_eq!(split("char comm[16]"), ("char[16]".into(), "comm".into()));
        assert_eq!(
            split("const void * ptr"),
            ("const void *".into(), "ptr".into())
        );
        assert_eq!(
            split("struct foo *bar"),
            ("struct foo *".into(), "bar".into())
        );
        assert_eq!(
            split("__data_loc char[] name"),
            ("__data_loc char[]".into(), "name".into())
        );
        assert!(split_declaration("lonely").is_none());
        assert!(split_declaration("int 3x").is_none());
    }

    #[test]
    fn missing_and_mis_sized_fields_say_what_exists() {
        let memcg = fixture("memcg", "mod_memcg_state");
        let missing = memcg.field("memcg_id").unwrap_err().to_string();
        for expected in [
            "memcg:mod_memcg_state",
            "`memcg_id`",
            "common_pid, id, item, val",
        ] {
            assert!(missing.contains(expected), "{missing}");
        }
        let sized = memcg.field_sized("val", 8).unwrap_err().to_string();
        for expected in ["`val`", "memcg:mod_memcg_state", "is 4 bytes", "expects 8"] {
            assert!(sized.contains(expected), "{sized}");
        }
    }

    #[test]
    fn garbage_input_is_an_error() {
        let good =
            std::fs::read_to_string(format!("{FIXTURES}/memcg/mod_memcg_state/format")).unwrap();
        let cases = [
            ("", "no `ID:` line"),
            ("hello\nworld\n", "no `ID:` line"),
            (
                "name: mod_memcg_state\nID: 7\nformat:\n",
                "no `field:` lines",
            ),
            ("ID: x\n", "ID `x` is not a number"),
            (
                "ID: 1\n\tfield:int val;\toffset:zz;\tsize:4;\tsigned:1;\n",
                "offset `zz` is not a number",
            ),
            ("ID: 1\n\tfield:int val;\tsize:4;\tsigned:1;\n", "no offset"),
            (
                "ID: 1\n\tfield:val;\toffset:1;\tsize:4;\n",
                "cannot split `val`",
            ),
            ("ID: 1\n\tfield:int val;\toffset 8;\n", "is not key:value"),
            ("name: other\nID: 1\n", "names tracepoint `other`"),
        ];
        for (text, expected) in cases {
            let error = parse_format("memcg", "mod_memcg_state", text)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected) && error.contains("memcg:mod_memcg_state"),
                "{error}"
            );
        }
        let binary: String = (0u8..=255).map(char::from).cycle().take(4096).collect();
        assert!(parse_format("memcg", "mod_memcg_state", &binary).is_err());
        for cut in (0..good.len()).step_by(7) {
            // Truncation never panics; a cut inside the field list may still parse.
            let _ = parse_format("memcg", "mod_memcg_state", &good[..cut]);
        }
        assert!(parse_format("memcg", "mod_memcg_state", &good[..20]).is_err());
    }

    #[test]
    fn tracefs_accepts_mount_points_and_event_directories() {
        let events_root = Tracefs::at(FIXTURES);
        assert!(events_root.has_tracepoint("memcg", "mod_memcg_state"));
        assert!(!events_root.has_tracepoint("memcg", "nope"));
        let missing = events_root.format("memcg", "nope").unwrap_err();
        assert!(matches!(missing, TracefsError::Missing { .. }), "{missing}");
        assert!(missing.to_string().contains("memcg:nope"));

        let mount = tempfile::tempdir().unwrap();
        let dir = mount.path().join("events/oom/mark_victim");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            format!("{FIXTURES}/oom/mark_victim/format"),
            dir.join("format"),
        )
        .unwrap();
        let mounted = Tracefs::at(mount.path());
        assert_eq!(
            mounted.format("oom", "mark_victim").unwrap(),
            fixture("oom", "mark_victim")
        );
        assert!(mounted.has_tracepoint("oom", "mark_victim"));

        let empty = tempfile::tempdir().unwrap();
        let found = Tracefs::locate_among(&[empty.path(), mount.path()]).unwrap();
        assert_eq!(found.root(), mount.path());
        let error = Tracefs::locate_among(&[empty.path()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mount -t tracefs nodev /sys/kernel/tracing"),
            "{error}"
        );
    }

    #[test]
    fn running_kernel_matches_the_parser() {
        let Ok(tracefs) = Tracefs::locate() else {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: tracefs is not mounted on this machine\n",
            );
            return;
        };
        if !tracefs.has_tracepoint("memcg", "mod_memcg_state") {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: this kernel has no memcg:mod_memcg_state (older than 6.13)\n",
            );
            return;
        }
        let live = tracefs.format("memcg", "mod_memcg_state").unwrap();
        for field in ["id", "item", "val"] {
            assert!(live.field(field).is_ok(), "{live:?}");
        }
        eprintln!("live memcg:mod_memcg_state: {live:?}");
    }
}
