//! Per-container accounting of the vSwap memory classes: consumes the record stream and emits one
//! `summary` record per active cgroup per sample tick. Live (`tracer run`) and offline
//! (`tracer diagnose`) feed it the same records, so both produce the same summaries.
//!
//! Classes and their sources:
//! - anon = v1 memory.stat `rss` = v2 `anon` = event item `NR_ANON_MAPPED` (pages);
//!   file (page cache, includes shmem/tmpfs) = v1 `cache` = v2 `file` = `NR_FILE_PAGES` (pages);
//!   swap = v1 `swap` = `MEMCG_SWAP` (pages), v2 memory.swap.current;
//!   kernel = v1 memory.kmem.usage_in_bytes = v2 `kernel` = `MEMCG_KMEM` (pages): slab (the
//!   dentry cache included: neither memory.stat nor MEMCG_KMEM separates it), kernel stacks, page
//!   tables, percpu. Socket buffers are NOT in it (v1 memory.kmem.tcp.*, v2 `sock`, `MEMCG_SOCK`);
//!   they appear in `stat_item_deltas` when traced.
//! - dentry = bytes of dentry objects ALLOCATED in the window (`kmem:kmem_cache_alloc` filtered to
//!   the `dentry` cache, a hot probe attached in full mode). Frees are not traced, so this is an
//!   allocation rate, not a resident size; null when the probe was not attached for the window.
//! - Class values are hierarchical (v1 `total_*`, v2 memory.stat), matching the roll-up of events.
//!
//! `class_source`: `events` when the per-page probes ("full" mode) covered the whole window and
//! no stat event was lost (a `loss` record's `stat_map_full` grew): CHANGES come from `stat`
//! records; absolute values start from a sample's snapshot and are advanced by later stat deltas
//! (re-synced from a sample after any loss or mode change). `cgroupfs` otherwise: values from the
//! latest sample, changes against the previous window's last sample. `none`: never sampled and
//! not in full mode.
//!
//! Precision: the memcg tracepoints report every state item in pages: the kernel converts the
//! byte- and KiB-sized items (`NR_SLAB_*_B`, `MEMCG_PERCPU_B`, `NR_KERNEL_STACK_KB`) with
//! `memcg_state_val_in_pages()`, which truncates to whole pages (`mult_frac`) and only rounds a
//! change smaller than one page up to one page. Slab changes reach it in per-CPU batches of a
//! little over a page, so the remainder of each batch is lost: measured on Linux 6.18, slab from
//! events runs ~10 % below the kernel's own figure. MEMCG_KMEM (whole pages) is exact and matches
//! v1 memory.kmem.usage_in_bytes to the page. Page items are multiplied by `page_size`.
//! Events reach a cgroup only via its resolved path: events whose path the pipeline could not
//! resolve are summarised on their own but are not rolled up into ancestors.
//!
//! Hierarchy: events go to the leaf memcg that was charged; a cgroup's summary adds the events
//! of every tracked descendant (path prefix), lists them in `children` and is active when any of
//! them is. Reclaim tracepoints carry no memcg: reclaims are attributed to the reclaiming task's
//! memcg.
use std::collections::{BTreeMap, BTreeSet};

pub use crate::summary::*;

use crate::class_sums::{stat_bytes, ClassSums};
use crate::reclaim_window::ReclaimAcc;

use crate::cgroupfs::MemorySnapshot;
use crate::identity::{identify, ContainerIdentity, IdentityKind};
use crate::record::{CgroupRef, DentryRecord, ProbeStatus, Record, Stamp, StatRecord};

/// Pages direct and soft-limit reclaim ask for, and the least memcg reclaim asks for
/// (`nr_to_reclaim = max(charge pages, SWAP_CLUSTER_MAX)`).
pub const SWAP_CLUSTER_MAX: u64 = 32;

