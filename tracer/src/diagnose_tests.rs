use std::io::Write as _;

use super::*;
use crate::detector::IncidentOutcome;
use crate::test_records::{oom, sample, v2};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/diagnose")).join(name)
}

fn kinds(s: &DiagnoseSummary) -> Vec<(&str, Option<String>)> {
    s.incidents
        .iter()
        .map(|i| (i.kind.as_str(), i.outcome.as_ref().map(report::fmt_outcome)))
        .collect()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ndjson(records: &[Record]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|r| (serde_json::to_string(r).unwrap() + "\n").into_bytes())
        .collect()
}

#[test]
fn v1_fixture_rebuilds_an_oom_story_worst_first() {
    let s = diagnose(&fixture("v1-oom.ndjson"), None).unwrap();
    assert_eq!(
        (s.skipped_count, s.records, s.segments, s.stopped_cleanly),
        (0, 48, 1, true)
    );
    let killed = Some("oom_killed pid 4242 (stress)".to_string());
    let expected = [
        ("oom", killed.clone()),
        ("hard_overshoot", killed.clone()),
        ("limit_hit", killed.clone()),
        ("soft_overshoot", killed),
    ];
    assert_eq!(kinds(&s), expected);
    assert!(
        s.incidents.iter().all(|i| i.container.cgroup_id == 101),
        "only the limited container"
    );
    let limit_hit = &s.incidents[2];
    assert_eq!(
        (
            limit_hit.limit_hits,
            limit_hit.reclaim.count,
            limit_hit.reclaim.failures
        ),
        (31, 4, 2)
    );
    assert_eq!(limit_hit.top_tasks[0].comm, "stress");
    assert_eq!(
        s.incidents[3].start.mono_ns, 1_002_000_000_000,
        "soft overshoot starts at second 2"
    );
    assert_eq!(s.agreement, Agreement::NoLiveIncidents);
    let first = &s.containers[0];
    assert_eq!(
        (first.cgroup_id, first.oom_kills, first.worst),
        (101, 1, Some(IncidentKind::Oom))
    );
    assert_eq!(
        s.containers.len(),
        3,
        "the quiet container and the root are listed too"
    );
    let text = render_summary(&s);
    for needle in [
        "host fixture-host",
        "4 rebuilt",
        "oom_killed pid 4242 (stress)",
        "docker:aaaaaaaa0123",
        "stopped cleanly",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn v2_fixture_throttled_and_recovered_incidents_on_the_limited_parent() {
    let s = diagnose(&fixture("v2-high.ndjson"), None).unwrap();
    assert_eq!(s.skipped_count, 0, "{:?}", s.skipped);
    let recovered = Some("recovered_by_reclaim".to_string());
    let throttled = Some("throttled".to_string());
    let expected = [
        ("hard_overshoot", recovered.clone()),
        ("limit_hit", recovered),
        ("soft_overshoot", throttled.clone()),
        ("soft_overshoot", throttled),
    ];
    assert_eq!(kinds(&s), expected);
    assert!(s
        .incidents
        .iter()
        .all(|i| i.container.cgroup.as_deref() == Some("/system.slice/app.service")));
    let hard = &s.incidents[0];
    assert_eq!(
        (
            hard.reclaim.count,
            hard.reclaim.pages_reclaimed,
            hard.reclaim.failures
        ),
        (4, 256, 2)
    );
    assert_eq!(
        hard.top_tasks[0].comm, "worker",
        "the child cgroup's task charged the memory"
    );
    assert_eq!(hard.peak.as_ref().unwrap().excess_bytes, Some(5 << 20));
}

/// The fixture with the detector's own records interleaved, as `tracer run` writes them.
fn with_live_incidents(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut detector = Detector::new(DetectorOptions::default());
    let mut out = Vec::new();
    for line in text.lines() {
        let record: Record = serde_json::from_str(line).unwrap();
        if let Record::Stop(stop) = &record {
            out.extend(detector.finish(stop.at.clone()));
        }
        let incidents = detector.observe(&record);
        out.push(record);
        out.extend(incidents);
    }
    out
}

#[test]
fn live_and_rebuilt_incidents_are_compared() {
    let dir = tempfile::tempdir().unwrap();
    let live = with_live_incidents(&fixture("v1-oom.ndjson"));
    let agree = diagnose(&write_file(dir.path(), "live.ndjson", &ndjson(&live)), None).unwrap();
    assert_eq!(agree.agreement, Agreement::Agree);
    assert!(
        agree.live_incident_records >= 8,
        "{}",
        agree.live_incident_records
    );
    assert_eq!(
        agree.incidents.len(),
        4,
        "recorded incidents are not detector input"
    );
    // Tamper: drop the OOM incident's records and change another outcome.
    let tampered: Vec<Record> = live
        .into_iter()
        .filter(|r| !matches!(r, Record::Incident(i) if i.kind == IncidentKind::Oom))
        .map(|r| match r {
            Record::Incident(mut i)
                if i.kind == IncidentKind::SoftOvershoot && i.outcome.is_some() =>
            {
                i.outcome = Some(IncidentOutcome::Recovered);
                Record::Incident(i)
            }
            other => other,
        })
        .collect();
    let s = diagnose(
        &write_file(dir.path(), "tampered.ndjson", &ndjson(&tampered)),
        None,
    )
    .unwrap();
    let Agreement::Disagree {
        only_live,
        only_rebuilt,
        outcome_differs,
    } = &s.agreement
    else {
        panic!("{:?}", s.agreement)
    };
    assert!(only_live.is_empty());
    assert_eq!((only_rebuilt.len(), outcome_differs.len()), (1, 1));
    assert!(
        only_rebuilt[0].starts_with("oom-101-")
            && outcome_differs[0].starts_with("soft_overshoot-101-")
    );
    assert!(render_summary(&s).contains("DISAGREE"));
}

#[test]
fn truncated_and_corrupt_lines_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("v1-oom.ndjson")).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut damaged = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match n {
            3 => damaged.extend_from_slice(b"{\"type\":\"sample\",\"ts\":\xff\xfe}\n"),
            4 => damaged
                .extend_from_slice(b"{\"type\":\"from_the_future\",\"ts\":\"x\",\"mono_ns\":1}\n"),
            5 => damaged.extend_from_slice(b"   \n"),
            _ => {}
        }
        damaged.extend_from_slice(line);
        damaged.push(b'\n');
    }
    // Cut the stop record in half: the recording ends mid-line.
    damaged.truncate(damaged.len() - 30);
    let s = diagnose(&write_file(dir.path(), "damaged.ndjson", &damaged), None).unwrap();
    let skipped: Vec<u64> = s.skipped.iter().map(|l| l.line).collect();
    assert_eq!(skipped, [4, 6, 51]);
    assert!(
        s.skipped[0].reason.contains("not UTF-8"),
        "{:?}",
        s.skipped[0]
    );
    assert!(
        s.skipped[1].reason.contains("from_the_future"),
        "{:?}",
        s.skipped[1]
    );
    assert!(
        s.skipped[2].reason.starts_with("truncated last line"),
        "{:?}",
        s.skipped[2]
    );
    assert!(!s.stopped_cleanly);
    assert_eq!(
        s.incidents.len(),
        4,
        "everything before the damage still counts"
    );
    assert!(render_summary(&s).contains("skipped 3 unreadable line(s): 4, 6, 51"));
}

