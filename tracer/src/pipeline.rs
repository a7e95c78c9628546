//! Turns what the kernel side produces (ring-buffer records, aggregated map totals, counters)
//! into stream [`Record`]s: decoding, cgroup id -> path resolution, item naming, deltas.
//!
//! No aya, no root: the live loader hands it bytes and plain totals, and tests hand it fixtures.
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use tracer_common::{
    Counter, DentryValue, EventKind, StatFamily, StatKey, StatValue, CGROUP_PATH_TRUNCATED,
    COUNTER_SLOTS, RECLAIM_MISSING_BEGIN, SHRINK_MISSING_START,
};

use crate::{
    cgroup_tree::IdPathResolver,
    cgroupfs::CgroupFs,
    clock::Clock,
    decode::{c_string, decode, kind_name, KernelEvent},
    identity::identify,
    names::{family_name, unit_of, ItemNames, Unit},
    record::*,
    symbols::Symbols,
};

/// Bounds of one id -> path rescan of the memory hierarchy.
const RESCAN_MAX_DEPTH: usize = 32;
const RESCAN_MAX_ENTRIES: usize = 100_000;

pub struct PipelineConfig {
    pub page_size: u64,
    /// Hierarchy id (`root` of the cgroup tracepoints) of the memory controller's hierarchy:
    /// the v1 `memory` line of /proc/cgroups, or 0 for cgroup2. Lifecycle events of other
    /// hierarchies (v1 cpu, pids, ...) are ignored.
    pub memory_hierarchy_id: i32,
    /// Root of /proc (tests point it at a fixture tree).
    pub proc_root: PathBuf,
}

pub struct Pipeline {
    clock: Clock,
    names: ItemNames,
    symbols: Symbols,
    fs: CgroupFs,
    resolver: IdPathResolver,
    config: PipelineConfig,
    /// Advanced once per sample tick and on every mkdir: bounds resolver rescans.
    generation: u64,
    received: BTreeMap<u32, u64>,
    decode_errors: u64,
    other_hierarchy: u64,
    stat_prev: HashMap<StatKey, StatValue>,
    dentry_prev: HashMap<u64, DentryValue>,
    last_totals_mono: Option<u64>,
    last_dentry_mono: Option<u64>,
    /// Cgroups removed since the last tick: their final deltas are read at the tick, then their
    /// state is dropped ([`Pipeline::take_removed`]).
    removed: Vec<u64>,
}

