//! What the guest runs: the agent and every integration test executable cargo builds.
//!
//! `TRACER_VM_AGENT=/path/tracer` and `TRACER_VM_BINARIES=/path/a,/path/b` replace the cargo
//! builds (to try the harness with stand-ins, or to run prebuilt executables).
use std::{
    env,
    io::Read as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use crate::util::cargo;

pub struct Payload {
    pub agent: PathBuf,
    pub tests: Vec<PathBuf>,
    /// The integration tests' workload program (`TRACER_WORKLOAD` in the guest).
    pub workload: Option<PathBuf>,
}

pub fn build() -> Result<Payload> {
    let agent = match env::var_os("TRACER_VM_AGENT") {
        Some(path) => existing(PathBuf::from(path), "TRACER_VM_AGENT")?,
        None => build_agent()?,
    };
    let (tests, workload) = match env::var("TRACER_VM_BINARIES") {
        Ok(list) => (
            list.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| existing(PathBuf::from(p.trim()), "TRACER_VM_BINARIES"))
                .collect::<Result<Vec<_>>>()?,
            None,
        ),
        Err(_) => build_tests()?,
    };
    if tests.is_empty() {
        bail!("no test executables to run in the guests (TRACER_VM_BINARIES is empty?)");
    }
    Ok(Payload {
        agent,
        tests,
        workload,
    })
}

fn existing(path: PathBuf, var: &str) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("{var} names {}, which is not a file", path.display());
    }
    Ok(path)
}

fn build_agent() -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "tracer"]);
    let bins = artifacts(&mut cmd, |kinds, name| {
        name == "tracer" && kinds.contains(&"bin")
    })?;
    bins.into_iter()
        .next()
        .context("cargo build -p tracer produced no `tracer` executable")
}

/// The integration test executables and the workload program they drive.
fn build_tests() -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "integration-tests", "--release", "--no-run"]);
    let all = artifacts(&mut cmd, |kinds, name| {
        kinds.contains(&"test") || (name == "workload" && kinds.contains(&"bin"))
    })?;
    let (workload, tests): (Vec<PathBuf>, Vec<PathBuf>) = all
        .into_iter()
        .partition(|p| p.file_name().is_some_and(|n| n == "workload"));
    if tests.is_empty() {
        bail!("cargo test -p integration-tests --no-run produced no test executable");
    }
    Ok((tests, workload.into_iter().next()))
}

/// Runs a cargo build with JSON messages on stdout (diagnostics still rendered on stderr) and
/// returns the `executable` of each compiler artifact whose target `wanted(kinds, name)`.
fn artifacts(cmd: &mut Command, wanted: impl Fn(&[&str], &str) -> bool) -> Result<Vec<PathBuf>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut text = String::new();
    child
        .stdout
        .take()
        .context("cargo has no stdout pipe")?
        .read_to_string(&mut text)
        .with_context(|| format!("reading the JSON messages of {cmd:?}"))?;
    let status = child
        .wait()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    executables(&text, wanted)
}

/// The `executable` of each `compiler-artifact` message whose target `wanted(kinds, name)`.
fn executables(messages: &str, wanted: impl Fn(&[&str], &str) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let msg: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("cargo printed bad JSON: {line}"))?;
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let name = msg["target"]["name"].as_str();
        let kinds: Vec<&str> = msg["target"]["kind"]
            .as_array()
            .map(|items| items.iter().filter_map(|k| k.as_str()).collect())
            .unwrap_or_default();
        if wanted(&kinds, name.unwrap_or_default()) {
            found.push(PathBuf::from(exe));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `cargo test --release --no-run --message-format=json-render-diagnostics`
    /// for a crate with a lib, a `bench` bin and two integration tests (paths shortened).
    const NO_RUN: &str = include_str!("fixtures/cargo-test-no-run.jsonl");

    #[test]
    fn integration_test_executables_are_every_test_kind_artifact() {
        let tests = executables(NO_RUN, |kinds, _| kinds.contains(&"test")).unwrap();
        assert_eq!(
            tests,
            [
                PathBuf::from("/w/target/release/deps/alpha-93d7ada27628950a"),
                PathBuf::from("/w/target/release/deps/beta-a7fb68cbae8dfb24")
            ]
        );
        let bins = executables(NO_RUN, |kinds, name| {
            name == "bench" && kinds.contains(&"bin")
        })
        .unwrap();
        assert!(
            bins.contains(&PathBuf::from("/w/target/release/bench")),
            "{bins:?}"
        );
    }
}