#[derive(Debug, Clone)]
pub struct AccountantOptions {
    pub page_size: u64,
    /// Reclaim latencies kept per cgroup per window for exact percentiles.
    pub max_latencies_per_window: usize,
    /// State of a cgroup inactive for this many windows is dropped (missed rmdir).
    pub forget_after_idle_windows: u32,
}

impl Default for AccountantOptions {
    fn default() -> Self {
        AccountantOptions {
            page_size: 4096,
            max_latencies_per_window: 10_000,
            forget_after_idle_windows: 300,
        }
    }
}

/// What one cgroup (or, merged, a subtree) did in the current window.
#[derive(Debug, Clone, Default)]
struct Window {
    active: bool,
    /// Class changes per stat stamp (one entry per tick), so deltas after a sample can be told
    /// from deltas before it.
    stat_batches: Vec<(u64, ClassSums)>,
    items: BTreeMap<String, i64>,
    dentry_seen: bool,
    dentry_allocs: u64,
    dentry_bytes: u64,
    reclaim: ReclaimAcc,
    oom_kills: u64,
}

impl Window {
    fn add_stat(&mut self, rec: &StatRecord) {
        self.active = true;
        let Some(bytes) = stat_bytes(rec) else { return };
        match self.stat_batches.last_mut() {
            Some((mono, sums)) if *mono == rec.at.mono_ns => sums.add_item(&rec.item, bytes),
            _ => {
                let mut sums = ClassSums::default();
                sums.add_item(&rec.item, bytes);
                self.stat_batches.push((rec.at.mono_ns, sums));
            }
        }
        match self.items.get_mut(&rec.item) {
            Some(total) => *total = total.saturating_add(bytes),
            None => {
                self.items.insert(rec.item.clone(), bytes);
            }
        }
    }

    fn add_dentry(&mut self, rec: &DentryRecord) {
        self.active = true;
        self.dentry_seen = true;
        self.dentry_allocs = self.dentry_allocs.saturating_add(rec.allocs);
        self.dentry_bytes = self.dentry_bytes.saturating_add(rec.bytes);
    }

    fn merge(&mut self, o: &Window) {
        self.active |= o.active;
        self.stat_batches.extend_from_slice(&o.stat_batches);
        for (item, bytes) in &o.items {
            let total = self.items.entry(item.clone()).or_default();
            *total = total.saturating_add(*bytes);
        }
        self.dentry_seen |= o.dentry_seen;
        self.dentry_allocs = self.dentry_allocs.saturating_add(o.dentry_allocs);
        self.dentry_bytes = self.dentry_bytes.saturating_add(o.dentry_bytes);
        self.reclaim.merge(&o.reclaim);
        self.oom_kills += o.oom_kills;
    }

    /// Class changes stamped after `after` (all of them for None).
    fn class_sums(&self, after: Option<u64>) -> ClassSums {
        self.stat_batches
            .iter()
            .filter(|(mono, _)| after.is_none_or(|t| *mono > t))
            .fold(ClassSums::default(), |acc, (_, sums)| acc.plus(*sums))
    }
}

#[derive(Debug, Clone)]
struct Sampled {
    mono_ns: u64,
    snapshot: MemorySnapshot,
}

#[derive(Debug, Default)]
struct CgroupState {
    path: Option<String>,
    identity: Option<ContainerIdentity>,
    latest: Option<Sampled>,
    /// What sample-based changes are measured from: the latest sample at the previous window's
    /// end, or the first sample ever.
    anchor: Option<Sampled>,
    /// Events-advanced class totals at the end of the previous window (full mode only).
    baseline: Option<ClassSums>,
    window: Window,
    removed: bool,
    idle_windows: u32,
}

/// Facts about the window being closed, shared by every summary.
struct WindowFacts {
    window_ns: u64,
    events_mode: bool,
    dentry_known: bool,
    events_lost: bool,
    page_size: u64,
    /// Samples taken at or after this can start event tracking (full mode in force).
    tracking_from: Option<u64>,
}

