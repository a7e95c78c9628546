//! Minimal reader of the running kernel's raw BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Rust eBPF has no CO-RE relocations, so the agent learns struct offsets, kernel enum values and
//! raw tracepoint argument types from BTF at start-up and hands them to the programs as globals.
//! Format: Documentation/bpf/btf.rst. Everything read from the blob is bounds-checked; malformed
//! input yields [`BtfError`], never a panic, and reference cycles stop at [`MAX_DEPTH`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod format;

use format::*;

/// Longest typedef/modifier chain, anonymous-member nesting or type-name recursion we follow.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read BTF from {path}: {source}; the agent needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF (it provides /sys/kernel/btf/vmlinux) and permission to read it"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "malformed BTF in {origin}: {reason}; expected raw kernel BTF like /sys/kernel/btf/vmlinux"
    )]
    Malformed { origin: String, reason: String },
    #[error(
        "the running kernel's BTF has no struct or union `{name}`; was it renamed in this kernel \
         version? the agent needs CONFIG_DEBUG_INFO_BTF"
    )]
    StructNotFound { name: String },
    /// The struct exists but the path does not lead to a byte-addressable member.
    #[error("cannot locate `{struct_name}.{member_path}` in the running kernel's BTF: {problem}")]
    Member {
        struct_name: String,
        member_path: String,
        problem: String,
    },
    #[error(
        "the running kernel's BTF has no enum `{name}`; is this kernel older than 6.x or built \
         without that feature? the agent needs CONFIG_DEBUG_INFO_BTF"
    )]
    EnumNotFound { name: String },
    #[error(
        "enum `{enum_name}` has no variant `{variant}` in the running kernel; it has: {available}"
    )]
    VariantNotFound {
        enum_name: String,
        variant: String,
        available: String,
    },
    #[error(
        "the running kernel's BTF has no typedef `btf_trace_{tracepoint}`: the raw tracepoint \
         `{tracepoint}` does not exist in this kernel (look under /sys/kernel/tracing/events/*/) \
         or the kernel lacks CONFIG_DEBUG_INFO_BTF"
    )]
    TracepointNotFound { tracepoint: String },
    #[error("`btf_trace_{tracepoint}` is not shaped `void (*)(void *, args...)`: {reason}")]
    BadTracepointType { tracepoint: String, reason: String },
}

/// Where a member lives inside its outermost struct, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLocation {
    pub offset: u32,
    pub size: u32,
}

/// One argument of a raw tracepoint as a `tp_btf` program receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointArg {
    /// Parameter name from the kernel's tracepoint stub, or `argN` when BTF has none.
    pub name: String,
    /// C spelling of the type, e.g. `struct mem_cgroup *`.
    pub type_name: String,
}

