use super::*;
use crate::detector::{Detector, DetectorOptions};
use crate::record::Record;
use crate::test_records::{oom, sample, stamp, v1, MIB};

/// A closed hard-overshoot incident of `/job` with an awkward container name, and its timeline.
fn incident_and_timeline(name_suffix: &str) -> (IncidentRecord, Timeline) {
    let mut det = Detector::new(DetectorOptions::default());
    let mut out = Vec::new();
    let mut samples = Vec::new();
    for (sec, usage) in [(0, 90), (1, 101), (2, 104), (3, 80), (4, 80)] {
        let Record::Sample(mut s) =
            sample(sec, 7, "/job", v1(usage, Some(100), Some(95), sec), &[])
        else {
            unreachable!()
        };
        s.identity.name = format!("job{name_suffix}");
        samples.push(TimelinePoint::of(&s));
        out.extend(det.observe(&Record::Sample(s)));
    }
    let Some(Record::Incident(inc)) = out.into_iter().rev().find(|r| matches!(r, Record::Incident(i) if i.kind == crate::detector::IncidentKind::HardOvershoot)) else {
        panic!("no hard overshoot")
    };
    let mut timeline = Timeline::new(&inc, 0, stamp(5).mono_ns);
    timeline.points = samples;
    let Record::Oom(mut victim) = oom(2, 7, "/job", 66) else {
        unreachable!()
    };
    victim.victim_comm = format!("evil{name_suffix}");
    timeline.add_oom(&victim, 10);
    let Record::Reclaim(r) = crate::test_records::reclaim(2, 7, "/job", 66, 0, 10) else {
        unreachable!()
    };
    timeline.add_reclaim(&r, 10);
    (inc, timeline)
}

#[test]
fn timeline_svg_is_well_formed_even_with_hostile_names() {
    let (_, timeline) = incident_and_timeline("<&\"'>\u{1}\u{7f}é");
    let svg = render_timeline_svg(&timeline).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("job<&\"'>??é")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.starts_with("OOM evil")), "{texts:?}");
    for label in [
        "usage",
        "hard limit",
        "soft limit / memory.high",
        "anon",
        "file",
        "kernel",
        "reclaim freeing nothing",
    ] {
        assert!(
            texts.contains(&label),
            "legend {label:?} missing: {texts:?}"
        );
    }
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .count()
            >= 3,
        "usage and limit lines"
    );
}

#[test]
fn empty_timeline_still_draws() {
    let (_, mut timeline) = incident_and_timeline("");
    timeline.points.clear();
    timeline.reclaims.clear();
    timeline.from_ns = timeline.to_ns;
    let svg = render_timeline_svg(&timeline).unwrap();
    assert!(roxmltree::Document::parse(&svg).is_ok());
}

#[test]
fn thinning_keeps_the_peak() {
    let (_, mut timeline) = incident_and_timeline("");
    let template = timeline.points[0].clone();
    timeline.points = (0..1000u64)
        .map(|n| TimelinePoint {
            mono_ns: n,
            usage_bytes: if n == 777 { 10 * MIB } else { MIB },
            ..template.clone()
        })
        .collect();
    timeline.thin(100);
    assert!(timeline.points.len() <= 101, "{}", timeline.points.len());
    assert!(timeline.points.iter().any(|p| p.usage_bytes == 10 * MIB));
}

#[test]
fn formatting_helpers() {
    assert_eq!(fmt_bytes(512), "512 B");
    assert_eq!(fmt_bytes(3 * MIB / 2), "1.5 MiB");
    assert_eq!(fmt_signed_bytes(-5 * MIB as i64), "-5.0 MiB");
    assert_eq!(fmt_signed_bytes(0), "+0 B");
    assert_eq!(fmt_duration(250_000_000), "250 ms");
    assert_eq!(
        (fmt_duration(0), fmt_duration(50_123)),
        ("0 ns".to_string(), "50 µs".to_string())
    );
    assert_eq!(fmt_duration(3_500_000_000), "3.5 s");
    assert_eq!(fmt_duration(125_000_000_000), "2 m 5 s");
    assert_eq!(fmt_duration(7_380_000_000_000), "2 h 3 m");
    let killed = IncidentOutcome::OomKilled {
        pid: None,
        comm: None,
    };
    assert_eq!(fmt_outcome(&killed), "oom_killed pid ? (?)");
    assert_eq!(
        fmt_outcome(&IncidentOutcome::StillOpenAtExit),
        "still_open_at_exit"
    );
    assert_eq!(md_escape("a|b_c*<d>\n"), "a\\|b\\_c\\*&lt;d> ");
    assert_eq!(
        html_escape("<a href=\"x\">&\u{2}"),
        "&lt;a href=&quot;x&quot;&gt;&amp;?"
    );
}

#[test]
fn markdown_and_html_render_the_same_blocks() {
    let (inc, timeline) = incident_and_timeline("|x");
    let svg = render_timeline_svg(&timeline).unwrap();
    let blocks = incident_blocks(1, &inc, Some(("a.svg".into(), svg)));
    let md = markdown(&blocks);
    assert!(
        md.starts_with("### 1. hard\\_overshoot in job\\|x\n"),
        "{md}"
    );
    assert!(
        md.contains("peak 104.0 MiB against 100.0 MiB (+4.0 MiB)")
            && md.contains("![timeline](a.svg)"),
        "{md}"
    );
    let page = html(&blocks);
    assert!(
        page.contains("<h3>1. hard_overshoot in job|x</h3>") && page.contains("<figure><svg"),
        "{page}"
    );
}
