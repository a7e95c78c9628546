//! Reads the cgroups' own memory files: at every tick for every cgroup that uses memory or has a
//! hard limit (the always-on, cheap source of class totals, usage and limits, and the fallback
//! where the memcg tracepoints are missing), and at once for a cgroup whose charges met a limit.
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{
    adaptive::Adaptive,
    cgroup_tree::{is_within, lineage, walk},
    cgroupfs::{CgroupFs, MemorySnapshot},
    clock::Clock,
    identity::identify,
    record::{CgroupRef, SampleRecord, TaskUsage},
};

/// Bounds of one tick's walk.
const SAMPLE_MAX_CGROUPS: usize = 4096;
const SAMPLE_MAX_DEPTH: usize = 16;
/// Minimum spacing of out-of-tick samples of one cgroup.
const URGENT_SAMPLE_MIN_NS: u64 = 50_000_000;
/// Cgroups at or above this fraction of a limit (and their descendants) list their top tasks:
/// that costs a /proc read per task, so cgroups far from any limit, and the root, which holds
/// every task not in a cgroup on v1 hosts, skip it.
const TOP_TASKS_FILL_RATIO: f64 = 0.5;
const TOP_TASKS: usize = 5;

/// One cgroupfs reading plus what changed since the previous one.
pub struct Sampled {
    pub record: SampleRecord,
    /// Limit hits (v1 failcnt / v2 memory.events `max`) since the previous sample.
    pub limit_hits: u64,
}

pub struct Sampler {
    fs: CgroupFs,
    /// `--cgroup`: only this subtree.
    only: Option<String>,
    page_size: u64,
    last_hits: HashMap<String, u64>,
    last_urgent: HashMap<String, u64>,
}

impl Sampler {
    pub fn new(fs: CgroupFs, only: Option<String>, page_size: u64) -> Sampler {
        Sampler {
            fs,
            only,
            page_size,
            last_hits: HashMap::new(),
            last_urgent: HashMap::new(),
        }
    }

    fn in_scope(&self, rel: &str) -> bool {
        self.only.as_deref().is_none_or(|only| is_within(rel, only))
    }

    /// Samples every cgroup of the hierarchy (or the `--cgroup` subtree) that uses memory or
    /// has a hard limit (so a limited cgroup has a baseline before its first charge).
    pub fn sample(&mut self, clock: &Clock, now: u64) -> Vec<Sampled> {
        let start = self.only.as_deref().unwrap_or("/");
        let Ok(tree) = walk(&self.fs, start, SAMPLE_MAX_DEPTH, SAMPLE_MAX_CGROUPS) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        // The walk lists parents before children, so "near a limit" flows down the tree.
        let mut near_limit: HashSet<String> = HashSet::new();
        for rel in tree.paths {
            let Ok(snapshot) = self.fs.read_snapshot(&rel) else {
                continue;
            };
            if snapshot.usage_bytes == 0 && snapshot.limits.hard.is_none() {
                continue;
            }
            let parent_near = lineage(&rel).nth(1).is_some_and(|p| near_limit.contains(p));
            let near = parent_near
                || Adaptive::fill_ratio(&snapshot).is_some_and(|r| r >= TOP_TASKS_FILL_RATIO);
            if near {
                near_limit.insert(rel.clone());
            }
            let s = self.sampled(clock, now, &rel, snapshot, near);
            seen.insert(rel, limit_hit_count(&s.record.snapshot));
            out.push(s);
        }
        self.last_hits = seen;
        out
    }

    /// Samples `paths` and their ancestors at once, out of the tick: a memcg reclaim means a
    /// charge met a limit, and reading usage/limits/failcnt now (not up to a second later)
    /// lets the detector open the incident within milliseconds. At most one read per cgroup
    /// per [`URGENT_SAMPLE_MIN_NS`].
    pub fn sample_urgent(&mut self, clock: &Clock, now: u64, paths: &[String]) -> Vec<Sampled> {
        let wanted: BTreeSet<&str> = paths.iter().flat_map(|p| lineage(p)).collect();
        let mut out = Vec::new();
        for rel in wanted {
            if !self.in_scope(rel) {
                continue;
            }
            let last = self.last_urgent.get(rel).copied().unwrap_or(0);
            if now.saturating_sub(last) < URGENT_SAMPLE_MIN_NS {
                continue;
            }
            self.last_urgent.insert(rel.to_string(), now);
            out.extend(self.sample_now(clock, now, rel));
        }
        out
    }

    fn sample_now(&mut self, clock: &Clock, now: u64, rel: &str) -> Option<Sampled> {
        let snapshot = self.fs.read_snapshot(rel).ok()?;
        let s = self.sampled(clock, now, rel, snapshot, true);
        self.last_hits
            .insert(rel.to_string(), limit_hit_count(&s.record.snapshot));
        Some(s)
    }

    fn sampled(
        &self,
        clock: &Clock,
        now: u64,
        rel: &str,
        snapshot: MemorySnapshot,
        with_tasks: bool,
    ) -> Sampled {
        let hits = limit_hit_count(&snapshot);
        let prev = self.last_hits.get(rel).copied().unwrap_or(hits);
        Sampled {
            limit_hits: hits.saturating_sub(prev),
            record: SampleRecord {
                at: clock.stamp(now),
                cgroup: CgroupRef {
                    cgroup_id: self.fs.cgroup_id(rel).unwrap_or(0),
                    cgroup: Some(rel.to_string()),
                },
                identity: identify(rel),
                top_tasks: if with_tasks {
                    self.top_tasks(rel)
                } else {
                    Vec::new()
                },
                snapshot,
            },
        }
    }

    /// The cgroup's own largest tasks by resident memory.
    fn top_tasks(&self, rel: &str) -> Vec<TaskUsage> {
        let mut tasks: Vec<TaskUsage> = self
            .fs
            .procs(rel)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| {
                let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
                let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
                // Kernel threads and zombies have no resident memory: not worth listing.
                if rss_pages == 0 {
                    return None;
                }
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                Some(TaskUsage {
                    pid,
                    comm: comm.trim().to_string(),
                    rss_bytes: rss_pages * self.page_size,
                })
            })
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.rss_bytes));
        tasks.truncate(TOP_TASKS);
        tasks
    }
}

/// Limit hits so far: v1 `memory.failcnt`, v2 `memory.events` `max`.
fn limit_hit_count(s: &MemorySnapshot) -> u64 {
    s.failcnt
        .or_else(|| s.events.get("max").copied())
        .unwrap_or(0)
}