/// Parsed BTF: all types (index = type id, 0 is void) plus an index from name to type ids.
pub struct Btf {
    origin: String,
    strings: Vec<u8>,
    types: Vec<BtfType>,
    by_name: HashMap<String, Vec<u32>>,
    pointer_size: u32,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("origin", &self.origin)
            .field("types", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .finish()
    }
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&bytes, path.display().to_string())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Btf, BtfError> {
        Self::parse(bytes, "in-memory BTF bytes".to_owned())
    }

    /// All variants of a named enum (ENUM or ENUM64), in declaration order.
    pub fn enum_variants(&self, enum_name: &str) -> Result<Vec<(String, i64)>, BtfError> {
        // Forward-declared enums have no variants; skip them in favour of the definition.
        let variants = self
            .named(&[enum_name], &[KIND_ENUM, KIND_ENUM64])
            .find_map(|id| match &self.types[id as usize].detail {
                Detail::Enum(variants) if !variants.is_empty() => Some(variants),
                _ => None,
            })
            .ok_or_else(|| BtfError::EnumNotFound {
                name: enum_name.to_owned(),
            })?;
        variants
            .iter()
            .map(|&(name_off, value)| Ok((self.name(name_off)?.to_owned(), value)))
            .collect()
    }

    /// Value of one enum variant. Unsigned 64-bit values above `i64::MAX` keep their bits.
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Result<i64, BtfError> {
        let variants = self.enum_variants(enum_name)?;
        variants
            .iter()
            .find(|(name, _)| name == variant)
            .map(|&(_, value)| value)
            .ok_or_else(|| BtfError::VariantNotFound {
                enum_name: enum_name.to_owned(),
                variant: variant.to_owned(),
                available: list(variants.iter().map(|(name, _)| name.clone()).collect()),
            })
    }

    /// Byte offset and byte size of a member reached by a dotted path from a named struct/union,
    /// e.g. ("task_struct", "cgroups"), ("mem_cgroup", "css.cgroup"), ("css_set", "subsys[4]").
    /// Descends through anonymous struct/union members, follows typedefs and qualifiers.
    pub fn member_offset(
        &self,
        struct_name: &str,
        member_path: &str,
    ) -> Result<MemberLocation, BtfError> {
        let components = parse_path(member_path).map_err(|reason| BtfError::Member {
            struct_name: struct_name.to_owned(),
            member_path: member_path.to_owned(),
            problem: format!(
                "{reason}; use dotted C member names with optional array indexes, e.g. \
                 `css.cgroup` or `subsys[4]`"
            ),
        })?;
        // A name may be defined more than once (distinct structs in different subsystems, or a
        // typedef of the same name): the first one where the path resolves wins.
        let mut first_error = None;
        for id in self.named(&[struct_name], &[KIND_STRUCT, KIND_UNION, KIND_TYPEDEF]) {
            let resolved = self.skip_modifiers(id)?;
            if !matches!(self.ty(resolved)?.kind, KIND_STRUCT | KIND_UNION) {
                continue;
            }
            match self.locate(resolved, struct_name, member_path, &components) {
                Ok(location) => return Ok(location),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| BtfError::StructNotFound {
            name: struct_name.to_owned(),
        }))
    }

    /// Argument names and C type names of a raw tracepoint: the kernel declares
    /// `typedef void (*btf_trace_<tp>)(void *, args...)`; this returns the args after `void *`.
    pub fn tracepoint_args(&self, tracepoint: &str) -> Result<Vec<TracepointArg>, BtfError> {
        let bad = |reason: String| BtfError::BadTracepointType {
            tracepoint: tracepoint.into(),
            reason,
        };
        let typedef = self
            .named(&[&format!("btf_trace_{tracepoint}")], &[KIND_TYPEDEF])
            .next()
            .ok_or_else(|| BtfError::TracepointNotFound {
                tracepoint: tracepoint.to_owned(),
            })?;
        let pointer = self.ty(self.skip_modifiers(typedef)?)?;
        if pointer.kind != KIND_PTR {
            return Err(bad(format!(
                "it is a {}, not a pointer",
                kind_name(pointer.kind)
            )));
        }
        let params = match &self.ty(self.skip_modifiers(pointer.size_or_type)?)?.detail {
            Detail::Params(params) => params,
            _ => return Err(bad("it does not point to a function prototype".into())),
        };
        match params.first() {
            Some(&(_, first)) if self.type_name(first)? == "void *" => {}
            _ => return Err(bad("the first parameter is not `void *`".into())),
        }
        let names = self.tracepoint_param_names(tracepoint, params);
        let mut args = Vec::with_capacity(params.len() - 1);
        for (index, &(_, type_id)) in params.iter().enumerate().skip(1) {
            let name = names.as_ref().and_then(|names| names.get(index).cloned());
            args.push(TracepointArg {
                name: name.unwrap_or_else(|| format!("arg{}", index - 1)),
                type_name: self.type_name(type_id)?,
            });
        }
        Ok(args)
    }

    /// The btf_trace typedef's prototype has no parameter names; the kernel's per-tracepoint
    /// stub functions have the same parameters, named.
    fn tracepoint_param_names(
        &self,
        tracepoint: &str,
        params: &[(u32, u32)],
    ) -> Option<Vec<String>> {
        let stubs =
            ["__probestub_", "__traceiter_", "__bpf_trace_"].map(|p| format!("{p}{tracepoint}"));
        let stub_names: Vec<&str> = stubs.iter().map(String::as_str).collect();
        let names = self.named(&stub_names, &[KIND_FUNC]).find_map(|func| {
            let proto = self
                .types
                .get(self.types[func as usize].size_or_type as usize)?;
            let Detail::Params(named) = &proto.detail else {
                return None;
            };
            let same_types =
                named.len() == params.len() && named.iter().zip(params).all(|(a, b)| a.1 == b.1);
            let names: Vec<String> = named
                .iter()
                .map(|&(name_off, _)| self.name(name_off).ok().map(str::to_owned))
                .collect::<Option<_>>()?;
            (same_types && names.iter().all(|name| !name.is_empty())).then_some(names)
        });
        names
    }

    /// Type ids carrying one of `names` whose kind is one of `kinds`, in id order per name.
    fn named<'a>(&'a self, names: &'a [&str], kinds: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        names
            .iter()
            .filter_map(|name| self.by_name.get(*name))
            .flatten()
            .copied()
            .filter(|&id| kinds.contains(&self.types[id as usize].kind))
    }

    fn locate(
        &self,
        struct_id: u32,
        struct_name: &str,
        member_path: &str,
        components: &[(&str, Vec<u32>)],
    ) -> Result<MemberLocation, BtfError> {
        let fail = |problem: String| {
            let (struct_name, member_path) = (struct_name.to_owned(), member_path.to_owned());
            Err(BtfError::Member {
                struct_name,
                member_path,
                problem,
            })
        };
        let mut bit_offset = 0u64;
        let mut current = struct_id;
        for (component, indexes) in components {
            let container = self.ty(self.skip_modifiers(current)?)?;
            if !matches!(container.kind, KIND_STRUCT | KIND_UNION) {
                return fail(format!(
                    "`{component}` is inside a {}, not a struct or union; a member path cannot \
                     cross pointers, look the pointed-to struct up separately",
                    kind_name(container.kind)
                ));
            }
            let Some((offset, member)) =
                self.find_member(container, component, 0, &mut 1_000_000)?
            else {
                let mut names = Vec::new();
                self.member_names(container, 0, &mut names)?;
                return fail(format!(
                    "no member `{component}`; members there: {}",
                    list(names)
                ));
            };
            bit_offset = bit_offset.saturating_add(u64::from(offset));
            let member_type = self.ty(self.skip_modifiers(member.type_id)?)?;
            let bits = match member_type.detail {
                _ if member.bitfield_bits != 0 => member.bitfield_bits,
                // Structs without kind_flag encode bitfields in the INT type itself.
                Detail::Int {
                    bits,
                    bit_offset: at,
                } if at != 0 || u64::from(bits) != u64::from(member_type.size_or_type) * 8 => bits,
                _ => 0,
            };
            if bits != 0 || !bit_offset.is_multiple_of(8) {
                return fail(format!(
                    "`{component}` is a bitfield ({bits} bits at bit offset {bit_offset}) and has \
                     no byte offset; read the containing word and mask it instead"
                ));
            }
            current = member.type_id;
            for &index in indexes {
                let array = self.ty(self.skip_modifiers(current)?)?;
                let Detail::Array { elem_type, nelems } = array.detail else {
                    let kind = kind_name(array.kind);
                    return fail(format!(
                        "`{component}` is a {kind}, not an array; drop the index"
                    ));
                };
                // nelems == 0 is a flexible array member: any index is allowed.
                if nelems != 0 && index >= nelems {
                    return fail(format!(
                        "index {index} is out of bounds: `{component}` has {nelems} elements"
                    ));
                }
                let elem_bits = u64::from(self.type_size(elem_type)?) * 8;
                bit_offset = bit_offset.saturating_add(u64::from(index).saturating_mul(elem_bits));
                current = elem_type;
            }
        }
        let Ok(offset) = u32::try_from(bit_offset / 8) else {
            return fail(format!(
                "the offset ({bit_offset} bits) does not fit in 32 bits"
            ));
        };
        Ok(MemberLocation {
            offset,
            size: self.type_size(current)?,
        })
    }

    /// Finds `name` among the members of `container`, descending into anonymous members.
    /// Returns the member's bit offset from the start of `container`. `steps` bounds the work
    /// so crafted BTF (anonymous members fanning out at every level) cannot stall start-up.
    fn find_member<'a>(
        &'a self,
        container: &'a BtfType,
        name: &str,
        depth: usize,
        steps: &mut usize,
    ) -> Result<Option<(u32, &'a Member)>, BtfError> {
        let Detail::Members(members) = &container.detail else {
            return Ok(None);
        };
        if depth > MAX_DEPTH {
            return Err(self.malformed(format!("anonymous members nest deeper than {MAX_DEPTH}")));
        }
        for member in members {
            *steps = steps.checked_sub(1).ok_or_else(|| {
                self.malformed("anonymous members expand to more than a million members".into())
            })?;
            let member_name = self.name(member.name_off)?;
            if member_name == name {
                return Ok(Some((member.bit_offset, member)));
            }
            if member_name.is_empty() {
                let inner = self.ty(self.skip_modifiers(member.type_id)?)?;
                if let Some((offset, found)) = self.find_member(inner, name, depth + 1, steps)? {
                    let offset = offset.checked_add(member.bit_offset);
                    let offset =
                        offset.ok_or_else(|| self.malformed("member offset overflows".into()))?;
                    return Ok(Some((offset, found)));
                }
            }
        }
        Ok(None)
    }

    /// Member names as C sees them (anonymous members flattened), for error messages.
    fn member_names(
        &self,
        container: &BtfType,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<(), BtfError> {
        let Detail::Members(members) = &container.detail else {
            return Ok(());
        };
        if depth > MAX_DEPTH {
            return Ok(()); // find_member reports the malformed nesting
        }
        for member in members {
            match self.name(member.name_off)? {
                "" => {
                    let inner = self.ty(self.skip_modifiers(member.type_id)?)?;
                    self.member_names(inner, depth + 1, out)?;
                }
                name => out.push(name.to_owned()),
            }
        }
        Ok(())
    }

    fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            match self.ty(id)?.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = self.ty(id)?.size_or_type;
                }
                _ => return Ok(id),
            }
        }
        Err(self.malformed(format!(
            "typedef/qualifier chain at type id {id} is a cycle"
        )))
    }

    fn type_size(&self, mut id: u32) -> Result<u32, BtfError> {
        let mut count = 1u64;
        for _ in 0..MAX_DEPTH {
            id = self.skip_modifiers(id)?;
            let ty = self.ty(id)?;
            let size = match (&ty.detail, ty.kind) {
                (Detail::Array { elem_type, nelems }, _) => {
                    count = count.saturating_mul(u64::from(*nelems));
                    id = *elem_type;
                    continue;
                }
                (_, KIND_PTR) => self.pointer_size,
                (_, KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT) => {
                    ty.size_or_type
                }
                (_, kind) => {
                    let kind = kind_name(kind);
                    return Err(self.malformed(format!("type id {id} is a {kind} and has no size")));
                }
            };
            let total = count.saturating_mul(u64::from(size));
            return u32::try_from(total)
                .map_err(|_| self.malformed(format!("size of type id {id} overflows")));
        }
        Err(self.malformed(format!(
            "array nesting at type id {id} is deeper than {MAX_DEPTH}"
        )))
    }

    /// C spelling of a type, e.g. `struct mem_cgroup *`, `const char *`, `int[4]`.
    fn type_name(&self, id: u32) -> Result<String, BtfError> {
        self.render(id, 0)
    }

    fn render(&self, id: u32, depth: usize) -> Result<String, BtfError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed(format!("type id {id} nests deeper than {MAX_DEPTH}")));
        }
        let ty = self.ty(id)?;
        let name = match self.name(ty.name_off)? {
            "" => "(anon)",
            name => name,
        };
        let inner = || self.render(ty.size_or_type, depth + 1);
        let qualified = |qualifier: &str| -> Result<String, BtfError> {
            let inner = inner()?;
            Ok(if inner.ends_with('*') {
                format!("{inner} {qualifier}")
            } else {
                format!("{qualifier} {inner}")
            })
        };
        Ok(match ty.kind {
            0 => "void".to_owned(),
            KIND_STRUCT => format!("struct {name}"),
            KIND_UNION => format!("union {name}"),
            KIND_ENUM | KIND_ENUM64 => format!("enum {name}"),
            KIND_FWD if ty.kind_flag => format!("union {name}"),
            KIND_FWD => format!("struct {name}"),
            KIND_CONST => qualified("const")?,
            KIND_VOLATILE => qualified("volatile")?,
            KIND_RESTRICT => qualified("restrict")?,
            KIND_TYPE_TAG => inner()?,
            KIND_PTR if self.ty(ty.size_or_type)?.kind == KIND_FUNC_PROTO => inner()?,
            KIND_PTR => match inner()? {
                inner if inner.ends_with('*') => format!("{inner}*"),
                inner => format!("{inner} *"),
            },
            KIND_ARRAY => match ty.detail {
                Detail::Array { elem_type, nelems } => {
                    format!("{}[{nelems}]", self.render(elem_type, depth + 1)?)
                }
                _ => name.to_owned(),
            },
            KIND_FUNC_PROTO => {
                let Detail::Params(params) = &ty.detail else {
                    return Ok(name.to_owned());
                };
                // Function pointers nested in parameters are elided so a crafted prototype
                // fanning out at every level cannot make this exponential.
                let args = if depth > 2 {
                    "...".to_owned()
                } else {
                    let args: Result<Vec<_>, _> = params
                        .iter()
                        .map(|&(_, param)| self.render(param, depth + 1))
                        .collect();
                    args?.join(", ")
                };
                format!("{} (*)({args})", inner()?)
            }
            _ => name.to_owned(),
        })
    }

    fn ty(&self, id: u32) -> Result<&BtfType, BtfError> {
        self.types.get(id as usize).ok_or_else(|| {
            self.malformed(format!(
                "reference to type id {id}, but only {} types exist",
                self.types.len()
            ))
        })
    }

    fn name(&self, offset: u32) -> Result<&str, BtfError> {
        let tail = self.strings.get(offset as usize..).unwrap_or_default();
        let end = tail.iter().position(|&byte| byte == 0).ok_or_else(|| {
            self.malformed(format!(
                "string offset {offset} is outside the string section"
            ))
        })?;
        std::str::from_utf8(&tail[..end])
            .map_err(|_| self.malformed(format!("string at offset {offset} is not UTF-8")))
    }

    fn malformed(&self, reason: String) -> BtfError {
        BtfError::Malformed {
            origin: self.origin.clone(),
            reason,
        }
    }
}

