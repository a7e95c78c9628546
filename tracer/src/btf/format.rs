//! The raw BTF format (Documentation/bpf/btf.rst): header, type section and string section,
//! decoded into the type table [`Btf`] queries. Everything read from the blob is bounds-checked.
use std::collections::HashMap;

use super::{Btf, BtfError};

pub(super) const HEADER_LEN: usize = 24;

pub(super) const KIND_INT: u8 = 1;
pub(super) const KIND_PTR: u8 = 2;
pub(super) const KIND_ARRAY: u8 = 3;
pub(super) const KIND_STRUCT: u8 = 4;
pub(super) const KIND_UNION: u8 = 5;
pub(super) const KIND_ENUM: u8 = 6;
pub(super) const KIND_FWD: u8 = 7;
pub(super) const KIND_TYPEDEF: u8 = 8;
pub(super) const KIND_VOLATILE: u8 = 9;
pub(super) const KIND_CONST: u8 = 10;
pub(super) const KIND_RESTRICT: u8 = 11;
pub(super) const KIND_FUNC: u8 = 12;
pub(super) const KIND_FUNC_PROTO: u8 = 13;
pub(super) const KIND_VAR: u8 = 14;
pub(super) const KIND_DATASEC: u8 = 15;
pub(super) const KIND_FLOAT: u8 = 16;
pub(super) const KIND_DECL_TAG: u8 = 17;
pub(super) const KIND_TYPE_TAG: u8 = 18;
pub(super) const KIND_ENUM64: u8 = 19;

pub(super) fn kind_name(kind: u8) -> &'static str {
    const NAMES: &str = "void,int,pointer,array,struct,union,enum,forward declaration,typedef,\
        volatile,const,restrict,function,function prototype,variable,data section,float,decl tag,\
        type tag,enum64";
    NAMES
        .split(',')
        .nth(usize::from(kind))
        .unwrap_or("unknown kind")
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) name_off: u32,
    pub(super) type_id: u32,
    pub(super) bit_offset: u32,
    /// Non-zero only for bitfields in structs using the kind_flag encoding.
    pub(super) bitfield_bits: u32,
}

#[derive(Debug)]
pub(super) enum Detail {
    Plain,
    Int {
        bits: u32,
        bit_offset: u32,
    },
    Array {
        elem_type: u32,
        nelems: u32,
    },
    Members(Vec<Member>),
    /// ENUM and ENUM64 variants: (name offset, value).
    Enum(Vec<(u32, i64)>),
    /// FUNC_PROTO parameters: (name offset, type id).
    Params(Vec<(u32, u32)>),
}

#[derive(Debug)]
pub(super) struct BtfType {
    pub(super) name_off: u32,
    pub(super) kind: u8,
    pub(super) kind_flag: bool,
    pub(super) size_or_type: u32,
    pub(super) detail: Detail,
}

/// Bounds-checked u32 reader over one section, in the blob's byte order.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Reader<'_> {
    fn u32(&mut self) -> Option<u32> {
        let word: [u8; 4] = self
            .bytes
            .get(self.pos..self.pos.checked_add(4)?)?
            .try_into()
            .ok()?;
        self.pos += 4;
        Some(if self.big_endian {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        })
    }
}

