//! Overshoot incident detection: turns the record stream into `incident` records (open, update,
//! close). `tracer run` feeds it live; `tracer diagnose` feeds it a recording, so both agree.
//!
//! Definitions (per cgroup, from its own `sample` records; v1 and v2):
//! - **hard overshoot**: usage above the hard limit (v2 `memory.current > memory.max`, v1
//!   `usage_in_bytes > limit_in_bytes`), e.g. forced charges the kernel could not refuse.
//!   Opens at the first such sample.
//! - **soft overshoot**: usage above `memory.high` (v2) or the soft limit (v1) for at least
//!   [`DetectorOptions::soft_sustain_samples`] consecutive samples (default 2); it starts at the
//!   first of them. A soft limit / memory.high of 0 ("reclaim this group first") is ignored.
//! - **limit hit**: a charge reached the hard limit and needed reclaim: v2 `memory.events` `max`
//!   or v1 `failcnt` grew since the previous sample while the interval's peak usage (usage, or
//!   `memory.peak`/`max_usage_in_bytes` when it rose) was within [`DetectorOptions::approach_ratio`]
//!   of the hard limit. v2 propagates `max` to ancestors; the proximity test keeps an incident on the
//!   cgroup whose limit was hit. Snapshots without either counter fall back to memcg reclaims by
//!   tasks at or below a cgroup that was near its hard limit at its previous sample.
//! - **OOM**: a task was chosen as OOM victim (`oom` record), attributed to the nearest cgroup at or
//!   above the victim's that was near (or over) its hard limit, else the nearest one with a hard
//!   limit, else the victim's own. A `memory.events` `oom_kill` increase without a matching `oom`
//!   record opens one too (victim unknown), when the cgroup was near its hard limit.
//!
//! No incident opens for a cgroup without a finite limit, or one that never approached it. An
//! open incident closes after [`DetectorOptions::clear_samples`] consecutive samples without its
//! condition (default 2; for OOM: without new kills); its `end` is the first of those samples.
//!
//! What an incident collects while open (`peak` only from samples where the condition held):
//! - reclaim and shrink_slab records of tasks in the cgroup or below it (these run in the task's
//!   own memcg, which may be a descendant of the one whose limit was hit). p99 latency comes from
//!   a log-linear histogram (4 sub-buckets per power of two): within 25 % above the true value,
//!   capped at the maximum seen. A reclaim that freed 0 pages is a failure.
//! - top tasks by charged memory, estimated as RSS growth: per pid, the highest RSS in the
//!   `top_tasks` of samples of the cgroup and its descendants minus the RSS at the sample before
//!   the incident (or at first sight), plus how often the task ran reclaim (reclaim runs in the
//!   charging task). Tasks that neither grew nor reclaimed are left out; at most 64 pids tracked.
//! - classes (`MemorySnapshot::classes(true)`) at the peak, and which grew since the sample
//!   before the incident.
//!
//! Updates are rate limited: at a sample, when peak usage rose by
//! [`DetectorOptions::update_peak_step_bytes`] since the last emitted record, after
//! [`DetectorOptions::update_every_samples`] samples, or at once on a new OOM kill.
//! Each record costs O(cgroup depth × open incidents there), never O(history).
use std::collections::{BTreeMap, HashMap, HashSet};

pub use crate::incident::*;

use crate::cgroup_tree::lineage;
use crate::cgroupfs::{CgroupVersion, MemoryClasses, MemorySnapshot};
use crate::identity::identify;
use crate::incident_state::Incident;
use crate::record::{CgroupRef, OomRecord, Record, SampleRecord, Stamp, TaskUsage};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// Consecutive samples above memory.high / the soft limit before a soft overshoot opens.
    pub soft_sustain_samples: u32,
    /// Consecutive samples without the condition before an incident closes.
    pub clear_samples: u32,
    /// Interval peak usage / hard limit at which a cgroup counts as near its limit.
    pub approach_ratio: f64,
    /// Emit an update at least every this many samples of an open incident.
    pub update_every_samples: u32,
    /// Emit an update when peak usage rose by this much since the last emitted record.
    pub update_peak_step_bytes: u64,
    /// Tasks listed per incident.
    pub top_tasks: usize,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            soft_sustain_samples: 2,
            clear_samples: 2,
            approach_ratio: 0.9,
            update_every_samples: 10,
            update_peak_step_bytes: 1 << 20,
            top_tasks: 5,
        }
    }
}

