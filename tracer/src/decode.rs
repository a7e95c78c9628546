//! Decodes raw ring-buffer records into typed kernel events. Pure: byte fixtures in, values out.
use std::mem::size_of;

use tracer_common::{
    CgroupEvent, EventHeader, EventKind, KswapdWakeEvent, OomVictimEvent, ReclaimEvent,
    ShrinkSlabEvent,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring-buffer record of {len} bytes is shorter than an event header ({need} bytes)")]
    TooShort { len: usize, need: usize },
    #[error("ring-buffer record has unknown event kind {kind}: agent and eBPF object disagree (rebuild both)")]
    UnknownKind { kind: u32 },
    #[error("{kind:?} record is {len} bytes, expected {need}: agent and eBPF object disagree (rebuild both)")]
    WrongSize {
        kind: EventKind,
        len: usize,
        need: usize,
    },
}

/// One decoded kernel event.
#[derive(Debug, Clone, Copy)]
pub enum KernelEvent {
    Reclaim(ReclaimEvent),
    OomVictim(OomVictimEvent),
    CgroupMkdir(CgroupEvent),
    CgroupRmdir(CgroupEvent),
    ShrinkSlab(ShrinkSlabEvent),
    KswapdWake(KswapdWakeEvent),
}

impl KernelEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            KernelEvent::Reclaim(_) => EventKind::Reclaim,
            KernelEvent::OomVictim(_) => EventKind::OomVictim,
            KernelEvent::CgroupMkdir(_) => EventKind::CgroupMkdir,
            KernelEvent::CgroupRmdir(_) => EventKind::CgroupRmdir,
            KernelEvent::ShrinkSlab(_) => EventKind::ShrinkSlab,
            KernelEvent::KswapdWake(_) => EventKind::KswapdWake,
        }
    }
}

/// Copies a `T` out of `bytes` after checking the length.
fn read<T: Copy>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() != need {
        return Err(DecodeError::WrongSize {
            kind,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: the length is checked above, and T is one of the repr(C) wire types made only of
    // integers and byte arrays, so any bit pattern is a valid value; read_unaligned copes with
    // the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let need = size_of::<EventHeader>();
    if bytes.len() < need {
        return Err(DecodeError::TooShort {
            len: bytes.len(),
            need,
        });
    }
    let kind_raw = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let kind = EventKind::from_u32(kind_raw).ok_or(DecodeError::UnknownKind { kind: kind_raw })?;
    Ok(match kind {
        EventKind::Reclaim => KernelEvent::Reclaim(read(bytes, kind)?),
        EventKind::OomVictim => KernelEvent::OomVictim(read(bytes, kind)?),
        EventKind::CgroupMkdir => KernelEvent::CgroupMkdir(read(bytes, kind)?),
        EventKind::CgroupRmdir => KernelEvent::CgroupRmdir(read(bytes, kind)?),
        EventKind::ShrinkSlab => KernelEvent::ShrinkSlab(read(bytes, kind)?),
        EventKind::KswapdWake => KernelEvent::KswapdWake(read(bytes, kind)?),
    })
}

/// A NUL-terminated kernel string (comm, path) as UTF-8, lossily.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Name of an event kind in records (`loss` maps are keyed by it).
pub fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Reclaim => "reclaim",
        EventKind::OomVictim => "oom",
        EventKind::CgroupMkdir => "cgroup_mkdir",
        EventKind::CgroupRmdir => "cgroup_rmdir",
        EventKind::ShrinkSlab => "shrink_slab",
        EventKind::KswapdWake => "kswapd_wake",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tracer_common::{ReclaimKind, COMM_LEN, RECLAIM_MISSING_BEGIN};

    pub fn header(kind: EventKind, memcg_id: u64) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"stress"[..4].as_ref());
        EventHeader {
            kind: kind as u32,
            cpu: 1,
            ts_ns: 1_000,
            tgid: 42,
            tid: 43,
            memcg_id,
            comm,
        }
    }

    pub fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: T is a plain repr(C) wire type; viewing it as bytes is always valid.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    pub fn reclaim(memcg_id: u64, nr: u64) -> ReclaimEvent {
        ReclaimEvent {
            header: header(EventKind::Reclaim, memcg_id),
            latency_ns: 5_000,
            nr_reclaimed: nr,
            gfp_flags: 0xcc0,
            order: 0,
            reclaim_kind: ReclaimKind::Memcg as u32,
            flags: 0,
            _pad: 0,
        }
    }

    #[test]
    fn decodes_a_reclaim_event() {
        let mut ev = reclaim(8516, 32);
        ev.flags = RECLAIM_MISSING_BEGIN;
        let KernelEvent::Reclaim(got) = decode(&bytes_of(&ev)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(got.header.memcg_id, 8516);
        assert_eq!(got.nr_reclaimed, 32);
        assert_eq!(got.flags, RECLAIM_MISSING_BEGIN);
        assert_eq!(c_string(&got.header.comm), "stre");
    }

    #[test]
    fn rejects_short_unknown_and_mis_sized_records() {
        assert_eq!(
            decode(&[1, 0]).err(),
            Some(DecodeError::TooShort { len: 2, need: 48 })
        );
        let mut bytes = bytes_of(&reclaim(1, 1));
        bytes[0] = 99;
        assert_eq!(
            decode(&bytes).err(),
            Some(DecodeError::UnknownKind { kind: 99 })
        );
        let mut bytes = bytes_of(&reclaim(1, 1));
        bytes.truncate(60);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::WrongSize { len: 60, .. })
        ));
    }

    #[test]
    fn decodes_a_cgroup_path() {
        let mut path = [0u8; tracer_common::CGROUP_PATH_LEN];
        path[..8].copy_from_slice(b"/test-a\0");
        let ev = CgroupEvent {
            header: header(EventKind::CgroupMkdir, 0),
            cgroup_id: 77,
            hierarchy_id: 4,
            level: 1,
            flags: 0,
            _pad: 0,
            path,
        };
        let KernelEvent::CgroupMkdir(got) = decode(&bytes_of(&ev)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(c_string(&got.path), "/test-a");
        assert_eq!(got.cgroup_id, 77);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }
}
