//! Pass/fail of one guest, decided only from the console markers `/init` prints:
//! `@@VMTEST begin <test>`, `@@VMTEST end <test> rc=<code>`, `@@VMTEST done`.
//! A missing marker is a failure: the guest died, hung or was cut off.

const MARKER: &str = "@@VMTEST ";

/// What the console of one guest says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Empty when the kernel passed.
    pub problems: Vec<String>,
    /// Sums of the libtest `test result:` lines.
    pub passed: u64,
    pub failed: u64,
    /// `uname -r` as the guest printed it.
    pub release: Option<String>,
}

/// Judges a guest console against the test executables `/init` was told to run.
pub fn judge(lines: &[String], tests: &[String], timed_out: Option<u64>) -> Judgement {
    let mut judgement = Judgement::default();
    let mut ends: Vec<(String, Option<i32>)> = Vec::new();
    let mut begun: Vec<String> = Vec::new();
    let mut done = false;
    for line in lines {
        if let Some((passed, failed)) = libtest_result(line) {
            judgement.passed += passed;
            judgement.failed += failed;
        }
        // Anywhere in the line: a kernel message may have been printed in front of it.
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let mut words = line[at + MARKER.len()..].split_whitespace();
        match words.next() {
            Some("kernel") => judgement.release = words.next().map(str::to_string),
            Some("begin") => begun.extend(words.next().map(str::to_string)),
            Some("end") => {
                if let Some(name) = words.next() {
                    let rc = words
                        .next()
                        .and_then(|w| w.strip_prefix("rc=")?.parse().ok());
                    ends.push((name.to_string(), rc));
                }
            }
            Some("done") => done = true,
            _ => {}
        }
    }
    for test in tests {
        let problem = match ends.iter().find(|(name, _)| name == test) {
            Some((_, Some(0))) => continue,
            Some((_, Some(rc))) => format!("{test} exited with rc={rc}"),
            Some((_, None)) => format!("{test}: unreadable end marker"),
            None if begun.contains(test) => match timed_out {
                Some(secs) => format!("timed out after {secs} s while running {test}"),
                None => format!("{test} started but never finished (guest died)"),
            },
            None => format!("{test} never ran"),
        };
        judgement.problems.push(problem);
    }
    let hang_reported = timed_out.is_some()
        && judgement
            .problems
            .iter()
            .any(|p| p.starts_with("timed out"));
    if !done && !hang_reported {
        let why = match timed_out {
            Some(secs) => format!("timed out after {secs} s: no `@@VMTEST done`"),
            None => "the guest stopped without `@@VMTEST done`".to_string(),
        };
        judgement.problems.push(why);
    }
    judgement
}

/// `(passed, failed)` of a libtest summary line
/// `test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; ...`.
fn libtest_result(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find("test result: ")?..];
    let count = |what: &str| {
        rest.split(';').find_map(|part| {
            let mut words = part.split_whitespace().rev();
            (words.next() == Some(what)).then(|| words.next()?.parse().ok())?
        })
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    const PASSING: &str = "\
@@VMTEST kernel 6.1.0-56-cloud-amd64
@@VMTEST begin a
test one ... ok
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
@@VMTEST end a rc=0
[    3.1] random: crng init done@@VMTEST begin b
test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
@@VMTEST end b rc=0
@@VMTEST done
";

    #[test]
    fn every_test_rc_zero_and_done_passes_with_summed_counts() {
        let j = judge(&lines(PASSING), &["a".into(), "b".into()], None);
        assert!(j.problems.is_empty(), "{:?}", j.problems);
        assert_eq!((j.passed, j.failed), (3, 1));
        assert_eq!(j.release.as_deref(), Some("6.1.0-56-cloud-amd64"));
    }

    #[test]
    fn nonzero_rc_and_missing_tests_fail() {
        let text = PASSING.replace("end b rc=0", "end b rc=101");
        let j = judge(&lines(&text), &["a".into(), "b".into(), "c".into()], None);
        assert_eq!(j.problems, ["b exited with rc=101", "c never ran"]);
    }

    #[test]
    fn a_hang_names_the_running_test_and_the_timeout() {
        let text = "@@VMTEST begin a\n@@VMTEST end a rc=0\n@@VMTEST begin b\ntest x ... ";
        let j = judge(&lines(text), &["a".into(), "b".into()], Some(30));
        assert_eq!(j.problems, ["timed out after 30 s while running b"]);
    }

    #[test]
    fn a_guest_that_dies_or_hangs_without_done_fails_even_with_all_ends() {
        let text = "@@VMTEST begin a\n@@VMTEST end a rc=0\nKernel panic - not syncing";
        let j = judge(&lines(text), &["a".into()], None);
        assert_eq!(j.problems, ["the guest stopped without `@@VMTEST done`"]);
        let j = judge(&lines(text), &["a".into()], Some(30));
        assert_eq!(j.problems, ["timed out after 30 s: no `@@VMTEST done`"]);
    }

    #[test]
    fn libtest_summary_lines_are_parsed() {
        assert_eq!(
            libtest_result("test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured"),
            Some((12, 0))
        );
        assert_eq!(libtest_result("test foo ... ok"), None);
    }
}