#[test]
fn garbage_never_panics_and_the_skip_list_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    // xorshift: deterministic random bytes, newlines included.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let s = diagnose(&write_file(dir.path(), "random.bin", &random), None).unwrap();
    assert_eq!((s.records, s.incidents.len()), (0, 0));
    assert!(s.skipped_count > SKIPPED_LINES_LISTED as u64);
    assert_eq!(s.skipped.len(), SKIPPED_LINES_LISTED);
    assert!(render_summary(&s).contains(&format!("(and {} more)", s.skipped_count - 20)));
    let empty = diagnose(&write_file(dir.path(), "empty", b""), None).unwrap();
    assert_eq!((empty.lines, empty.records, empty.skipped_count), (0, 0, 0));
    let json_but_not_records = b"null\n[]\n{}\n\"x\"\n{\"type\":\"sample\"}\n1e999999\n";
    let s = diagnose(
        &write_file(dir.path(), "odd.ndjson", json_but_not_records),
        None,
    )
    .unwrap();
    assert_eq!((s.records, s.skipped_count), (0, 6));
}

#[test]
fn huge_lines_are_skipped_without_losing_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.ndjson");
    let mut file = std::fs::File::create(&path).unwrap();
    let over = |usage| v2(usage, Some(100), None, &[]);
    file.write_all(&ndjson(&[sample(0, 1, "/x", over(120), &[])]))
        .unwrap();
    file.write_all(b"{\"type\":\"sample\",\"pad\":\"").unwrap();
    file.write_all(&vec![b'a'; MAX_LINE_BYTES + 10]).unwrap();
    file.write_all(b"\"}\n").unwrap();
    file.write_all(&ndjson(&[
        sample(1, 1, "/x", over(130), &[]),
        oom(1, 1, "/x", 5),
    ]))
    .unwrap();
    drop(file);
    let s = diagnose(&path, None).unwrap();
    assert_eq!((s.records, s.lines, s.skipped_count), (3, 4, 1));
    assert!(
        s.skipped[0].reason.contains("longer than"),
        "{:?}",
        s.skipped
    );
    assert_eq!(s.incidents[0].kind, IncidentKind::Oom);
}

