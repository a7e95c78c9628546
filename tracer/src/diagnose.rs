//! `tracer diagnose FILE [--report DIR]`: rebuilds the overshoot incidents of an NDJSON
//! recording by running its raw records through the live [`Detector`], and summarises them.
//!
//! Reading is tolerant: a line that is not UTF-8, not JSON, not a known record, or longer than
//! [`MAX_LINE_BYTES`] is skipped and listed (line numbers, capped at [`SKIPPED_LINES_LISTED`]);
//! a truncated last line or a read error ends the reading with what was read so far. Only a
//! file that cannot be opened is an error. Recorded `incident` and `summary` records are not
//! detector input: they are counted, and the live incidents are compared with the rebuilt ones.
//! A second `start` record (concatenated recordings) begins a new segment with a fresh detector.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detector::{Detector, DetectorOptions, IncidentKind, IncidentRecord};
use crate::record::{Record, Stamp};
pub use crate::recording::{
    read_records, ReadStats, RecordingError, SkippedLine, MAX_LINE_BYTES, SKIPPED_LINES_LISTED,
};
use crate::report::{self, ReportError, ReportFiles, Timeline, TimelinePoint};

/// Containers listed in the summary (those with incidents first).
const CONTAINER_ROWS: usize = 30;
/// Incidents listed in the agreement lists and drawn in a report.
const IDS_LISTED: usize = 50;
pub const REPORT_INCIDENTS: usize = 50;
/// Points and marks kept per timeline.
const TIMELINE_POINTS: usize = 3000;

#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// What the `start` record said about the recording host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingInfo {
    pub hostname: String,
    pub kernel: String,
    pub memory_version: String,
    pub agent_version: String,
    pub sample_interval_ms: u64,
}