/// What the previous sample of a cgroup said.
#[derive(Debug, Clone)]
pub(crate) struct LastSample {
    pub(crate) at: Stamp,
    pub(crate) version: CgroupVersion,
    pub(crate) usage: u64,
    pub(crate) max_usage: Option<u64>,
    pub(crate) hard: Option<u64>,
    pub(crate) limit_hits: Option<u64>,
    pub(crate) high_events: Option<u64>,
    pub(crate) oom_kills: Option<u64>,
    pub(crate) classes: MemoryClasses,
    pub(crate) top_tasks: Vec<TaskUsage>,
    pub(crate) near_hard: bool,
}

#[derive(Debug)]
pub(crate) struct CgroupState {
    pub(crate) container: IncidentContainer,
    pub(crate) last: Option<LastSample>,
    /// memcg reclaims since the last sample, counted here because this cgroup was near its limit.
    pub(crate) memcg_reclaims_near_limit: u64,
    /// `oom` records at or below this cgroup since its last sample (explain counter growth).
    pub(crate) kills_recorded_since_sample: u64,
    /// Counter-only kills still waiting for their (late) `oom` record.
    pub(crate) kills_without_victim: u64,
    pub(crate) incidents: [Option<Incident>; 4],
    /// [`state_key`], used in incident ids.
    pub(crate) key: u64,
}

impl CgroupState {
    fn new(cgroup: &CgroupRef, name: String) -> Self {
        let container = IncidentContainer {
            cgroup_id: cgroup.cgroup_id,
            cgroup: cgroup.cgroup.clone(),
            name,
        };
        CgroupState {
            container,
            last: None,
            memcg_reclaims_near_limit: 0,
            kills_recorded_since_sample: 0,
            kills_without_victim: 0,
            incidents: Default::default(),
            key: state_key(cgroup),
        }
    }

    fn near_or_over_hard(&self) -> bool {
        self.last.as_ref().is_some_and(|l| l.near_hard)
            || self.incidents[IncidentKind::HardOvershoot.index()].is_some()
            || self.incidents[IncidentKind::LimitHit.index()].is_some()
    }
}

/// The overshoot detector. Feed it every record in stream order.
#[derive(Debug)]
pub struct Detector {
    options: DetectorOptions,
    cgroups: BTreeMap<u64, CgroupState>,
    ids_by_path: HashMap<String, u64>,
    /// Cgroups created during the stream and not sampled yet: their counters (failcnt,
    /// memory.events) started at zero, so their first sample's counts are all new.
    created: HashSet<u64>,
}

fn counter_delta(prev: Option<u64>, now: Option<u64>) -> u64 {
    match (prev, now) {
        (Some(p), Some(n)) => n.saturating_sub(p),
        _ => 0,
    }
}

pub(crate) fn limit_file(kind: IncidentKind, version: CgroupVersion) -> &'static str {
    match (kind, version) {
        (IncidentKind::SoftOvershoot, CgroupVersion::V1) => "memory.soft_limit_in_bytes",
        (IncidentKind::SoftOvershoot, CgroupVersion::V2) => "memory.high",
        (_, CgroupVersion::V1) => "memory.limit_in_bytes",
        (_, CgroupVersion::V2) => "memory.max",
    }
}