pub struct Accountant {
    opts: AccountantOptions,
    cgroups: BTreeMap<u64, CgroupState>,
    /// (path, id): ids share a path when a cgroup is recreated before its final summary.
    paths: BTreeSet<(String, u64)>,
    window_start: Option<u64>,
    full_since: Option<u64>,
    dentry_probe_available: bool,
    stat_lost: bool,
    dentry_lost: bool,
    events_lost: bool,
    /// Cumulative loss counters of the latest `loss` record.
    seen_loss: (u64, u64, u64),
}

impl Accountant {
    pub fn new(opts: AccountantOptions) -> Accountant {
        Accountant {
            opts,
            cgroups: BTreeMap::new(),
            paths: BTreeSet::new(),
            window_start: None,
            full_since: None,
            dentry_probe_available: true,
            stat_lost: false,
            dentry_lost: false,
            events_lost: false,
            seen_loss: (0, 0, 0),
        }
    }

    /// Feed every record of the stream, in order (its own past Summary records are ignored).
    pub fn observe(&mut self, rec: &Record) {
        if matches!(rec, Record::Summary(_) | Record::Incident(_)) {
            return;
        }
        self.window_start.get_or_insert(rec.mono_ns());
        let max_latencies = self.opts.max_latencies_per_window;
        match rec {
            Record::Start(start) => {
                let probe = |name: &str, test: fn(&ProbeStatus) -> bool| {
                    start
                        .probes
                        .iter()
                        .any(|p| p.probe.ends_with(name) && test(p))
                };
                let full = probe("mod_memcg_lruvec_state", |p| p.attached);
                self.full_since = full.then_some(start.at.mono_ns);
                self.dentry_probe_available =
                    !probe("kmem_cache_alloc", |p| p.via == "unavailable");
            }
            Record::Mode(mode) => match (mode.mode == "full", self.full_since) {
                (true, None) => self.full_since = Some(mode.at.mono_ns),
                (false, Some(_)) => {
                    self.full_since = None;
                    self.cgroups
                        .values_mut()
                        .for_each(|state| state.baseline = None);
                }
                _ => {}
            },
            Record::Loss(loss) => {
                let now = (
                    loss.stat_map_full,
                    loss.dentry_map_full,
                    loss.total_dropped(),
                );
                self.stat_lost |= now.0 > self.seen_loss.0;
                self.dentry_lost |= now.1 > self.seen_loss.1;
                self.events_lost |= now.2 > self.seen_loss.2;
                self.seen_loss = now;
            }
            Record::Stat(stat) => self.with_state(&stat.cgroup, |s| s.window.add_stat(stat)),
            Record::Dentry(dentry) => {
                self.with_state(&dentry.cgroup, |s| s.window.add_dentry(dentry))
            }
            Record::Reclaim(reclaim) => self.with_state(&reclaim.cgroup, |s| {
                s.window.active = true;
                s.window.reclaim.add(reclaim, max_latencies);
            }),
            Record::Oom(oom) => self.with_state(&oom.cgroup, |s| {
                s.window.active = true;
                s.window.oom_kills += 1;
            }),
            Record::Cgroup(event) => self.with_state(&event.cgroup, |s| {
                s.window.active = true;
                s.identity = Some(event.identity.clone());
                s.removed |= event.event == "rmdir";
            }),
            Record::Sample(sample) => self.with_state(&sample.cgroup, |s| {
                s.window.active |= sample.snapshot.usage_bytes > 0;
                s.identity = Some(sample.identity.clone());
                let sampled = Sampled {
                    mono_ns: sample.at.mono_ns,
                    snapshot: sample.snapshot.clone(),
                };
                s.anchor.get_or_insert_with(|| sampled.clone());
                s.latest = Some(sampled);
            }),
            _ => {}
        }
    }