#[test]
fn concatenated_recordings_are_separate_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = std::fs::read(fixture("v1-oom.ndjson")).unwrap();
    let two = std::fs::read(fixture("v2-high.ndjson")).unwrap();
    let path = write_file(dir.path(), "both.ndjson", &[one, two].concat());
    let s = diagnose(&path, None).unwrap();
    assert_eq!((s.segments, s.incidents.len()), (2, 8));
    assert_eq!(s.incidents[0].kind, IncidentKind::Oom);
}

#[test]
fn missing_file_is_the_only_error() {
    let err = diagnose(Path::new("/nonexistent/rec.ndjson"), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/rec.ndjson") && text.contains("tracer run --output"),
        "{text}"
    );
}

#[test]
fn report_files_are_written_and_every_svg_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    for name in ["v1-oom.ndjson", "v2-high.ndjson"] {
        let s = diagnose(&fixture(name), Some(&out)).unwrap();
        let files = s.report.as_ref().unwrap();
        assert_eq!(files.timelines.len(), s.incidents.len());
        let markdown = std::fs::read_to_string(&files.markdown).unwrap();
        for (svg_path, inc) in files.timelines.iter().zip(&s.incidents) {
            let svg = std::fs::read_to_string(svg_path).unwrap();
            let doc = roxmltree::Document::parse(&svg)
                .unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            assert!(
                svg.contains("usage") && svg.contains("hard limit"),
                "{}",
                svg_path.display()
            );
            let file = svg_path.file_name().unwrap().to_str().unwrap();
            assert!(
                markdown.contains(&format!("]({file})")),
                "report.md links {file}"
            );
            assert!(file.starts_with(&inc.id));
        }
        let html = std::fs::read_to_string(&files.html).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            s.incidents.len(),
            "timelines inline"
        );
        assert!(html.contains("Incidents, worst first") && !html.contains("<?xml"));
    }
    let s = diagnose(&fixture("v1-oom.ndjson"), Some(&out)).unwrap();
    let svg = std::fs::read_to_string(&s.report.unwrap().timelines[0]).unwrap();
    assert!(svg.contains("OOM stress[4242]"), "the OOM mark is drawn");
}