/// The limit an incident kind is about: memory.high (v2) / soft limit (v1), or the hard limit.
/// A soft limit or memory.high of 0 means "reclaim this group first", not a target: ignored.
fn limit_of(kind: IncidentKind, snap: &MemorySnapshot) -> Option<u64> {
    match (kind, snap.version) {
        (IncidentKind::SoftOvershoot, CgroupVersion::V1) => snap.limits.soft.filter(|l| *l > 0),
        (IncidentKind::SoftOvershoot, CgroupVersion::V2) => snap.limits.high.filter(|l| *l > 0),
        _ => snap.limits.hard,
    }
}

/// The detector's key of a cgroup: its id, or for an unknown id (0) a hash of its path (high bit
/// set), so two unresolved cgroups are not merged.
fn state_key(cgroup: &CgroupRef) -> u64 {
    use std::hash::{Hash, Hasher};
    match (cgroup.cgroup_id, &cgroup.cgroup) {
        (0, Some(path)) => {
            let mut hasher = std::hash::DefaultHasher::new();
            path.hash(&mut hasher);
            (1 << 63) | (hasher.finish() >> 1)
        }
        (id, _) => id,
    }
}

/// Per-sample facts shared by the incident kinds.
struct Reading {
    limit_hits: u64,
    high_events: u64,
    unexplained_kills: u64,
    any_kills: bool,
}

impl Detector {
    pub fn new(options: DetectorOptions) -> Self {
        Detector {
            options,
            cgroups: BTreeMap::new(),
            ids_by_path: HashMap::new(),
            created: HashSet::new(),
        }
    }

