//! The `tracer diagnose --report DIR` output: `report.md`, a self-contained `report.html` (the
//! timelines inline) and one SVG timeline per incident (`<incident id>.svg`, referenced by
//! report.md): usage against the hard and soft/high limits, the classes stacked
//! (anon/file/kernel), reclaim marks (failed ones red) and OOM kills, the incident shaded.
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::cgroupfs::{CgroupVersion, MemoryClasses};
use crate::detector::{IncidentOutcome, IncidentRecord};
use crate::diagnose::{Agreement, DiagnoseSummary};
use crate::record::{OomRecord, ReclaimRecord, SampleRecord};

const MIB: f64 = 1048576.0;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create report directory {path}: {source} (check permissions or pass another --report DIR)")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source} (check free space and permissions)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw the timeline of incident {incident}: {detail}")]
    Plot { incident: String, detail: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub timelines: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePoint {
    pub mono_ns: u64,
    pub usage_bytes: u64,
    pub hard_limit_bytes: Option<u64>,
    /// v2 memory.high, v1 soft limit.
    pub soft_limit_bytes: Option<u64>,
    pub classes: MemoryClasses,
}

impl TimelinePoint {
    pub fn of(s: &SampleRecord) -> Self {
        let limits = &s.snapshot.limits;
        TimelinePoint {
            mono_ns: s.at.mono_ns,
            usage_bytes: s.snapshot.usage_bytes,
            hard_limit_bytes: limits.hard,
            soft_limit_bytes: match s.snapshot.version {
                CgroupVersion::V1 => limits.soft,
                CgroupVersion::V2 => limits.high,
            },
            classes: s.snapshot.classes(true),
        }
    }
}

/// The data behind one incident's SVG; x is seconds since the incident's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub incident_id: String,
    pub title: String,
    pub origin_ns: u64,
    pub origin_ts: String,
    /// The window drawn (the incident plus some context).
    pub from_ns: u64,
    pub to_ns: u64,
    /// The incident itself (shaded).
    pub start_ns: u64,
    pub end_ns: u64,
    pub points: Vec<TimelinePoint>,
    /// (mono_ns, pages reclaimed).
    pub reclaims: Vec<(u64, u64)>,
    pub ooms: Vec<(u64, String)>,
    pub marks_omitted: u64,
}

impl Timeline {
    pub fn new(inc: &IncidentRecord, from_ns: u64, to_ns: u64) -> Self {
        let cgroup = inc.container.cgroup.as_deref().unwrap_or("?");
        Timeline {
            incident_id: inc.id.clone(),
            title: format!("{} in {} ({cgroup})", inc.kind.as_str(), inc.container.name),
            origin_ns: inc.start.mono_ns,
            origin_ts: inc.start.ts.clone(),
            from_ns,
            to_ns,
            start_ns: inc.start.mono_ns,
            end_ns: inc.end.as_ref().map_or(inc.at.mono_ns, |e| e.mono_ns),
            points: Vec::new(),
            reclaims: Vec::new(),
            ooms: Vec::new(),
            marks_omitted: 0,
        }
    }

    pub fn add_reclaim(&mut self, r: &ReclaimRecord, cap: usize) {
        if self.reclaims.len() < cap {
            self.reclaims.push((r.at.mono_ns, r.nr_reclaimed));
        } else {
            self.marks_omitted += 1;
        }
    }

    pub fn add_oom(&mut self, o: &OomRecord, cap: usize) {
        if self.ooms.len() < cap {
            self.ooms.push((
                o.at.mono_ns,
                format!("OOM {}[{}]", o.victim_comm, o.victim_pid),
            ));
        } else {
            self.marks_omitted += 1;
        }
    }

    /// Keeps at most about `cap` points: every k-th one, and the highest.
    pub fn thin(&mut self, cap: usize) {
        if self.points.len() <= cap.max(1) {
            return;
        }
        let step = self.points.len().div_ceil(cap.max(1));
        let top = self.points.iter().map(|p| p.usage_bytes).max().unwrap_or(0);
        let mut index = 0;
        self.points.retain(|p| {
            index += 1;
            (index - 1) % step == 0 || p.usage_bytes == top
        });
    }
}

pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn fmt_signed_bytes(bytes: i64) -> String {
    let sign = if bytes < 0 { "-" } else { "+" };
    format!("{sign}{}", fmt_bytes(bytes.unsigned_abs()))
}

pub fn fmt_duration(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    match secs {
        0 if ns < 1_000 => format!("{ns} ns"),
        0 if ns < 1_000_000 => format!("{} µs", ns / 1_000),
        0 => format!("{} ms", ns / 1_000_000),
        1..=59 => format!("{:.1} s", ns as f64 / 1e9),
        60..=3599 => format!("{} m {} s", secs / 60, secs % 60),
        _ => format!("{} h {} m", secs / 3600, secs % 3600 / 60),
    }
}

pub fn fmt_outcome(outcome: &IncidentOutcome) -> String {
    match outcome {
        IncidentOutcome::OomKilled { pid, comm } => {
            let pid = pid.map_or("?".to_string(), |p| p.to_string());
            format!("oom_killed pid {pid} ({})", comm.as_deref().unwrap_or("?"))
        }
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_string))
            .unwrap_or_default(),
    }
}

/// Text for SVG/XML: control characters (e.g. from a task's comm) are not allowed there.
fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Draws one incident's timeline as a standalone SVG document.
pub fn render_timeline_svg(t: &Timeline) -> Result<String, ReportError> {
    let plot_err = |e: &dyn std::fmt::Display| ReportError::Plot {
        incident: t.incident_id.clone(),
        detail: e.to_string(),
    };
    let x_of = |mono: u64| (mono as f64 - t.origin_ns as f64) / 1e9;
    let (x_min, mut x_max) = (x_of(t.from_ns), x_of(t.to_ns));
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let stack_top = |c: &MemoryClasses| c.anon + c.file + c.kernel;
    let data_max = t
        .points
        .iter()
        .map(|p| p.usage_bytes.max(stack_top(&p.classes)))
        .max()
        .unwrap_or(0);
    let near = |limit: Option<u64>| limit.filter(|l| *l <= data_max.saturating_mul(2));
    let limit_max = t
        .points
        .iter()
        .flat_map(|p| [near(p.hard_limit_bytes), near(p.soft_limit_bytes)])
        .flatten()
        .max();
    // Headroom above the data keeps the legend (upper left) clear of the lines.
    let y_max = (data_max.max(limit_max.unwrap_or(0)) as f64 / MIB * 1.5).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(xml_safe(&t.title), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_min..x_max, 0f64..y_max)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc(xml_safe(&format!(
                "seconds since the incident started ({})",
                t.origin_ts
            )))
            .y_desc("MiB")
            .draw()
            .map_err(|e| plot_err(&e))?;
        type Stack = (&'static str, RGBColor, fn(&MemoryClasses) -> u64);
        let stack: [Stack; 3] = [
            ("kernel", RGBColor(240, 200, 120), |c| {
                c.anon + c.file + c.kernel
            }),
            ("file", RGBColor(170, 210, 140), |c| c.anon + c.file),
            ("anon", RGBColor(140, 180, 220), |c| c.anon),
        ];
        for (label, color, top) in stack {
            let series = t
                .points
                .iter()
                .map(|p| (x_of(p.mono_ns), top(&p.classes) as f64 / MIB));
            chart
                .draw_series(AreaSeries::new(series, 0.0, color.filled()).border_style(color))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        // The incident itself, translucent over the stacked classes.
        let span = [
            (x_of(t.start_ns).max(x_min), 0.0),
            (x_of(t.end_ns).min(x_max), y_max),
        ];
        let shade = RGBColor(220, 40, 40).mix(0.12).filled();
        chart
            .draw_series(std::iter::once(Rectangle::new(span, shade)))
            .map_err(|e| plot_err(&e))?;
        let soft_color = RGBColor(255, 140, 0);
        type Line = (&'static str, RGBColor, fn(&TimelinePoint) -> Option<u64>);
        let lines: [Line; 3] = [
            ("usage", BLACK, |p| Some(p.usage_bytes)),
            ("hard limit", RED, |p| p.hard_limit_bytes),
            ("soft limit / memory.high", soft_color, |p| {
                p.soft_limit_bytes
            }),
        ];
        for (label, color, value) in lines {
            let series: Vec<(f64, f64)> = t
                .points
                .iter()
                .filter_map(|p| Some((x_of(p.mono_ns), value(p)? as f64 / MIB)))
                .filter(|(_, y)| *y <= y_max)
                .collect();
            if series.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(series, color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
                });
        }
        let mark_y = y_max * 0.03;
        for (label, failed, color) in [
            ("reclaim", false, BLUE),
            ("reclaim freeing nothing", true, RED),
        ] {
            let marks: Vec<(f64, f64)> = t
                .reclaims
                .iter()
                .filter(|(_, pages)| (*pages == 0) == failed)
                .map(|(mono, _)| (x_of(*mono), mark_y))
                .collect();
            if marks.is_empty() {
                continue;
            }
            chart
                .draw_series(marks.into_iter().map(|c| Circle::new(c, 3, color.filled())))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 5, y), 3, color.filled()));
        }
        for (mono, label) in &t.ooms {
            let x = x_of(*mono);
            let line = PathElement::new(vec![(x, 0.0), (x, y_max)], MAGENTA.stroke_width(2));
            let text = Text::new(xml_safe(label), (x, y_max * 0.97), ("sans-serif", 13));
            chart
                .draw_series(std::iter::once(line))
                .map_err(|e| plot_err(&e))?;
            chart
                .draw_series(std::iter::once(text))
                .map_err(|e| plot_err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    Ok(svg)
}

/// A report as blocks, rendered once as Markdown and once as HTML.
enum Block {
    Heading(usize, String),
    List(Vec<String>),
    Table(Vec<&'static str>, Vec<Vec<String>>),
    Image { file: String, svg: String },
}

fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn html_escape(text: &str) -> String {
    let text = xml_safe(text);
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        let _ = match block {
            Block::Heading(level, text) => {
                writeln!(out, "{} {}\n", "#".repeat(*level), md_escape(text))
            }
            Block::List(items) => {
                items
                    .iter()
                    .for_each(|i| out.push_str(&format!("- {}\n", md_escape(i))));
                writeln!(out)
            }
            Block::Table(header, rows) => {
                let _ = writeln!(
                    out,
                    "| {} |\n|{}",
                    header.join(" | "),
                    "---|".repeat(header.len())
                );
                for row in rows {
                    let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                writeln!(out)
            }
            Block::Image { file, .. } => writeln!(out, "![timeline]({file})\n"),
        };
    }
    out
}

fn html(blocks: &[Block]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Memory incident report</title>\n\
         <style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}svg{max-width:100%;height:auto}</style>\
         </head><body>\n",
    );
    for block in blocks {
        let _ = match block {
            Block::Heading(level, text) => {
                writeln!(out, "<h{level}>{}</h{level}>", html_escape(text))
            }
            Block::List(items) => {
                let items: String = items
                    .iter()
                    .map(|i| format!("<li>{}</li>", html_escape(i)))
                    .collect();
                writeln!(out, "<ul>{items}</ul>")
            }
            Block::Table(header, rows) => {
                let head: String = header
                    .iter()
                    .map(|h| format!("<th>{}</th>", html_escape(h)))
                    .collect();
                let body: String = rows
                    .iter()
                    .map(|row| {
                        format!(
                            "<tr>{}</tr>",
                            row.iter()
                                .map(|c| format!("<td>{}</td>", html_escape(c)))
                                .collect::<String>()
                        )
                    })
                    .collect();
                writeln!(out, "<table><tr>{head}</tr>{body}</table>")
            }
            Block::Image { svg, .. } => {
                let body = svg.find("<svg").map_or(svg.as_str(), |at| &svg[at..]);
                writeln!(out, "<figure>{body}</figure>")
            }
        };
    }
    out.push_str("</body></html>\n");
    out
}

