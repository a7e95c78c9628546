//! One incident's timeline — usage against the limits, the memory classes stacked, reclaim and
//! OOM marks — and its SVG rendering (plotters), for the `tracer diagnose` report.
use plotters::prelude::*;

use crate::cgroupfs::{CgroupVersion, MemoryClasses};
use crate::incident::IncidentRecord;
use crate::record::{OomRecord, ReclaimRecord, SampleRecord};
use crate::report::{xml_safe, ReportError};

const MIB: f64 = 1048576.0;

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