impl Btf {
    pub(super) fn parse(bytes: &[u8], origin: String) -> Result<Btf, BtfError> {
        let malformed = |reason: String| BtfError::Malformed {
            origin: origin.clone(),
            reason,
        };
        let header = bytes.get(..HEADER_LEN).ok_or_else(|| {
            malformed(format!(
                "only {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ))
        })?;
        let big_endian = match u16::from_le_bytes([header[0], header[1]]) {
            0xeb9f => false,
            0x9feb => true,
            magic => return Err(malformed(format!("magic is {magic:#06x}, not 0xeb9f"))),
        };
        if header[2] != 1 {
            return Err(malformed(format!(
                "version {} (only version 1 is known)",
                header[2]
            )));
        }
        let mut fields = Reader {
            bytes: header,
            pos: 4,
            big_endian,
        };
        let mut next = || fields.u32().map(|v| v as usize).unwrap_or(usize::MAX);
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (next(), next(), next(), next(), next());
        let data = bytes
            .get(hdr_len..)
            .filter(|_| hdr_len >= HEADER_LEN)
            .ok_or_else(|| malformed(format!("header length {hdr_len} is invalid")))?;
        let section = |off: usize, len: usize, what: &str| {
            off.checked_add(len)
                .and_then(|end| data.get(off..end))
                .ok_or_else(|| {
                    malformed(format!(
                        "{what} section ({len} bytes at {off}) exceeds the data"
                    ))
                })
        };
        let strings = section(str_off, str_len, "string")?.to_vec();
        if strings.first() != Some(&0) {
            return Err(malformed(
                "string section does not start with a NUL byte".into(),
            ));
        }
        let mut reader = Reader {
            bytes: section(type_off, type_len, "type")?,
            pos: 0,
            big_endian,
        };
        let void = BtfType {
            name_off: 0,
            kind: 0,
            kind_flag: false,
            size_or_type: 0,
            detail: Detail::Plain,
        };
        let mut types = vec![void];
        while reader.pos < reader.bytes.len() {
            let type_id = types.len();
            let ty = parse_type(&mut reader).map_err(|reason| {
                malformed(format!(
                    "type id {type_id} (at byte {}): {reason}",
                    reader.pos
                ))
            })?;
            types.push(ty);
        }
        let mut btf = Btf {
            origin,
            strings,
            types,
            by_name: HashMap::new(),
            pointer_size: 8,
        };
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, ty) in btf.types.iter().enumerate() {
            let name = btf.name(ty.name_off)?;
            if !name.is_empty() {
                let id = u32::try_from(id).map_err(|_| btf.malformed("too many types".into()))?;
                by_name.entry(name.to_owned()).or_default().push(id);
            }
        }
        btf.by_name = by_name;
        // BTF does not record pointer width; `long` has it on every Linux ABI.
        let long = btf
            .named(&["long unsigned int", "long int"], &[KIND_INT])
            .next();
        if let Some(long) = long {
            btf.pointer_size = btf.types[long as usize].size_or_type;
        }
        Ok(btf)
    }
}

fn parse_type(reader: &mut Reader<'_>) -> Result<BtfType, String> {
    let mut word = || {
        reader
            .u32()
            .ok_or_else(|| "the type section ends inside this type".to_owned())
    };
    let (name_off, info, size_or_type) = (word()?, word()?, word()?);
    let kind = ((info >> 24) & 0x1f) as u8;
    let kind_flag = info >> 31 == 1;
    let vlen = (info & 0xffff) as usize;
    let detail = match kind {
        KIND_INT => {
            let encoding = word()?;
            Detail::Int {
                bits: encoding & 0xff,
                bit_offset: (encoding >> 16) & 0xff,
            }
        }
        KIND_ARRAY => {
            let (elem_type, _index_type, nelems) = (word()?, word()?, word()?);
            Detail::Array { elem_type, nelems }
        }
        KIND_STRUCT | KIND_UNION => Detail::Members(records(vlen, || {
            let (name_off, type_id, offset) = (word()?, word()?, word()?);
            let (bit_offset, bitfield_bits) = if kind_flag {
                (offset & 0xff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            Ok(Member {
                name_off,
                type_id,
                bit_offset,
                bitfield_bits,
            })
        })?),
        // kind_flag marks a signed enum.
        KIND_ENUM => Detail::Enum(records(vlen, || {
            let (name_off, value) = (word()?, word()?);
            Ok((
                name_off,
                if kind_flag {
                    i64::from(value as i32)
                } else {
                    i64::from(value)
                },
            ))
        })?),
        KIND_ENUM64 => Detail::Enum(records(vlen, || {
            let (name_off, low, high) = (word()?, word()?, word()?);
            Ok((name_off, ((u64::from(high) << 32) | u64::from(low)) as i64))
        })?),
        KIND_FUNC_PROTO => Detail::Params(records(vlen, || Ok((word()?, word()?)))?),
        KIND_VAR | KIND_DECL_TAG => {
            word()?;
            Detail::Plain
        }
        KIND_DATASEC => {
            for _ in 0..vlen * 3 {
                word()?;
            }
            Detail::Plain
        }
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => Detail::Plain,
        unknown => {
            return Err(format!(
                "kind {unknown} is unknown to this agent (it knows 1..=19, up to ENUM64); the \
                 kernel's BTF is newer than the agent, update the agent"
            ))
        }
    };
    Ok(BtfType {
        name_off,
        kind,
        kind_flag,
        size_or_type,
        detail,
    })
}

fn records<T>(
    vlen: usize,
    mut record: impl FnMut() -> Result<T, String>,
) -> Result<Vec<T>, String> {
    (0..vlen).map(|_| record()).collect()
}