impl Pipeline {
    pub fn new(
        clock: Clock,
        names: ItemNames,
        symbols: Symbols,
        fs: CgroupFs,
        config: PipelineConfig,
    ) -> Pipeline {
        let resolver = IdPathResolver::new(fs.clone(), RESCAN_MAX_DEPTH, RESCAN_MAX_ENTRIES);
        Pipeline {
            clock,
            names,
            symbols,
            fs,
            resolver,
            config,
            generation: 0,
            received: BTreeMap::new(),
            decode_errors: 0,
            other_hierarchy: 0,
            stat_prev: HashMap::new(),
            dentry_prev: HashMap::new(),
            last_totals_mono: None,
            last_dentry_mono: None,
            removed: Vec::new(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn cgroupfs(&self) -> &CgroupFs {
        &self.fs
    }

    /// Called once per sample interval.
    pub fn tick(&mut self) {
        self.generation += 1;
    }

    pub fn cgroup_ref(&mut self, cgroup_id: u64) -> CgroupRef {
        let cgroup = if cgroup_id == 0 {
            None
        } else {
            self.resolver.resolve(cgroup_id, self.generation)
        };
        CgroupRef { cgroup_id, cgroup }
    }

    /// Decodes one ring-buffer record. Undecodable records are counted (reported in `loss`),
    /// never fatal; so are lifecycle events of hierarchies other than the memory one.
    pub fn on_ring_record(&mut self, bytes: &[u8]) -> Option<Record> {
        let event = match decode(bytes) {
            Ok(event) => event,
            Err(err) => {
                self.decode_errors += 1;
                if self.decode_errors <= 3 {
                    log::warn!("dropping ring-buffer record: {err}");
                }
                return None;
            }
        };
        *self.received.entry(event.kind() as u32).or_default() += 1;
        self.record_of(event)
    }

    fn task(header: &tracer_common::EventHeader) -> TaskRef {
        TaskRef {
            pid: header.tgid,
            tid: header.tid,
            comm: c_string(&header.comm),
        }
    }

    fn record_of(&mut self, event: KernelEvent) -> Option<Record> {
        Some(match event {
            KernelEvent::Reclaim(ev) => Record::Reclaim(ReclaimRecord {
                at: self.clock.stamp(ev.header.ts_ns),
                cgroup: self.cgroup_ref(ev.header.memcg_id),
                task: Self::task(&ev.header),
                kind: match tracer_common::ReclaimKind::from_u32(ev.reclaim_kind) {
                    Some(tracer_common::ReclaimKind::Memcg) => "memcg",
                    Some(tracer_common::ReclaimKind::Softlimit) => "softlimit",
                    Some(tracer_common::ReclaimKind::Direct) => "direct",
                    None => "unknown",
                }
                .to_string(),
                latency_ns: ev.latency_ns,
                nr_reclaimed: ev.nr_reclaimed,
                order: ev.order,
                gfp_flags: ev.gfp_flags,
                missing_begin: ev.flags & RECLAIM_MISSING_BEGIN != 0,
            }),
            KernelEvent::ShrinkSlab(ev) => Record::ShrinkSlab(ShrinkSlabRecord {
                at: self.clock.stamp(ev.header.ts_ns),
                cgroup: self.cgroup_ref(ev.header.memcg_id),
                task: Self::task(&ev.header),
                shrinker: self.symbols.name(ev.shrink_fn),
                nr_objects_to_shrink: ev.nr_objects_to_shrink,
                cache_items: ev.cache_items,
                total_scan: ev.total_scan,
                freed: ev.freed,
                latency_ns: ev.latency_ns,
                nid: ev.nid,
                priority: ev.priority,
                missing_start: ev.flags & SHRINK_MISSING_START != 0,
            }),
            KernelEvent::KswapdWake(ev) => Record::KswapdWake(KswapdWakeRecord {
                at: self.clock.stamp(ev.header.ts_ns),
                cgroup: self.cgroup_ref(ev.header.memcg_id),
                task: Self::task(&ev.header),
                nid: ev.nid,
                zid: ev.zid,
                order: ev.order,
                gfp_flags: ev.gfp_flags,
            }),
            KernelEvent::OomVictim(ev) => {
                let (cgroup, source) = match self.victim_memcg(ev.victim_pid) {
                    Some(found) => (found, "proc"),
                    None => (self.cgroup_ref(ev.header.memcg_id), "trigger"),
                };
                Record::Oom(OomRecord {
                    at: self.clock.stamp(ev.header.ts_ns),
                    cgroup,
                    victim_pid: ev.victim_pid,
                    victim_comm: c_string(&ev.victim_comm),
                    uid: ev.uid,
                    total_vm_kb: ev.total_vm_kb,
                    anon_rss_kb: ev.anon_rss_kb,
                    file_rss_kb: ev.file_rss_kb,
                    shmem_rss_kb: ev.shmem_rss_kb,
                    pgtables_kb: ev.pgtables_kb,
                    oom_score_adj: ev.oom_score_adj,
                    trigger: Self::task(&ev.header),
                    cgroup_source: source.to_string(),
                })
            }
            KernelEvent::CgroupMkdir(ev) | KernelEvent::CgroupRmdir(ev) => {
                if ev.hierarchy_id != self.config.memory_hierarchy_id {
                    self.other_hierarchy += 1;
                    return None;
                }
                let mkdir = matches!(event, KernelEvent::CgroupMkdir(_));
                let mut path = c_string(&ev.path);
                if ev.flags & CGROUP_PATH_TRUNCATED != 0 {
                    path.push('…');
                }
                if mkdir {
                    self.resolver.insert(ev.cgroup_id, path.clone());
                } else {
                    // Keep the path until the final deltas are read at the next tick.
                    self.removed.push(ev.cgroup_id);
                }
                Record::Cgroup(CgroupLifecycleRecord {
                    at: self.clock.stamp(ev.header.ts_ns),
                    identity: identify(&path),
                    cgroup: CgroupRef {
                        cgroup_id: ev.cgroup_id,
                        cgroup: Some(path),
                    },
                    event: if mkdir { "mkdir" } else { "rmdir" }.to_string(),
                    level: ev.level,
                })
            }
        })
    }

    /// The victim's own memcg from /proc/<pid>/cgroup (the victim is marked before it exits).
    fn victim_memcg(&mut self, pid: u32) -> Option<CgroupRef> {
        let text =
            std::fs::read_to_string(self.config.proc_root.join(format!("{pid}/cgroup"))).ok()?;
        let path = memory_path_in_proc_cgroup(&text, self.fs.version())?;
        let cgroup_id = self.fs.cgroup_id(&path).ok()?;
        self.resolver.insert(cgroup_id, path.clone());
        Some(CgroupRef {
            cgroup_id,
            cgroup: Some(path),
        })
    }

    /// Stat records for the change of the kernel's running sums since the previous call.
    pub fn on_stat_totals(
        &mut self,
        now_mono: u64,
        totals: &[(StatKey, StatValue)],
    ) -> Vec<Record> {
        let interval_ns = self.interval_since_last(now_mono);
        let at = self.clock.stamp(now_mono);
        let mut out = Vec::new();
        let mut sorted: Vec<_> = totals.to_vec();
        sorted.sort_by_key(|(k, _)| *k);
        for (key, total) in sorted {
            let prev = self.stat_prev.insert(key, total).unwrap_or_default();
            let delta = total.sum.wrapping_sub(prev.sum);
            let hits = total.hits.wrapping_sub(prev.hits);
            if hits == 0 {
                continue;
            }
            let Some(family) = StatFamily::from_u32(key.family) else {
                continue;
            };
            let item = self.names.name(family, key.item);
            let unit = unit_of(family, &item);
            let delta_bytes = match unit {
                Unit::Pages => Some(delta.saturating_mul(self.config.page_size as i64)),
                Unit::Bytes => Some(delta),
                Unit::Events => None,
            };
            out.push(Record::Stat(StatRecord {
                at: at.clone(),
                cgroup: self.cgroup_ref(key.memcg_id),
                family: family_name(family).to_string(),
                item,
                item_index: key.item,
                delta,
                unit: unit.as_str().to_string(),
                delta_bytes,
                hits,
                interval_ns,
            }));
        }
        out
    }

    /// Dentry records for the change of the per-memcg allocation sums since the previous call.
    pub fn on_dentry_totals(
        &mut self,
        now_mono: u64,
        totals: &[(u64, DentryValue)],
    ) -> Vec<Record> {
        let interval_ns = self
            .last_dentry_mono
            .map(|t| now_mono.saturating_sub(t))
            .unwrap_or(0);
        self.last_dentry_mono = Some(now_mono);
        let at = self.clock.stamp(now_mono);
        let mut out = Vec::new();
        for (memcg_id, total) in totals {
            let prev = self
                .dentry_prev
                .insert(*memcg_id, *total)
                .unwrap_or_default();
            let allocs = total.allocs.wrapping_sub(prev.allocs);
            if allocs == 0 {
                continue;
            }
            out.push(Record::Dentry(DentryRecord {
                at: at.clone(),
                cgroup: self.cgroup_ref(*memcg_id),
                allocs,
                bytes: total.bytes.wrapping_sub(prev.bytes),
                interval_ns,
            }));
        }
        out
    }

    fn interval_since_last(&mut self, now_mono: u64) -> u64 {
        let interval = self
            .last_totals_mono
            .map(|t| now_mono.saturating_sub(t))
            .unwrap_or(0);
        self.last_totals_mono = Some(now_mono);
        interval
    }

    /// After a tick: the cgroups removed before it, with their stat keys, so the loader can
    /// delete them from the kernel maps (which would otherwise fill up with dead memcgs).
    pub fn take_removed(&mut self) -> Vec<(u64, Vec<StatKey>)> {
        let removed = std::mem::take(&mut self.removed);
        removed
            .into_iter()
            .map(|id| {
                self.resolver.remove(id);
                (id, self.forget(id))
            })
            .collect()
    }

    /// Drops the delta state of a removed cgroup; returns its stat keys.
    pub fn forget(&mut self, cgroup_id: u64) -> Vec<StatKey> {
        let keys: Vec<StatKey> = self
            .stat_prev
            .keys()
            .filter(|k| k.memcg_id == cgroup_id)
            .copied()
            .collect();
        for k in &keys {
            self.stat_prev.remove(k);
        }
        self.dentry_prev.remove(&cgroup_id);
        keys
    }

    /// The loss record from the kernel's per-CPU counters (summed over CPUs) and what the agent
    /// received and could not decode.
    pub fn loss(&self, now_mono: u64, counters: &[u64; COUNTER_SLOTS as usize]) -> LossRecord {
        let mut rec = LossRecord {
            at: self.clock.stamp(now_mono),
            ..Default::default()
        };
        for kind in EventKind::ALL {
            let name = kind_name(kind).to_string();
            let k = kind as usize;
            rec.produced
                .insert(name.clone(), counters[Counter::Produced as usize + k]);
            rec.dropped
                .insert(name.clone(), counters[Counter::Dropped as usize + k]);
            rec.received.insert(
                name,
                self.received.get(&(kind as u32)).copied().unwrap_or(0),
            );
        }
        rec.decode_errors = self.decode_errors;
        rec.lifecycle_other_hierarchy = self.other_hierarchy;
        rec.stat_map_full = counters[Counter::StatMapFull as usize];
        rec.dentry_map_full = counters[Counter::DentryMapFull as usize];
        rec.pairing_store_failed = counters[Counter::PairingStoreFailed as usize];
        rec.reclaim_missing_begin = counters[Counter::ReclaimMissingBegin as usize];
        rec.shrink_missing_start = counters[Counter::ShrinkMissingStart as usize];
        rec.self_filtered = counters[Counter::SelfFiltered as usize];
        rec
    }
}

/// The memory controller's path in a /proc/<pid>/cgroup text: the v1 line listing `memory`,
/// or the v2 `0::` line. A ` (deleted)` suffix means the cgroup is gone.
pub fn memory_path_in_proc_cgroup(
    text: &str,
    version: crate::cgroupfs::CgroupVersion,
) -> Option<String> {
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let is_memory = match version {
            crate::cgroupfs::CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
            crate::cgroupfs::CgroupVersion::V2 => controllers.is_empty(),
        };
        if is_memory && !path.ends_with(" (deleted)") {
            return Some(path.to_string());
        }
    }
    None
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