fn incident_blocks(n: usize, i: &IncidentRecord, image: Option<(String, String)>) -> Vec<Block> {
    let mut items = vec![
        format!(
            "id {}; cgroup {} (id {})",
            i.id,
            i.container.cgroup.as_deref().unwrap_or("?"),
            i.container.cgroup_id
        ),
        format!(
            "from {} to {} ({}, {} samples); limit file {}",
            i.start.ts,
            i.end.as_ref().map_or("(open)", |e| e.ts.as_str()),
            fmt_duration(i.duration_ns),
            i.samples,
            i.limit_file.as_deref().unwrap_or("unknown")
        ),
    ];
    if let Some(p) = &i.peak {
        let limit = p.limit_bytes.map_or("none".to_string(), fmt_bytes);
        let excess = p.excess_bytes.map_or("-".to_string(), fmt_signed_bytes);
        let c = &p.classes;
        items.push(format!(
            "peak {} against {limit} ({excess}) at {}",
            fmt_bytes(p.usage_bytes),
            p.at.ts
        ));
        items.push(format!(
            "classes at the peak: anon {}, file {}, kernel {}, swap {}",
            fmt_bytes(c.anon),
            fmt_bytes(c.file),
            fmt_bytes(c.kernel),
            fmt_bytes(c.swap)
        ));
    }
    if !i.grown_classes.is_empty() {
        let grown: Vec<String> = i
            .grown_classes
            .iter()
            .map(|g| format!("{} +{}", g.class, fmt_bytes(g.growth_bytes)))
            .collect();
        items.push(format!("grew: {}", grown.join(", ")));
    }
    let r = &i.reclaim;
    items.push(format!(
        "reclaim: {} attempts, {} freed nothing, {} pages; latency total {}, p99 {}, max {}",
        r.count,
        r.failures,
        r.pages_reclaimed,
        fmt_duration(r.total_latency_ns),
        fmt_duration(r.p99_latency_ns),
        fmt_duration(r.max_latency_ns)
    ));
    let s = &i.shrink;
    items.push(format!(
        "slab shrink: {} calls, {} scanned, {} freed (dcache/icache: {} calls, {} freed); dentry allocations {}",
        s.count,
        s.scanned,
        s.freed,
        s.dcache_count,
        s.dcache_freed,
        fmt_bytes(s.dentry_alloc_bytes)
    ));
    items.push(format!(
        "limit hits {}, memory.high events {}, OOM kills {}",
        i.limit_hits, i.high_events, i.oom_kills
    ));
    if !i.victims.is_empty() {
        let victims: Vec<String> = i
            .victims
            .iter()
            .map(|v| {
                format!(
                    "{}[{}] at {}",
                    v.comm.as_deref().unwrap_or("?"),
                    v.pid.map_or("?".into(), |p| p.to_string()),
                    v.at.ts
                )
            })
            .collect();
        items.push(format!("victims: {}", victims.join(", ")));
    }
    items.push(format!(
        "outcome: {}",
        i.outcome.as_ref().map_or("open".to_string(), fmt_outcome)
    ));
    let mut blocks = vec![
        Block::Heading(
            3,
            format!("{n}. {} in {}", i.kind.as_str(), i.container.name),
        ),
        Block::List(items),
    ];
    if !i.top_tasks.is_empty() {
        let rows = i
            .top_tasks
            .iter()
            .map(|t| {
                vec![
                    t.pid.to_string(),
                    t.comm.clone(),
                    fmt_bytes(t.rss_before_bytes),
                    fmt_bytes(t.rss_peak_bytes),
                    fmt_bytes(t.rss_growth_bytes),
                    t.reclaims.to_string(),
                    fmt_duration(t.reclaim_latency_ns),
                ]
            })
            .collect();
        let header = vec![
            "pid",
            "comm",
            "RSS before",
            "RSS peak",
            "growth",
            "reclaims",
            "reclaim time",
        ];
        blocks.push(Block::Table(header, rows));
    }
    if let Some((file, svg)) = image {
        blocks.push(Block::Image { file, svg });
    }
    blocks
}