/// Whether the incidents the live agent recorded match the rebuilt ones (by id; outcomes where
/// both closed).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Agreement {
    #[default]
    Agree,
    /// The recording has no incident records (live detection off or an older agent).
    NoLiveIncidents,
    Disagree {
        only_live: Vec<String>,
        only_rebuilt: Vec<String>,
        outcome_differs: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerRow {
    pub cgroup_id: u64,
    pub cgroup: Option<String>,
    pub name: String,
    pub samples: u64,
    pub peak_usage_bytes: u64,
    /// Hard limit at the peak.
    pub hard_limit_bytes: Option<u64>,
    /// Rebuilt incidents per kind (`hard_overshoot`, ...).
    pub incidents: BTreeMap<String, u64>,
    pub oom_kills: u64,
    /// Worst severity among its incidents (see [`IncidentKind::severity`]).
    pub worst: Option<IncidentKind>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiagnoseSummary {
    pub recording: PathBuf,
    pub info: Option<RecordingInfo>,
    pub first: Option<Stamp>,
    pub last: Option<Stamp>,
    pub lines: u64,
    pub records: u64,
    pub record_counts: BTreeMap<String, u64>,
    /// The first skipped lines; `skipped_count` counts them all.
    pub skipped: Vec<SkippedLine>,
    pub skipped_count: u64,
    /// Why reading stopped early, if it did.
    pub read_error: Option<String>,
    pub segments: u64,
    pub stopped_cleanly: bool,
    /// From the last `loss` record: events dropped in the kernel and undecodable ones.
    pub events_dropped: u64,
    pub decode_errors: u64,
    /// Rebuilt incidents (final state), worst first.
    pub incidents: Vec<IncidentRecord>,
    pub live_incident_records: u64,
    pub agreement: Agreement,
    pub containers: Vec<ContainerRow>,
    pub containers_omitted: u64,
    pub report: Option<ReportFiles>,
}

/// Worst first: kind severity, OOM kills, excess over the limit, duration.
pub fn severity_key(i: &IncidentRecord) -> (u8, u64, i64, u64) {
    let excess = i
        .peak
        .as_ref()
        .and_then(|p| p.excess_bytes)
        .unwrap_or(i64::MIN);
    (i.kind.severity(), i.oom_kills, excess, i.duration_ns)
}

/// Pass 1 state: detection and bookkeeping.
struct Rebuild {
    detector: Detector,
    rebuilt: BTreeMap<String, IncidentRecord>,
    live: BTreeMap<String, IncidentRecord>,
    /// Segment of each rebuilt incident (monotonic time restarts per recording).
    segment_of: HashMap<String, u64>,
    containers: BTreeMap<u64, ContainerRow>,
}

impl Rebuild {
    fn take(&mut self, segment: u64, out: Vec<Record>) {
        for rec in out {
            if let Record::Incident(inc) = rec {
                self.segment_of.insert(inc.id.clone(), segment);
                self.rebuilt.insert(inc.id.clone(), inc);
            }
        }
    }
}

/// Rebuilds the incidents of the recording at `path`; with `report_dir`, also writes the report.
pub fn diagnose(path: &Path, report_dir: Option<&Path>) -> Result<DiagnoseSummary, DiagnoseError> {
    let mut summary = DiagnoseSummary {
        recording: path.to_path_buf(),
        ..DiagnoseSummary::default()
    };
    let mut state = Rebuild {
        detector: Detector::new(DetectorOptions::default()),
        rebuilt: BTreeMap::new(),
        live: BTreeMap::new(),
        segment_of: HashMap::new(),
        containers: BTreeMap::new(),
    };
    let mut counts = (0u64, BTreeMap::<String, u64>::new());
    let (mut info, mut first, mut last, mut segments) = (None, None::<Stamp>, None::<Stamp>, 0u64);
    let (mut stopped, mut loss) = (false, None);
    let stats = read_records(path, |record| {
        counts.0 += 1;
        *counts.1.entry(record.type_name().to_string()).or_default() += 1;
        let at = record.at().clone();
        match &record {
            Record::Start(s) => {
                if segments > 0 || last.is_some() {
                    let out = state.detector.finish(last.clone().unwrap_or_default());
                    state.take(segments, out);
                    state.detector = Detector::new(DetectorOptions::default());
                }
                segments += 1;
                info = Some(RecordingInfo {
                    hostname: s.hostname.clone(),
                    kernel: s.kernel.clone(),
                    memory_version: s.memory_version.clone(),
                    agent_version: s.agent_version.clone(),
                    sample_interval_ms: s.sample_interval_ms,
                });
            }
            Record::Incident(inc) => {
                state.live.insert(inc.id.clone(), inc.clone());
                return;
            }
            Record::Summary(_) => return,
            Record::Stop(_) => stopped = true,
            Record::Loss(l) => loss = Some((l.total_dropped(), l.decode_errors)),
            Record::Sample(s) => {
                let row = state
                    .containers
                    .entry(s.cgroup.cgroup_id)
                    .or_insert_with(|| ContainerRow {
                        cgroup_id: s.cgroup.cgroup_id,
                        cgroup: s.cgroup.cgroup.clone(),
                        name: s.identity.name.clone(),
                        ..ContainerRow::default()
                    });
                row.samples += 1;
                if s.snapshot.usage_bytes >= row.peak_usage_bytes {
                    row.peak_usage_bytes = s.snapshot.usage_bytes;
                    row.hard_limit_bytes = s.snapshot.limits.hard;
                }
            }
            _ => {}
        }
        first.get_or_insert_with(|| at.clone());
        last = Some(at);
        let out = state.detector.observe(&record);
        state.take(segments, out);
    })?;
    if let Some(at) = last.clone() {
        let out = state.detector.finish(at);
        state.take(segments, out);
    }
    (summary.lines, summary.skipped, summary.skipped_count) =
        (stats.lines, stats.skipped, stats.skipped_count);
    summary.read_error = stats.read_error;
    summary.records = counts.0;
    summary.record_counts = counts.1;
    (summary.info, summary.first, summary.last) = (info, first, last);
    (summary.segments, summary.stopped_cleanly) = (segments, stopped);
    (summary.events_dropped, summary.decode_errors) = loss.unwrap_or_default();
    summary.live_incident_records = summary.record_counts.get("incident").copied().unwrap_or(0);
    summary.agreement = compare(&state.live, &state.rebuilt);
    let mut incidents: Vec<IncidentRecord> = state.rebuilt.into_values().collect();
    incidents.sort_by(|a, b| {
        severity_key(b)
            .cmp(&severity_key(a))
            .then_with(|| a.id.cmp(&b.id))
    });
    (summary.containers, summary.containers_omitted) = container_rows(state.containers, &incidents);
    summary.incidents = incidents;
    if let Some(dir) = report_dir {
        let timelines = timelines(path, &summary, &state.segment_of)?;
        summary.report = Some(report::write_report(dir, &summary, &timelines)?);
    }
    Ok(summary)
}

fn compare(
    live: &BTreeMap<String, IncidentRecord>,
    rebuilt: &BTreeMap<String, IncidentRecord>,
) -> Agreement {
    if live.is_empty() && !rebuilt.is_empty() {
        return Agreement::NoLiveIncidents;
    }
    let only = |a: &BTreeMap<String, IncidentRecord>, b: &BTreeMap<String, IncidentRecord>| {
        a.keys()
            .filter(|id| !b.contains_key(*id))
            .take(IDS_LISTED)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (only_live, only_rebuilt) = (only(live, rebuilt), only(rebuilt, live));
    let outcome_differs: Vec<String> = live
        .iter()
        .filter_map(|(id, l)| Some((id, l.outcome.as_ref()?, rebuilt.get(id)?.outcome.as_ref()?)))
        .filter(|(_, l, r)| l != r)
        .map(|(id, _, _)| id.clone())
        .take(IDS_LISTED)
        .collect();
    if only_live.is_empty() && only_rebuilt.is_empty() && outcome_differs.is_empty() {
        Agreement::Agree
    } else {
        Agreement::Disagree {
            only_live,
            only_rebuilt,
            outcome_differs,
        }
    }
}

fn container_rows(
    mut rows: BTreeMap<u64, ContainerRow>,
    incidents: &[IncidentRecord],
) -> (Vec<ContainerRow>, u64) {
    for inc in incidents {
        let c = &inc.container;
        let row = rows.entry(c.cgroup_id).or_insert_with(|| ContainerRow {
            cgroup_id: c.cgroup_id,
            cgroup: c.cgroup.clone(),
            name: c.name.clone(),
            ..ContainerRow::default()
        });
        *row.incidents
            .entry(inc.kind.as_str().to_string())
            .or_default() += 1;
        row.oom_kills += if inc.kind == IncidentKind::Oom {
            inc.oom_kills
        } else {
            0
        };
        if row.worst.is_none_or(|w| w.severity() < inc.kind.severity()) {
            row.worst = Some(inc.kind);
        }
    }
    let ratio = |r: &ContainerRow| match r.hard_limit_bytes {
        Some(limit) if limit > 0 => r.peak_usage_bytes as f64 / limit as f64,
        _ => 0.0,
    };
    let mut rows: Vec<ContainerRow> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        let key = |r: &ContainerRow| {
            (
                r.worst.map(|k| k.severity() + 1).unwrap_or(0),
                r.incidents.values().sum::<u64>(),
            )
        };
        key(b)
            .cmp(&key(a))
            .then_with(|| ratio(b).total_cmp(&ratio(a)))
            .then_with(|| b.peak_usage_bytes.cmp(&a.peak_usage_bytes))
    });
    let omitted = rows.len().saturating_sub(CONTAINER_ROWS) as u64;
    rows.truncate(CONTAINER_ROWS);
    (rows, omitted)
}

/// Pass 2: the samples, reclaims and OOM kills around each reported incident.
fn timelines(
    path: &Path,
    summary: &DiagnoseSummary,
    segment_of: &HashMap<String, u64>,
) -> Result<Vec<Timeline>, DiagnoseError> {
    let interval_ns = summary
        .info
        .as_ref()
        .map_or(1000, |i| i.sample_interval_ms.max(1))
        * 1_000_000;
    let mut lines: Vec<(Timeline, u64, &IncidentRecord)> = summary
        .incidents
        .iter()
        .take(REPORT_INCIDENTS)
        .map(|inc| {
            let end = inc.end.as_ref().map_or(inc.at.mono_ns, |e| e.mono_ns);
            let pad = (end.saturating_sub(inc.start.mono_ns) / 4).max(5 * interval_ns);
            let timeline = Timeline::new(
                inc,
                inc.start.mono_ns.saturating_sub(pad),
                end.saturating_add(pad),
            );
            (timeline, segment_of.get(&inc.id).copied().unwrap_or(0), inc)
        })
        .collect();
    let mut by_cgroup: HashMap<u64, Vec<usize>> = HashMap::new();
    for (index, (_, _, inc)) in lines.iter().enumerate() {
        by_cgroup
            .entry(inc.container.cgroup_id)
            .or_default()
            .push(index);
    }
    let mut segment = 0u64;
    read_records(path, |record| {
        if let Record::Start(_) = record {
            segment += 1;
            return;
        }
        let inside = |t: &Timeline, seg: u64, mono: u64| {
            seg == segment && (t.from_ns..=t.to_ns).contains(&mono)
        };
        match &record {
            Record::Sample(s) => {
                for index in by_cgroup.get(&s.cgroup.cgroup_id).into_iter().flatten() {
                    let (timeline, seg, _) = &mut lines[*index];
                    if inside(timeline, *seg, s.at.mono_ns)
                        && timeline.points.len() < TIMELINE_POINTS * 4
                    {
                        timeline.points.push(TimelinePoint::of(s));
                    }
                }
            }
            Record::Reclaim(r) => {
                for (timeline, seg, inc) in lines.iter_mut() {
                    if inside(timeline, *seg, r.at.mono_ns) && at_or_below(&r.cgroup, inc) {
                        timeline.add_reclaim(r, TIMELINE_POINTS);
                    }
                }
            }
            Record::Oom(o) => {
                for (timeline, seg, inc) in lines.iter_mut() {
                    if inside(timeline, *seg, o.at.mono_ns) && at_or_below(&o.cgroup, inc) {
                        timeline.add_oom(o, TIMELINE_POINTS);
                    }
                }
            }
            _ => {}
        }
    })?;
    Ok(lines
        .into_iter()
        .map(|(mut timeline, _, _)| {
            timeline.thin(TIMELINE_POINTS);
            timeline
        })
        .collect())
}

/// The record's cgroup is the incident's or one of its descendants.
fn at_or_below(cgroup: &crate::record::CgroupRef, inc: &IncidentRecord) -> bool {
    if cgroup.cgroup_id != 0 && cgroup.cgroup_id == inc.container.cgroup_id {
        return true;
    }
    match (cgroup.cgroup.as_deref(), inc.container.cgroup.as_deref()) {
        (Some(child), Some("/")) => child.starts_with('/'),
        (Some(child), Some(parent)) => crate::cgroup_tree::is_within(child, parent),
        _ => false,
    }
}

/// Concise text: the recording, worst incidents first, then a per-container table.
pub fn render_summary(s: &DiagnoseSummary) -> String {
    use report::{fmt_bytes, fmt_duration, fmt_outcome, fmt_signed_bytes};
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "recording: {}", s.recording.display());
    if let Some(i) = &s.info {
        let _ = writeln!(
            out,
            "  host {} kernel {} cgroup {} agent {}",
            i.hostname, i.kernel, i.memory_version, i.agent_version
        );
    }
    if let (Some(a), Some(b)) = (&s.first, &s.last) {
        let span = fmt_duration(b.mono_ns.saturating_sub(a.mono_ns));
        let _ = writeln!(
            out,
            "  {} .. {} ({span}, {} segment(s))",
            a.ts, b.ts, s.segments
        );
    }
    let clean = if s.stopped_cleanly {
        "stopped cleanly"
    } else {
        "no stop record: truncated or still running"
    };
    let _ = writeln!(out, "  {} lines, {} records, {clean}", s.lines, s.records);
    if s.skipped_count > 0 {
        let listed: Vec<String> = s.skipped.iter().map(|l| l.line.to_string()).collect();
        let more = s.skipped_count.saturating_sub(s.skipped.len() as u64);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  skipped {} unreadable line(s): {}{tail}",
            s.skipped_count,
            listed.join(", ")
        );
        if let Some(first) = s.skipped.first() {
            let _ = writeln!(out, "    line {}: {}", first.line, first.reason);
        }
    }
    if let Some(e) = &s.read_error {
        let _ = writeln!(out, "  reading stopped early: {e}");
    }
    if s.events_dropped + s.decode_errors > 0 {
        let _ = writeln!(
            out,
            "  loss: {} events dropped, {} undecodable: incidents may be incomplete",
            s.events_dropped, s.decode_errors
        );
    }
    let agreement = match &s.agreement {
        Agreement::Agree => format!(
            "agree with the {} live incident record(s)",
            s.live_incident_records
        ),
        Agreement::NoLiveIncidents => {
            "the recording has no live incident records to compare".to_string()
        }
        Agreement::Disagree {
            only_live,
            only_rebuilt,
            outcome_differs,
        } => format!(
            "DISAGREE with the live ones: {} only live, {} only rebuilt, {} with another outcome",
            only_live.len(),
            only_rebuilt.len(),
            outcome_differs.len()
        ),
    };
    let _ = writeln!(
        out,
        "\nincidents: {} rebuilt; {agreement}",
        s.incidents.len()
    );
    for (n, i) in s.incidents.iter().take(20).enumerate() {
        let (usage, limit, excess) =
            i.peak
                .as_ref()
                .map_or(("-".into(), "-".into(), "-".into()), |p| {
                    (
                        fmt_bytes(p.usage_bytes),
                        p.limit_bytes.map_or("none".into(), fmt_bytes),
                        p.excess_bytes.map_or("-".into(), fmt_signed_bytes),
                    )
                });
        let _ = writeln!(
            out,
            "{:>3}. {:<14} {} ({}) at {} for {}: peak {usage} / {limit} ({excess}), {} reclaims ({} failed), {}",
            n + 1,
            i.kind.as_str(),
            i.container.name,
            i.container.cgroup.as_deref().unwrap_or("?"),
            i.start.ts,
            fmt_duration(i.duration_ns),
            i.reclaim.count,
            i.reclaim.failures,
            i.outcome.as_ref().map_or("open".into(), fmt_outcome),
        );
    }
    if s.incidents.len() > 20 {
        let _ = writeln!(out, "     ... and {} more", s.incidents.len() - 20);
    }
    let _ = writeln!(
        out,
        "\n{:<40} {:>5} {:>5} {:>5} {:>5} {:>5} {:>11} {:>11}",
        "container", "hard", "soft", "hit", "oom", "kills", "peak", "hard limit"
    );
    for r in &s.containers {
        let count = |k: IncidentKind| r.incidents.get(k.as_str()).copied().unwrap_or(0);
        let mut name = format!("{} {}", r.name, r.cgroup.as_deref().unwrap_or("?"));
        if name.chars().count() > 40 {
            name = format!("{}…", name.chars().take(39).collect::<String>());
        }
        let _ = writeln!(
            out,
            "{name:<40} {:>5} {:>5} {:>5} {:>5} {:>5} {:>11} {:>11}",
            count(IncidentKind::HardOvershoot),
            count(IncidentKind::SoftOvershoot),
            count(IncidentKind::LimitHit),
            count(IncidentKind::Oom),
            r.oom_kills,
            fmt_bytes(r.peak_usage_bytes),
            r.hard_limit_bytes.map_or("none".into(), fmt_bytes),
        );
    }
    if s.containers_omitted > 0 {
        let _ = writeln!(
            out,
            "... and {} more cgroups without incidents",
            s.containers_omitted
        );
    }
    if let Some(r) = &s.report {
        let _ = writeln!(
            out,
            "\nreport: {} ({} timelines)",
            r.markdown.display(),
            r.timelines.len()
        );
    }
    out
}

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod tests;