    /// Applies `update` to the state of a known cgroup id (id 0 = unknown: ignored), learning
    /// its path.
    fn with_state(&mut self, cgroup: &CgroupRef, update: impl FnOnce(&mut CgroupState)) {
        let id = cgroup.cgroup_id;
        if id == 0 {
            return;
        }
        let state = self.cgroups.entry(id).or_default();
        if let Some(path) = &cgroup.cgroup {
            if state.path.as_ref() != Some(path) {
                if let Some(old) = state.path.replace(path.clone()) {
                    self.paths.remove(&(old, id));
                }
                self.paths.insert((path.clone(), id));
            }
        }
        update(state);
    }

    fn descendants(&self, id: u64, path: Option<&str>) -> Vec<u64> {
        let Some(path) = path else { return Vec::new() };
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let mut ids: Vec<u64> = self
            .paths
            .range((prefix.clone(), 0)..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(_, child)| *child)
            .filter(|child| *child != id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Called once at the end of each sample tick: one Summary per active cgroup, covering the
    /// window since the previous call.
    pub fn summaries(&mut self, at: Stamp) -> Vec<Record> {
        let start = self.window_start.unwrap_or(at.mono_ns);
        let full_window = self.full_since.is_some_and(|since| since <= start);
        let facts = WindowFacts {
            window_ns: at.mono_ns.saturating_sub(start),
            events_mode: full_window && !self.stat_lost,
            dentry_known: full_window && self.dentry_probe_available && !self.dentry_lost,
            events_lost: self.events_lost,
            page_size: self.opts.page_size,
            // After a loss the deltas since any sample are incomplete: re-sync next window.
            tracking_from: self
                .full_since
                .filter(|_| !self.stat_lost)
                .map(|s| s.max(start)),
        };
        let mut out = Vec::new();
        let mut next_baselines = Vec::with_capacity(self.cgroups.len());
        for (&id, state) in &self.cgroups {
            let children = self.descendants(id, state.path.as_deref());
            let mut rolled = state.window.clone();
            for child in children.iter().filter_map(|c| self.cgroups.get(c)) {
                rolled.merge(&child.window);
            }
            let (from_baseline, from_sample) = event_totals(state, &rolled, &facts);
            let next = match (facts.events_mode, facts.tracking_from) {
                (true, _) => from_baseline.or(from_sample),
                (false, Some(_)) => from_sample,
                (false, None) => None,
            };
            next_baselines.push((id, next, rolled.active));
            if rolled.active {
                let totals = from_baseline.or(from_sample);
                let summary = summarize(id, state, &rolled, children, totals, &at, &facts);
                out.push(Record::Summary(summary));
            }
        }
        let forget_after = self.opts.forget_after_idle_windows;
        for (id, baseline, active) in next_baselines {
            let Some(state) = self.cgroups.get_mut(&id) else {
                continue;
            };
            state.baseline = baseline;
            state.anchor = state.latest.clone().or(state.anchor.take());
            state.window = Window::default();
            state.idle_windows = if active {
                0
            } else {
                state.idle_windows.saturating_add(1)
            };
            if state.removed || state.idle_windows > forget_after {
                if let Some(path) = state.path.take() {
                    self.paths.remove(&(path, id));
                }
                self.cgroups.remove(&id);
            }
        }
        self.window_start = Some(at.mono_ns);
        (self.stat_lost, self.dentry_lost, self.events_lost) = (false, false, false);
        out
    }
}

/// Events-advanced class totals at the window's end: from the previous baseline, and from a
/// sample taken in this window while full mode was in force (plus the deltas stamped after it).
fn event_totals(
    state: &CgroupState,
    rolled: &Window,
    facts: &WindowFacts,
) -> (Option<ClassSums>, Option<ClassSums>) {
    let from_baseline = state.baseline.map(|b| b.plus(rolled.class_sums(None)));
    let from_sample = facts.tracking_from.and_then(|from| {
        let sample = state.latest.as_ref().filter(|s| s.mono_ns >= from)?;
        let base = ClassSums::of(&sample.snapshot.classes(true));
        Some(base.plus(rolled.class_sums(Some(sample.mono_ns))))
    });
    (from_baseline, from_sample)
}

fn summarize(
    id: u64,
    state: &CgroupState,
    rolled: &Window,
    children: Vec<u64>,
    event_totals: Option<ClassSums>,
    at: &Stamp,
    facts: &WindowFacts,
) -> SummaryRecord {
    let seconds = facts.window_ns as f64 / 1e9;
    let per_second = |v: f64| (facts.window_ns > 0).then(|| v / seconds);
    let dentry_known = facts.dentry_known || rolled.dentry_seen;
    let dentry_bytes = dentry_known.then_some(rolled.dentry_bytes);
    let latest = state.latest.as_ref();
    let sampled_classes = latest.map(|s| ClassSums::of(&s.snapshot.classes(true)));
    let (class_source, classes, class_changes, cgroupfs_classes) = if facts.events_mode {
        let changes = rolled.class_sums(None);
        let totals = event_totals.map(|t| t.bytes(dentry_bytes));
        let unknown = ClassBytes {
            dentry_alloc_bytes: dentry_bytes,
            ..ClassBytes::default()
        };
        let fs = sampled_classes.map(|c| c.bytes(None));
        (
            ClassSource::Events,
            totals.unwrap_or(unknown),
            Some(changes.deltas(dentry_bytes)),
            fs,
        )
    } else if let Some(now) = sampled_classes {
        let anchor = state
            .anchor
            .as_ref()
            .zip(latest)
            .filter(|(a, l)| a.mono_ns < l.mono_ns);
        let changes = anchor.map(|(a, l)| stat_file_class_deltas(&a.snapshot, &l.snapshot));
        let changes = changes.map(|c| ClassDeltas {
            dentry_alloc_bytes: dentry_bytes,
            ..c
        });
        (
            ClassSource::Cgroupfs,
            now.bytes(dentry_bytes),
            changes,
            None,
        )
    } else {
        let unknown = ClassBytes {
            dentry_alloc_bytes: dentry_bytes,
            ..ClassBytes::default()
        };
        (ClassSource::Unknown, unknown, None, None)
    };
    let event_charge = class_changes
        .filter(|_| facts.events_mode)
        .and_then(|c| per_second((c.anon + c.file + c.kernel) as f64));
    // Sample-based figures: change from the anchor to the latest sample.
    let span = state
        .anchor
        .as_ref()
        .zip(latest)
        .filter(|(a, l)| a.mono_ns < l.mono_ns);
    let counter_change = |key: &str| {
        let (a, l) = span?;
        Some(
            l.snapshot
                .events
                .get(key)?
                .saturating_sub(*a.snapshot.events.get(key)?),
        )
    };
    let charge_rate = span.map(|(a, l)| {
        let grown = l.snapshot.usage_bytes as f64 - a.snapshot.usage_bytes as f64;
        grown / ((l.mono_ns - a.mono_ns) as f64 / 1e9)
    });
    let limits = latest.map(|s| s.snapshot.limits);
    let effective_limit = limits.and_then(|l| match (l.hard, l.high) {
        (Some(hard), Some(high)) => Some(hard.min(high)),
        (hard, high) => hard.or(high),
    });
    let usage = latest.map(|s| s.snapshot.usage_bytes);
    let identity = state.identity.clone().unwrap_or_else(|| match &state.path {
        Some(path) => identify(path),
        None => unknown_identity(id),
    });
    SummaryRecord {
        at: at.clone(),
        cgroup: CgroupRef {
            cgroup_id: id,
            cgroup: state.path.clone(),
        },
        identity,
        window_ns: facts.window_ns,
        memory_version: latest.map(|s| s.snapshot.version.as_str().to_owned()),
        includes_children: !children.is_empty(),
        children,
        removed: state.removed,
        events_lost: facts.events_lost,
        class_source,
        classes,
        class_changes,
        cgroupfs_classes,
        stat_item_deltas: rolled.items.clone(),
        usage_bytes: usage,
        limits,
        effective_limit_bytes: effective_limit,
        usage_ratio: usage
            .zip(effective_limit.filter(|l| *l > 0))
            .map(|(u, l)| u as f64 / l as f64),
        sample_mono_ns: latest.map(|s| s.mono_ns),
        charge_rate_bytes_per_s: charge_rate,
        event_charge_rate_bytes_per_s: event_charge,
        reclaim: Box::new(rolled.reclaim.stats(facts.page_size)),
        dentry_allocs: dentry_known.then_some(rolled.dentry_allocs),
        dentry_alloc_rate_per_s: dentry_known
            .then(|| per_second(rolled.dentry_allocs as f64))
            .flatten(),
        oom_kills: rolled.oom_kills,
        oom_kills_cgroupfs: counter_change("oom_kill"),
        limit_hits: counter_change("max"),
        high_hits: counter_change("high"),
    }
}

fn unknown_identity(id: u64) -> ContainerIdentity {
    ContainerIdentity::empty(
        IdentityKind::Plain,
        format!("cgroup id {id} (path unknown)"),
    )
}

fn cgroup_of(rec: &Record) -> Option<&CgroupRef> {
    match rec {
        Record::Stat(r) => Some(&r.cgroup),
        Record::Dentry(r) => Some(&r.cgroup),
        Record::Sample(r) => Some(&r.cgroup),
        Record::Cgroup(r) => Some(&r.cgroup),
        Record::Reclaim(r) => Some(&r.cgroup),
        Record::Oom(r) => Some(&r.cgroup),
        _ => None,
    }
}

fn is_descendant(path: &str, ancestor: &str) -> bool {
    path != ancestor && crate::cgroup_tree::is_within(path, ancestor)
}

/// Per-class byte change derived only from the stat and dentry records among `records` for
/// `cgroup_id` and its descendants (by the path the records give for that id), so it compares
/// with [`stat_file_class_deltas`] (hierarchical). `dentry_alloc_bytes` is null without dentry
/// records. The caller picks records from full mode: otherwise per-page items are missing.
pub fn event_class_deltas(records: &[Record], cgroup_id: u64) -> ClassDeltas {
    let path = records
        .iter()
        .filter_map(cgroup_of)
        .find(|c| c.cgroup_id == cgroup_id && c.cgroup.is_some())
        .and_then(|c| c.cgroup.as_deref());
    let in_subtree = |c: &CgroupRef| {
        c.cgroup_id == cgroup_id
            || path
                .zip(c.cgroup.as_deref())
                .is_some_and(|(a, p)| is_descendant(p, a))
    };
    let mut window = Window::default();
    for rec in records {
        match rec {
            Record::Stat(stat) if in_subtree(&stat.cgroup) => window.add_stat(stat),
            Record::Dentry(dentry) if in_subtree(&dentry.cgroup) => window.add_dentry(dentry),
            _ => {}
        }
    }
    let dentry = window.dentry_seen.then_some(window.dentry_bytes);
    window.class_sums(None).deltas(dentry)
}

/// Per-class byte change between two snapshots of one cgroup, from hierarchical class values
/// ([`MemorySnapshot::classes`]`(true)`); dentry is null (not in the stat files).
pub fn stat_file_class_deltas(first: &MemorySnapshot, last: &MemorySnapshot) -> ClassDeltas {
    let (a, b) = (
        ClassSums::of(&first.classes(true)),
        ClassSums::of(&last.classes(true)),
    );
    ClassDeltas {
        anon: b.anon.saturating_sub(a.anon),
        file: b.file.saturating_sub(a.file),
        kernel: b.kernel.saturating_sub(a.kernel),
        swap: b.swap.saturating_sub(a.swap),
        dentry_alloc_bytes: None,
    }
}

#[cfg(test)]
#[path = "accountant_fixtures.rs"]
mod fixtures;
#[cfg(test)]
#[path = "accountant_rollup_tests.rs"]
mod rollup_tests;
#[cfg(test)]
#[path = "accountant_tests.rs"]
mod tests;
