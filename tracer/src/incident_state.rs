//! The running state of one open incident: what it has collected so far (peak, classes, tasks,
//! reclaim latency histogram, shrink activity, victims) and how that becomes an
//! [`IncidentRecord`]. Owned and driven by the [`crate::detector::Detector`].
use std::collections::BTreeMap;

use crate::cgroupfs::CgroupVersion;
use crate::cgroupfs::MemoryClasses;
use crate::detector::{limit_file, CgroupState, LastSample};
use crate::incident::*;
use crate::record::{ReclaimRecord, Record, Stamp, TaskUsage};
/// Tasks tracked per incident (reported: [`DetectorOptions::top_tasks`]).
const MAX_TRACKED_TASKS: usize = 64;
/// Victims listed per incident (all are counted in `oom_kills`).
const MAX_VICTIMS: usize = 8;

/// Reclaim latency distribution: 4 log-linear sub-buckets per power of two.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    pub(crate) buckets: Vec<u64>,
}

impl LatencyHistogram {
    pub(crate) fn bucket(ns: u64) -> usize {
        if ns < 4 {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros() as usize;
        (exp - 1) * 4 + ((ns >> (exp - 2)) & 3) as usize
    }

    pub(crate) fn upper_bound(bucket: usize) -> u64 {
        if bucket < 4 {
            return bucket as u64;
        }
        let (exp, sub) = (bucket / 4 + 1, (bucket % 4) as u64);
        let width = 1u64 << (exp - 2);
        ((4 + sub) * width).saturating_add(width - 1)
    }

    pub(crate) fn add(&mut self, ns: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; 252];
        }
        if let Some(slot) = self.buckets.get_mut(Self::bucket(ns)) {
            *slot += 1;
        }
    }

    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(bucket);
            }
        }
        0
    }
}

#[derive(Debug)]
pub(crate) struct TaskTrack {
    pub(crate) comm: String,
    pub(crate) rss_before: u64,
    pub(crate) rss_peak: u64,
    pub(crate) reclaims: u64,
    pub(crate) reclaim_latency_ns: u64,
}

#[derive(Debug)]
pub(crate) struct Incident {
    pub(crate) record: IncidentRecord,
    pub(crate) opened: bool,
    pub(crate) active_samples: u32,
    pub(crate) clear_run: u32,
    pub(crate) clear_since: Option<Stamp>,
    pub(crate) last_emitted_peak: u64,
    pub(crate) samples_since_emit: u32,
    pub(crate) new_kill: bool,
    pub(crate) latencies: LatencyHistogram,
    pub(crate) classes_before: Option<MemoryClasses>,
    pub(crate) tasks: BTreeMap<u32, TaskTrack>,
}

pub(crate) fn classes_growth(before: &MemoryClasses, peak: &MemoryClasses) -> Vec<ClassGrowth> {
    let pairs = [
        ("anon", before.anon, peak.anon),
        ("file", before.file, peak.file),
        ("kernel", before.kernel, peak.kernel),
        ("swap", before.swap, peak.swap),
    ];
    let mut grown: Vec<ClassGrowth> = pairs
        .into_iter()
        .filter(|(_, b, p)| p > b)
        .map(|(class, b, p)| ClassGrowth {
            class: class.to_string(),
            before_bytes: b,
            peak_bytes: p,
            growth_bytes: p - b,
        })
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.growth_bytes));
    grown
}

impl Incident {
    pub(crate) fn new(
        kind: IncidentKind,
        state: &CgroupState,
        version: Option<CgroupVersion>,
        start: &Stamp,
    ) -> Self {
        let last = state.last.as_ref();
        let record = IncidentRecord {
            at: start.clone(),
            id: format!("{}-{}-{}", kind.as_str(), state.key, start.mono_ns),
            phase: IncidentPhase::Open,
            kind,
            container: state.container.clone(),
            limit_file: version.map(|v| limit_file(kind, v).to_string()),
            start: start.clone(),
            end: None,
            duration_ns: 0,
            samples: 0,
            peak: None,
            grown_classes: Vec::new(),
            top_tasks: Vec::new(),
            limit_hits: 0,
            high_events: 0,
            reclaim: ReclaimStats::default(),
            shrink: ShrinkStats::default(),
            oom_kills: 0,
            victims: Vec::new(),
            outcome: None,
        };
        let mut incident = Incident {
            record,
            opened: false,
            active_samples: 0,
            clear_run: 0,
            clear_since: None,
            last_emitted_peak: 0,
            samples_since_emit: 0,
            new_kill: false,
            latencies: LatencyHistogram::default(),
            classes_before: last.map(|l| l.classes),
            tasks: BTreeMap::new(),
        };
        if let Some(last) = last {
            incident.observe_tasks(&last.top_tasks, &[]);
        }
        incident
    }

    /// Seeds the OOM incident of a cgroup with its last reading (the kill came after it).
    pub(crate) fn seed_peak(&mut self, last: &LastSample) {
        self.record.peak = Some(IncidentPeak {
            at: last.at.clone(),
            usage_bytes: last.usage,
            limit_bytes: last.hard,
            excess_bytes: last.hard.map(|h| last.usage as i64 - h as i64),
            classes: last.classes,
        });
    }

