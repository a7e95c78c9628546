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
#[path = "tracefs_tests.rs"]
mod tests;
