//! The only aya-facing layer: loads the embedded eBPF object with the planned configuration,
//! attaches and detaches programs, and reads the aggregation maps and counters.
use std::collections::HashMap;

use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        tp_btf::BtfTracePointLinkId, trace_point::TracePointLinkId, BtfTracePoint, TracePoint,
    },
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{DentryValue, ProbeConfig, StatKey, StatValue, COUNTER_SLOTS};

use crate::kernel::{PlannedProbe, ProbeSpec, Via};

/// The eBPF object built by build.rs (aya-build) for bpfel-unknown-none.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("this agent was built without its eBPF object (AYA_BUILD_SKIP was set); rebuild with `cargo xtask run`")]
    NoObject,
    #[error("loading the eBPF object failed: {0}; run as root (CAP_BPF, CAP_PERFMON) on a kernel with BPF ring buffers (5.8+)")]
    Load(#[from] aya::EbpfError),
    #[error("program `{program}` is missing from the eBPF object (agent and object out of sync; rebuild)")]
    MissingProgram { program: String },
    #[error("{what} for {tracepoint} failed: {source}")]
    Program {
        what: &'static str,
        tracepoint: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map `{map}` is missing from the eBPF object")]
    MissingMap { map: &'static str },
}

enum Link {
    Tracepoint(TracePointLinkId),
    TpBtf(BtfTracePointLinkId),
}

/// A probe whose program is loaded, attached or not.
struct LoadedProbe {
    spec: ProbeSpec,
    via: Via,
    link: Option<Link>,
}

pub struct Loader {
    ebpf: Ebpf,
    probes: Vec<LoadedProbe>,
}

impl Loader {
    /// Loads the object with `config` written into its `CONFIG` global and a ring buffer of
    /// `ring_bytes` (a power of two, multiple of the page size).
    pub fn load(config: &ProbeConfig, ring_bytes: u32) -> Result<Loader, LoaderError> {
        if EBPF_OBJECT.is_empty() {
            return Err(LoaderError::NoObject);
        }
        let ebpf = EbpfLoader::new()
            .override_global("CONFIG", config, true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(EBPF_OBJECT)?;
        Ok(Loader {
            ebpf,
            probes: Vec::new(),
        })
    }

    /// Loads the program of every available planned probe (tp_btf first, falling back to the
    /// classic tracepoint when the tp_btf variant does not load). Returns the final plan with
    /// what actually loaded.
    pub fn load_programs(&mut self, planned: &[PlannedProbe]) -> Vec<PlannedProbe> {
        let btf = Btf::from_sys_fs().ok();
        let mut result = Vec::new();
        for p in planned {
            let mut via = p.via.clone();
            if via == Via::TpBtf {
                if let Err(e) = self.load_btf(&p.spec, btf.as_ref()) {
                    if p.classic_ok {
                        log::warn!("tp_btf {}: {e}; using the classic tracepoint", p.spec.name);
                        via = Via::Tracepoint;
                    } else {
                        via = Via::Unavailable(e.to_string());
                    }
                }
            }
            if via == Via::Tracepoint {
                if let Err(e) = self.load_classic(&p.spec) {
                    via = Via::Unavailable(e.to_string());
                }
            }
            self.probes.push(LoadedProbe {
                spec: p.spec,
                via: via.clone(),
                link: None,
            });
            result.push(PlannedProbe {
                spec: p.spec,
                via,
                classic_ok: p.classic_ok,
            });
        }
        result
    }

    fn load_btf(&mut self, spec: &ProbeSpec, btf: Option<&Btf>) -> Result<(), LoaderError> {
        let name = spec
            .btf_program
            .ok_or_else(|| LoaderError::MissingProgram {
                program: format!("{}_btf", spec.program),
            })?;
        let btf = btf.ok_or_else(|| LoaderError::Program {
            what: "reading kernel BTF",
            tracepoint: spec.name.to_string(),
            source: aya::programs::ProgramError::UnexpectedProgramType,
        })?;
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| LoaderError::MissingProgram {
                program: name.to_string(),
            })?
            .try_into()
            .map_err(|source| program_err("tp_btf program type", spec, source))?;
        prog.load(spec.name, btf)
            .map_err(|source| program_err("loading tp_btf", spec, source))
    }

    fn load_classic(&mut self, spec: &ProbeSpec) -> Result<(), LoaderError> {
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(spec.program)
            .ok_or_else(|| LoaderError::MissingProgram {
                program: spec.program.to_string(),
            })?
            .try_into()
            .map_err(|source| program_err("tracepoint program type", spec, source))?;
        prog.load()
            .map_err(|source| program_err("loading tracepoint", spec, source))
    }

    /// Attaches (or detaches) every loaded probe matching `select`. Returns the probes changed.
    pub fn set_attached(
        &mut self,
        select: impl Fn(&ProbeSpec) -> bool,
        attached: bool,
    ) -> Result<Vec<String>, LoaderError> {
        let mut changed = Vec::new();
        for i in 0..self.probes.len() {
            let spec = self.probes[i].spec;
            if !select(&spec) || self.probes[i].link.is_some() == attached {
                continue;
            }
            match self.probes[i].via.clone() {
                Via::Unavailable(_) => continue,
                Via::TpBtf => {
                    let name = spec.btf_program.unwrap_or(spec.program);
                    let prog: &mut BtfTracePoint = program(&mut self.ebpf, name, &spec)?;
                    if attached {
                        let id = prog
                            .attach()
                            .map_err(|s| program_err("attaching tp_btf", &spec, s))?;
                        self.probes[i].link = Some(Link::TpBtf(id));
                    } else if let Some(Link::TpBtf(id)) = self.probes[i].link.take() {
                        prog.detach(id)
                            .map_err(|s| program_err("detaching tp_btf", &spec, s))?;
                    }
                }
                Via::Tracepoint => {
                    let prog: &mut TracePoint = program(&mut self.ebpf, spec.program, &spec)?;
                    if attached {
                        let id = prog
                            .attach(spec.category, spec.name)
                            .map_err(|s| program_err("attaching tracepoint", &spec, s))?;
                        self.probes[i].link = Some(Link::Tracepoint(id));
                    } else if let Some(Link::Tracepoint(id)) = self.probes[i].link.take() {
                        prog.detach(id)
                            .map_err(|s| program_err("detaching tracepoint", &spec, s))?;
                    }
                }
            }
            changed.push(format!("{}:{}", spec.category, spec.name));
        }
        Ok(changed)
    }

    /// Detaches everything (before the final drain, so the counters stop moving).
    pub fn detach_all(&mut self) -> Result<Vec<String>, LoaderError> {
        self.set_attached(|_| true, false)
    }

    pub fn is_attached(&self, category: &str, name: &str) -> bool {
        self.probes
            .iter()
            .any(|p| p.spec.category == category && p.spec.name == name && p.link.is_some())
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, LoaderError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or(LoaderError::MissingMap { map: "EVENTS" })?;
        RingBuf::try_from(map).map_err(|source| LoaderError::Map {
            map: "EVENTS",
            source,
        })
    }

    /// Running stat sums per key, summed over CPUs.
    pub fn stat_totals(&self) -> Result<Vec<(StatKey, StatValue)>, LoaderError> {
        self.per_cpu_totals("MEMCG_STATS", |total: &mut StatValue, v| {
            total.sum = total.sum.wrapping_add(v.sum);
            total.hits = total.hits.wrapping_add(v.hits);
        })
    }

    /// Running dentry allocation sums per memcg, summed over CPUs.
    pub fn dentry_totals(&self) -> Result<Vec<(u64, DentryValue)>, LoaderError> {
        self.per_cpu_totals("DENTRY_ALLOCS", |total: &mut DentryValue, v| {
            total.allocs = total.allocs.wrapping_add(v.allocs);
            total.bytes = total.bytes.wrapping_add(v.bytes);
        })
    }

    /// Every entry of a per-CPU hash map with its per-CPU values folded into one.
    fn per_cpu_totals<K: aya::Pod, V: aya::Pod + Default>(
        &self,
        name: &'static str,
        add: impl Fn(&mut V, &V),
    ) -> Result<Vec<(K, V)>, LoaderError> {
        let map_err = |source| LoaderError::Map { map: name, source };
        let map = self
            .ebpf
            .map(name)
            .ok_or(LoaderError::MissingMap { map: name })?;
        let map: PerCpuHashMap<_, K, V> = PerCpuHashMap::try_from(map).map_err(map_err)?;
        let mut out = Vec::new();
        for entry in map.iter() {
            let (key, values) = entry.map_err(map_err)?;
            let mut total = V::default();
            for v in values.iter() {
                add(&mut total, v);
            }
            out.push((key, total));
        }
        Ok(out)
    }

    /// Removes a deleted cgroup's keys from the aggregation maps so they cannot fill up.
    pub fn forget_memcg(&mut self, memcg_id: u64, keys: &[StatKey]) {
        if let Some(map) = self.ebpf.map_mut("MEMCG_STATS") {
            if let Ok(mut map) = PerCpuHashMap::<_, StatKey, StatValue>::try_from(map) {
                for k in keys {
                    let _ = map.remove(k);
                }
            }
        }
        if let Some(map) = self.ebpf.map_mut("DENTRY_ALLOCS") {
            if let Ok(mut map) = PerCpuHashMap::<_, u64, DentryValue>::try_from(map) {
                let _ = map.remove(&memcg_id);
            }
        }
    }

    /// The per-CPU counters, summed over CPUs.
    pub fn counters(&self) -> Result<[u64; COUNTER_SLOTS as usize], LoaderError> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or(LoaderError::MissingMap { map: "COUNTERS" })?;
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| LoaderError::Map {
                map: "COUNTERS",
                source,
            })?;
        let mut out = [0u64; COUNTER_SLOTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let values = map.get(&(i as u32), 0).map_err(|source| LoaderError::Map {
                map: "COUNTERS",
                source,
            })?;
            *slot = values.iter().fold(0u64, |a, v| a.wrapping_add(*v));
        }
        Ok(out)
    }

    /// Which probes are attached now, by `category:name`.
    pub fn attached(&self) -> HashMap<String, bool> {
        self.probes
            .iter()
            .map(|p| {
                (
                    format!("{}:{}", p.spec.category, p.spec.name),
                    p.link.is_some(),
                )
            })
            .collect()
    }
}

fn program_err(
    what: &'static str,
    spec: &ProbeSpec,
    source: aya::programs::ProgramError,
) -> LoaderError {
    LoaderError::Program {
        what,
        tracepoint: format!("{}:{}", spec.category, spec.name),
        source,
    }
}

fn program<'e, T>(
    ebpf: &'e mut Ebpf,
    name: &str,
    spec: &ProbeSpec,
) -> Result<&'e mut T, LoaderError>
where
    &'e mut T: TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| LoaderError::MissingProgram {
            program: name.to_string(),
        })?
        .try_into()
        .map_err(|source| program_err("program type", spec, source))
}