    pub(crate) fn observe_tasks(&mut self, tasks: &[TaskUsage], before: &[TaskUsage]) {
        for task in tasks {
            let full = self.tasks.len() >= MAX_TRACKED_TASKS;
            if full && !self.tasks.contains_key(&task.pid) {
                continue;
            }
            let rss_before = before
                .iter()
                .find(|b| b.pid == task.pid)
                .map_or(task.rss_bytes, |b| b.rss_bytes);
            let track = self.tasks.entry(task.pid).or_insert_with(|| TaskTrack {
                comm: task.comm.clone(),
                rss_before,
                rss_peak: 0,
                reclaims: 0,
                reclaim_latency_ns: 0,
            });
            track.rss_peak = track.rss_peak.max(task.rss_bytes);
        }
    }

    pub(crate) fn add_reclaim(&mut self, r: &ReclaimRecord) {
        let stats = &mut self.record.reclaim;
        stats.count += 1;
        stats.pages_reclaimed += r.nr_reclaimed;
        stats.failures += u64::from(r.nr_reclaimed == 0);
        *stats.by_kind.entry(r.kind.clone()).or_default() += 1;
        let latency = if r.missing_begin { 0 } else { r.latency_ns };
        if !r.missing_begin {
            stats.total_latency_ns += latency;
            stats.max_latency_ns = stats.max_latency_ns.max(latency);
            self.latencies.add(latency);
        }
        let full = self.tasks.len() >= MAX_TRACKED_TASKS;
        if full && !self.tasks.contains_key(&r.task.pid) {
            return;
        }
        let track = self.tasks.entry(r.task.pid).or_insert_with(|| TaskTrack {
            comm: r.task.comm.clone(),
            rss_before: 0,
            rss_peak: 0,
            reclaims: 0,
            reclaim_latency_ns: 0,
        });
        track.reclaims += 1;
        track.reclaim_latency_ns += latency;
    }

    /// Adds a kill; a known victim first replaces a counter-only (unknown) one.
    pub(crate) fn add_victim(&mut self, victim: OomVictim) {
        self.new_kill = true;
        let unknown = self.record.victims.iter_mut().find(|v| v.pid.is_none());
        match unknown {
            Some(slot) if victim.pid.is_some() => *slot = victim,
            _ => {
                self.record.oom_kills += 1;
                if self.record.victims.len() < MAX_VICTIMS {
                    self.record.victims.push(victim);
                }
            }
        }
    }

    /// Kills seen only as `oom_kill` counter growth: victims unknown until their record arrives.
    pub(crate) fn add_unknown_kills(&mut self, kills: u64, at: &Stamp) {
        if kills == 0 {
            return;
        }
        self.new_kill = true;
        self.record.oom_kills += kills;
        let room = MAX_VICTIMS.saturating_sub(self.record.victims.len());
        let unknown = OomVictim {
            at: at.clone(),
            pid: None,
            comm: None,
        };
        let listed = usize::try_from(kills).unwrap_or(usize::MAX).min(room);
        self.record
            .victims
            .extend(std::iter::repeat_n(unknown, listed));
    }

    pub(crate) fn outcome(&self) -> IncidentOutcome {
        if let Some(victim) = self.record.victims.first() {
            return IncidentOutcome::OomKilled {
                pid: victim.pid,
                comm: victim.comm.clone(),
            };
        }
        let kind = self.record.kind;
        if kind == IncidentKind::SoftOvershoot && self.record.high_events > 0 {
            IncidentOutcome::Throttled
        } else if self.record.reclaim.pages_reclaimed > 0 || kind == IncidentKind::LimitHit {
            IncidentOutcome::RecoveredByReclaim
        } else {
            IncidentOutcome::Recovered
        }
    }

    pub(crate) fn emit(&mut self, phase: IncidentPhase, at: &Stamp, top_n: usize) -> Record {
        let rec = &mut self.record;
        rec.at = at.clone();
        rec.phase = phase;
        let until = rec.end.as_ref().unwrap_or(at);
        rec.duration_ns = until.mono_ns.saturating_sub(rec.start.mono_ns);
        rec.reclaim.p99_latency_ns = self
            .latencies
            .quantile(0.99)
            .min(rec.reclaim.max_latency_ns);
        let mut tasks: Vec<IncidentTask> = self
            .tasks
            .iter()
            .map(|(pid, t)| IncidentTask {
                pid: *pid,
                comm: t.comm.clone(),
                rss_before_bytes: t.rss_before,
                rss_peak_bytes: t.rss_peak,
                rss_growth_bytes: t.rss_peak.saturating_sub(t.rss_before),
                reclaims: t.reclaims,
                reclaim_latency_ns: t.reclaim_latency_ns,
            })
            .filter(|t| t.rss_growth_bytes > 0 || t.reclaims > 0)
            .collect();
        tasks.sort_by(|a, b| {
            (b.rss_growth_bytes, b.reclaims, a.pid).cmp(&(a.rss_growth_bytes, a.reclaims, b.pid))
        });
        tasks.truncate(top_n);
        rec.top_tasks = tasks;
        if let (Some(before), Some(peak)) = (&self.classes_before, &rec.peak) {
            rec.grown_classes = classes_growth(before, &peak.classes);
        }
        self.samples_since_emit = 0;
        self.new_kill = false;
        self.last_emitted_peak = rec.peak.as_ref().map_or(0, |p| p.usage_bytes);
        Record::Incident(rec.clone())
    }

    pub(crate) fn close(
        mut self,
        at: &Stamp,
        end: Stamp,
        outcome: IncidentOutcome,
        top_n: usize,
    ) -> Record {
        self.record.end = Some(end);
        self.record.outcome = Some(outcome);
        self.emit(IncidentPhase::Close, at, top_n)
    }
}