/// Splits `a.b[3].c` into `[("a", []), ("b", [3]), ("c", [])]`.
fn parse_path(path: &str) -> Result<Vec<(&str, Vec<u32>)>, String> {
    path.split('.')
        .map(|component| {
            let (name, mut rest) =
                component.split_at(component.find('[').unwrap_or(component.len()));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{component}` is not a C member name"));
            }
            let mut indexes = Vec::new();
            while !rest.is_empty() {
                let (index, tail) = rest
                    .strip_prefix('[')
                    .and_then(|inner| inner.split_once(']'))
                    .ok_or_else(|| format!("`{component}` has a malformed `[index]`"))?;
                indexes.push(
                    index
                        .parse()
                        .map_err(|_| format!("`{index}` is not an array index"))?,
                );
                rest = tail;
            }
            Ok((name, indexes))
        })
        .collect()
}

/// Names for an error message, shortened so a 120-variant enum stays readable.
fn list(names: Vec<String>) -> String {
    const SHOWN: usize = 40;
    let more = names.len().saturating_sub(SHOWN);
    let mut text = names.into_iter().take(SHOWN).collect::<Vec<_>>().join(", ");
    if more > 0 {
        text.push_str(&format!(", ... ({more} more)"));
    }
    if text.is_empty() {
        "(none)".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
#[path = "btf_tests.rs"]
mod tests;