    /// Consumes one record; returns the incident records it caused.
    pub fn observe(&mut self, rec: &Record) -> Vec<Record> {
        match rec {
            Record::Sample(s) => return self.on_sample(s),
            Record::Oom(o) => return self.on_oom(o),
            Record::Reclaim(r) => {
                let memcg = r.kind == "memcg";
                let mut evidence_given = false;
                self.for_lineage(&r.cgroup, |state| {
                    if memcg && !evidence_given && state.last.as_ref().is_some_and(|l| l.near_hard)
                    {
                        state.memcg_reclaims_near_limit += 1;
                        evidence_given = true;
                    }
                    state
                        .incidents
                        .iter_mut()
                        .flatten()
                        .for_each(|i| i.add_reclaim(r));
                });
            }
            Record::ShrinkSlab(s) => self.for_lineage(&s.cgroup, |state| {
                for inc in state.incidents.iter_mut().flatten() {
                    let stats = &mut inc.record.shrink;
                    let freed = u64::try_from(s.freed).unwrap_or(0);
                    stats.count += 1;
                    stats.scanned += s.total_scan;
                    stats.freed += freed;
                    stats.total_latency_ns += s.latency_ns;
                    if s.shrinker.contains("super_cache_scan") {
                        stats.dcache_count += 1;
                        stats.dcache_freed += freed;
                    }
                }
            }),
            Record::Dentry(d) => self.for_lineage(&d.cgroup, |state| {
                for inc in state.incidents.iter_mut().flatten() {
                    inc.record.shrink.dentry_alloc_bytes += d.bytes;
                }
            }),
            Record::Cgroup(c) if c.event == "mkdir" => {
                self.learn_path(&c.cgroup);
                self.created.insert(state_key(&c.cgroup));
            }
            Record::Cgroup(c) if c.event == "rmdir" => {
                self.created.remove(&state_key(&c.cgroup));
                return self.on_rmdir(&c.cgroup, &c.at);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Closes every open incident with `still_open_at_exit` (pending ones are dropped).
    pub fn finish(&mut self, at: Stamp) -> Vec<Record> {
        let top_n = self.options.top_tasks;
        let mut out = Vec::new();
        for state in self.cgroups.values_mut() {
            for slot in state.incidents.iter_mut() {
                match slot.take() {
                    Some(inc) if inc.opened => out.push(inc.close(
                        &at,
                        at.clone(),
                        IncidentOutcome::StillOpenAtExit,
                        top_n,
                    )),
                    _ => {}
                }
            }
        }
        out
    }

    fn learn_path(&mut self, cgroup: &CgroupRef) {
        if let Some(path) = &cgroup.cgroup {
            let key = state_key(cgroup);
            if self.ids_by_path.get(path) != Some(&key) {
                self.ids_by_path.insert(path.clone(), key);
            }
        }
    }

    /// Ids of known cgroups at and above `cgroup`, nearest first.
    fn lineage(&self, cgroup: &CgroupRef) -> Vec<u64> {
        let (mut ids, key) = (Vec::new(), state_key(cgroup));
        if self.cgroups.contains_key(&key) {
            ids.push(key);
        }
        let known_path = self
            .cgroups
            .get(&key)
            .and_then(|s| s.container.cgroup.as_deref());
        if let Some(path) = cgroup.cgroup.as_deref().or(known_path) {
            for ancestor in lineage(path) {
                match self.ids_by_path.get(ancestor) {
                    Some(id) if !ids.contains(id) && self.cgroups.contains_key(id) => ids.push(*id),
                    _ => {}
                }
            }
        }
        ids
    }

    fn for_lineage(&mut self, cgroup: &CgroupRef, mut each: impl FnMut(&mut CgroupState)) {
        for id in self.lineage(cgroup) {
            if let Some(state) = self.cgroups.get_mut(&id) {
                each(state);
            }
        }
    }

    fn on_sample(&mut self, s: &SampleRecord) -> Vec<Record> {
        self.learn_path(&s.cgroup);
        let id = state_key(&s.cgroup);
        let options = self.options;
        let state = self
            .cgroups
            .entry(id)
            .or_insert_with(|| CgroupState::new(&s.cgroup, s.identity.name.clone()));
        state.container.cgroup.clone_from(&s.cgroup.cgroup);
        state.container.name.clone_from(&s.identity.name);
        let snap = &s.snapshot;
        let prev = state.last.take();
        // Counters of a cgroup born during the stream start from zero: a limit hit before its
        // first sample still counts (the sample may come only after the first reclaim).
        let born = self.created.remove(&id).then_some(0);
        let limit_hits_now = snap.events.get("max").copied().or(snap.failcnt);
        let (high_now, kills_now) = (
            snap.events.get("high").copied(),
            snap.events.get("oom_kill").copied(),
        );
        let rose_to = match (
            prev.as_ref().and_then(|p| p.max_usage),
            snap.max_usage_bytes,
        ) {
            (Some(p), Some(n)) if n > p => n,
            _ => 0,
        };
        let interval_peak = snap.usage_bytes.max(rose_to);
        let near_hard = snap
            .limits
            .hard
            .is_some_and(|h| interval_peak as f64 >= options.approach_ratio * h as f64);
        let counter_kills =
            counter_delta(prev.as_ref().and_then(|p| p.oom_kills).or(born), kills_now);
        let unexplained = counter_kills.saturating_sub(state.kills_recorded_since_sample);
        let reading = Reading {
            limit_hits: counter_delta(
                prev.as_ref().and_then(|p| p.limit_hits).or(born),
                limit_hits_now,
            ),
            high_events: counter_delta(
                prev.as_ref().and_then(|p| p.high_events).or(born),
                high_now,
            ),
            unexplained_kills: unexplained,
            any_kills: counter_kills > 0 || state.kills_recorded_since_sample > 0,
        };
        let hit = reading.limit_hits > 0
            || (limit_hits_now.is_none() && state.memcg_reclaims_near_limit > 0);
        let over = |kind| limit_of(kind, snap).is_some_and(|limit| snap.usage_bytes > limit);
        state.last = prev;
        let near_or_over = near_hard || state.near_or_over_hard();
        let mut out = Vec::new();
        for kind in IncidentKind::ALL {
            let active = match kind {
                IncidentKind::HardOvershoot | IncidentKind::SoftOvershoot => over(kind),
                IncidentKind::LimitHit => hit && near_hard,
                IncidentKind::Oom => reading.any_kills,
            };
            let may_open = match kind {
                IncidentKind::Oom => unexplained > 0 && near_or_over,
                _ => active,
            };
            let slot = kind.index();
            if state.incidents[slot].is_none() && may_open {
                state.incidents[slot] = Some(Incident::new(kind, state, Some(snap.version), &s.at));
            }
            let Some(mut inc) = state.incidents[slot].take() else {
                continue;
            };
            let before = state.last.as_ref().map_or(&[][..], |l| &l.top_tasks[..]);
            inc.observe_tasks(&s.top_tasks, before);
            inc.record.limit_hits += reading.limit_hits;
            inc.record.high_events += reading.high_events;
            inc.add_unknown_kills(reading.unexplained_kills, &s.at);
            if active {
                inc.record.samples += 1;
                let limit = limit_of(kind, snap);
                if inc
                    .record
                    .peak
                    .as_ref()
                    .is_none_or(|p| snap.usage_bytes > p.usage_bytes)
                {
                    inc.record.peak = Some(IncidentPeak {
                        at: s.at.clone(),
                        usage_bytes: snap.usage_bytes,
                        limit_bytes: limit,
                        excess_bytes: limit.map(|l| snap.usage_bytes as i64 - l as i64),
                        classes: snap.classes(true),
                    });
                }
                inc.classes_before.get_or_insert_with(|| snap.classes(true));
                if inc.record.limit_file.is_none() {
                    inc.record.limit_file = Some(limit_file(kind, snap.version).to_string());
                }
            }
            state.incidents[slot] = Self::advance(inc, active, kind, &s.at, &options, &mut out);
        }
        // A victim's record arrives at most one interval late; older unknown kills stay unknown.
        state.kills_without_victim = unexplained;
        state.kills_recorded_since_sample = 0;
        state.memcg_reclaims_near_limit = 0;
        let before_tasks = state
            .last
            .as_ref()
            .map(|l| l.top_tasks.clone())
            .unwrap_or_default();
        state.last = Some(LastSample {
            at: s.at.clone(),
            version: snap.version,
            usage: snap.usage_bytes,
            max_usage: snap.max_usage_bytes,
            hard: snap.limits.hard,
            limit_hits: limit_hits_now,
            high_events: high_now,
            oom_kills: kills_now,
            classes: snap.classes(true),
            top_tasks: s.top_tasks.clone(),
            near_hard,
        });
        // Ancestors' incidents see this cgroup's tasks (top_tasks lists a cgroup's own procs).
        for ancestor in self.lineage(&s.cgroup).into_iter().filter(|a| *a != id) {
            if let Some(state) = self.cgroups.get_mut(&ancestor) {
                for inc in state.incidents.iter_mut().flatten() {
                    inc.observe_tasks(&s.top_tasks, &before_tasks);
                }
            }
        }
        out
    }

    /// Lifecycle after a sample: open once sustained, update when due, close once clear.
    fn advance(
        mut inc: Incident,
        active: bool,
        kind: IncidentKind,
        at: &Stamp,
        options: &DetectorOptions,
        out: &mut Vec<Record>,
    ) -> Option<Incident> {
        let top_n = options.top_tasks;
        if !active {
            if !inc.opened {
                return None;
            }
            inc.clear_run += 1;
            let end = inc.clear_since.get_or_insert_with(|| at.clone()).clone();
            if inc.clear_run >= options.clear_samples.max(1) {
                let outcome = inc.outcome();
                out.push(inc.close(at, end, outcome, top_n));
                return None;
            }
        } else {
            inc.active_samples += 1;
            inc.clear_run = 0;
            inc.clear_since = None;
        }
        inc.samples_since_emit += 1;
        let sustain = if kind == IncidentKind::SoftOvershoot {
            options.soft_sustain_samples
        } else {
            1
        };
        if !inc.opened {
            if inc.active_samples >= sustain.max(1) {
                inc.opened = true;
                out.push(inc.emit(IncidentPhase::Open, at, top_n));
            }
            return Some(inc);
        }
        let peak = inc.record.peak.as_ref().map_or(0, |p| p.usage_bytes);
        let peak_rose = peak
            >= inc
                .last_emitted_peak
                .saturating_add(options.update_peak_step_bytes.max(1));
        if peak_rose
            || inc.new_kill
            || inc.samples_since_emit >= options.update_every_samples.max(1)
        {
            out.push(inc.emit(IncidentPhase::Update, at, top_n));
        }
        Some(inc)
    }

    fn on_oom(&mut self, o: &OomRecord) -> Vec<Record> {
        self.learn_path(&o.cgroup);
        let lineage = self.lineage(&o.cgroup);
        let pick = |test: &dyn Fn(&CgroupState) -> bool| {
            lineage
                .iter()
                .copied()
                .find(|id| self.cgroups.get(id).is_some_and(test))
        };
        let target = pick(&|s| s.near_or_over_hard())
            .or_else(|| pick(&|s| s.last.as_ref().is_some_and(|l| l.hard.is_some())))
            .unwrap_or(state_key(&o.cgroup));
        let victim = OomVictim {
            at: o.at.clone(),
            pid: Some(o.victim_pid),
            comm: Some(o.victim_comm.clone()),
        };
        // v2 propagates oom_kill to every ancestor: the record explains their counter growth too.
        for id in lineage.iter().filter(|id| **id != target) {
            if let Some(state) = self.cgroups.get_mut(id) {
                Self::note_recorded_kill(state);
                state
                    .incidents
                    .iter_mut()
                    .flatten()
                    .for_each(|i| i.add_victim(victim.clone()));
            }
        }
        let name = o
            .cgroup
            .cgroup
            .as_deref()
            .map_or_else(|| "unknown".to_string(), |p| identify(p).name);
        let state = self
            .cgroups
            .entry(target)
            .or_insert_with(|| CgroupState::new(&o.cgroup, name));
        Self::note_recorded_kill(state);
        for kind in [
            IncidentKind::HardOvershoot,
            IncidentKind::SoftOvershoot,
            IncidentKind::LimitHit,
        ] {
            if let Some(inc) = state.incidents[kind.index()].as_mut() {
                inc.add_victim(victim.clone());
            }
        }
        let top_n = self.options.top_tasks;
        let slot = IncidentKind::Oom.index();
        let (phase, inc) = match state.incidents[slot].take() {
            Some(inc) if inc.opened => (IncidentPhase::Update, inc),
            _ => {
                let version = state.last.as_ref().map(|l| l.version);
                let mut inc = Incident::new(IncidentKind::Oom, state, version, &o.at);
                if let Some(last) = &state.last {
                    inc.seed_peak(last);
                }
                inc.opened = true;
                (IncidentPhase::Open, inc)
            }
        };
        let mut inc = inc;
        inc.add_victim(victim);
        let out = vec![inc.emit(phase, &o.at, top_n)];
        state.incidents[slot] = Some(inc);
        out
    }

    fn note_recorded_kill(state: &mut CgroupState) {
        if state.kills_without_victim > 0 {
            state.kills_without_victim -= 1;
        } else {
            state.kills_recorded_since_sample += 1;
        }
    }

    fn on_rmdir(&mut self, cgroup: &CgroupRef, at: &Stamp) -> Vec<Record> {
        let top_n = self.options.top_tasks;
        let key = state_key(cgroup);
        let Some(mut state) = self.cgroups.remove(&key) else {
            return Vec::new();
        };
        if let Some(path) = &state.container.cgroup {
            if self.ids_by_path.get(path) == Some(&key) {
                self.ids_by_path.remove(path);
            }
        }
        let mut out = Vec::new();
        for inc in state
            .incidents
            .iter_mut()
            .filter_map(Option::take)
            .filter(|i| i.opened)
        {
            let outcome = match inc.outcome() {
                killed @ IncidentOutcome::OomKilled { .. } => killed,
                _ => IncidentOutcome::CgroupRemoved,
            };
            out.push(inc.close(at, at.clone(), outcome, top_n));
        }
        out
    }
}

#[cfg(test)]
#[path = "detector_more_tests.rs"]
mod more_tests;
#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