fn summary_blocks(s: &DiagnoseSummary) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(1, "Memory incident report".into())];
    let mut facts = vec![format!(
        "recording {}: {} lines, {} records",
        s.recording.display(),
        s.lines,
        s.records
    )];
    if let Some(info) = &s.info {
        facts.push(format!(
            "host {}, kernel {}, cgroup {}, agent {}",
            info.hostname, info.kernel, info.memory_version, info.agent_version
        ));
    }
    if let (Some(a), Some(b)) = (&s.first, &s.last) {
        facts.push(format!(
            "{} to {} ({})",
            a.ts,
            b.ts,
            fmt_duration(b.mono_ns.saturating_sub(a.mono_ns))
        ));
    }
    facts.push(if s.stopped_cleanly {
        "stopped cleanly".into()
    } else {
        "no stop record (truncated?)".into()
    });
    if s.skipped_count > 0 {
        let lines: Vec<String> = s.skipped.iter().map(|l| l.line.to_string()).collect();
        facts.push(format!(
            "skipped {} unreadable line(s): {}",
            s.skipped_count,
            lines.join(", ")
        ));
    }
    if s.events_dropped + s.decode_errors > 0 {
        facts.push(format!(
            "{} events dropped, {} undecodable: incidents may be incomplete",
            s.events_dropped, s.decode_errors
        ));
    }
    facts.push(match &s.agreement {
        Agreement::Agree => format!("rebuilt incidents agree with the {} live incident records", s.live_incident_records),
        Agreement::NoLiveIncidents => "no live incident records to compare with".into(),
        Agreement::Disagree { only_live, only_rebuilt, outcome_differs } => format!(
            "rebuilt incidents DISAGREE with the live ones: only live {only_live:?}, only rebuilt {only_rebuilt:?}, other outcome {outcome_differs:?}"
        ),
    });
    blocks.push(Block::List(facts));
    blocks.push(Block::Heading(2, "Incidents, worst first".into()));
    let rows = s
        .incidents
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let peak = i.peak.as_ref();
            vec![
                (n + 1).to_string(),
                i.kind.as_str().to_string(),
                i.container.name.clone(),
                i.start.ts.clone(),
                fmt_duration(i.duration_ns),
                peak.map_or("-".into(), |p| fmt_bytes(p.usage_bytes)),
                peak.and_then(|p| p.limit_bytes)
                    .map_or("-".into(), fmt_bytes),
                peak.and_then(|p| p.excess_bytes)
                    .map_or("-".into(), fmt_signed_bytes),
                i.outcome.as_ref().map_or("open".into(), fmt_outcome),
            ]
        })
        .collect();
    let header = vec![
        "#",
        "kind",
        "container",
        "start",
        "duration",
        "peak",
        "limit",
        "excess",
        "outcome",
    ];
    blocks.push(Block::Table(header, rows));
    blocks.push(Block::Heading(2, "Containers".into()));
    let rows = s
        .containers
        .iter()
        .map(|r| {
            let count = |k: &str| r.incidents.get(k).copied().unwrap_or(0).to_string();
            vec![
                r.name.clone(),
                r.cgroup.clone().unwrap_or_else(|| "?".into()),
                count("hard_overshoot"),
                count("soft_overshoot"),
                count("limit_hit"),
                count("oom"),
                r.oom_kills.to_string(),
                fmt_bytes(r.peak_usage_bytes),
                r.hard_limit_bytes.map_or("none".into(), fmt_bytes),
            ]
        })
        .collect();
    let header = vec![
        "container",
        "cgroup",
        "hard",
        "soft",
        "limit hit",
        "oom",
        "kills",
        "peak usage",
        "hard limit",
    ];
    blocks.push(Block::Table(header, rows));
    blocks
}

fn write(path: PathBuf, text: &str) -> Result<PathBuf, ReportError> {
    fs::write(&path, text).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes report.md, report.html and one SVG per timeline into `dir` (created if missing).
pub fn write_report(
    dir: &Path,
    summary: &DiagnoseSummary,
    timelines: &[Timeline],
) -> Result<ReportFiles, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut blocks = summary_blocks(summary);
    let mut svgs = Vec::new();
    for (n, inc) in summary.incidents.iter().enumerate() {
        let Some(timeline) = timelines.iter().find(|t| t.incident_id == inc.id) else {
            continue;
        };
        let svg = render_timeline_svg(timeline)?;
        // Ids are `<kind>-<digits>-<digits>`; keep file names to that alphabet regardless.
        let file: String = inc
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file = format!("{file}.svg");
        svgs.push(write(dir.join(&file), &svg)?);
        blocks.extend(incident_blocks(n + 1, inc, Some((file, svg))));
    }
    Ok(ReportFiles {
        dir: dir.to_path_buf(),
        markdown: write(dir.join("report.md"), &markdown(&blocks))?,
        html: write(dir.join("report.html"), &html(&blocks))?,
        timelines: svgs,
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
