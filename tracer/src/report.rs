//! The `tracer diagnose --report DIR` output: `report.md`, a self-contained `report.html` (the
//! timelines inline) and one SVG timeline per incident (`<incident id>.svg`, referenced by
//! report.md): usage against the hard and soft/high limits, the classes stacked
//! (anon/file/kernel), reclaim marks (failed ones red) and OOM kills, the incident shaded.
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detector::{IncidentOutcome, IncidentRecord};
use crate::diagnose::{Agreement, DiagnoseSummary};
pub use crate::timeline::{render_timeline_svg, Timeline, TimelinePoint};

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
pub(crate) fn xml_safe(text: &str) -> String {
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
