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
}

pub fn build() -> Result<Payload> {
    let agent = match env::var_os("TRACER_VM_AGENT") {
        Some(path) => existing(PathBuf::from(path), "TRACER_VM_AGENT")?,
        None => build_agent()?,
    };
    let tests = match env::var("TRACER_VM_BINARIES") {
        Ok(list) => list
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| existing(PathBuf::from(p.trim()), "TRACER_VM_BINARIES"))
            .collect::<Result<Vec<_>>>()?,
        Err(_) => build_tests()?,
    };
    if tests.is_empty() {
        bail!("no test executables to run in the guests (TRACER_VM_BINARIES is empty?)");
    }
    Ok(Payload { agent, tests })
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

fn build_tests() -> Result<Vec<PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "integration-tests", "--release", "--no-run"]);
    let tests = artifacts(&mut cmd, |kinds, _| kinds.contains(&"test"))?;
    if tests.is_empty() {
        bail!("cargo test -p integration-tests --no-run produced no test executable");
    }
    Ok(tests)
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
        let msg = json::parse(line).with_context(|| format!("cargo printed bad JSON: {line}"))?;
        if msg.get("reason").and_then(json::Value::as_str) != Some("compiler-artifact") {
            continue;
        }
        let Some(exe) = msg.get("executable").and_then(json::Value::as_str) else {
            continue;
        };
        let target = msg.get("target");
        let name = target
            .and_then(|t| t.get("name"))
            .and_then(json::Value::as_str);
        let kinds: Vec<&str> = match target.and_then(|t| t.get("kind")) {
            Some(json::Value::Array(items)) => items.iter().filter_map(|k| k.as_str()).collect(),
            _ => Vec::new(),
        };
        if wanted(&kinds, name.unwrap_or_default()) {
            found.push(PathBuf::from(exe));
        }
    }
    Ok(found)
}

/// Just enough JSON to read cargo's messages (xtask stays free of serde).
mod json {
    use anyhow::{bail, Context as _, Result};

    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(String),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value> {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.at != p.s.len() {
            bail!("trailing data at byte {}", p.at);
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
                self.at += 1;
            }
        }

        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            let hit = self.s.get(self.at) == Some(&c);
            self.at += usize::from(hit);
            hit
        }

        fn value(&mut self) -> Result<Value> {
            self.ws();
            let c = *self.s.get(self.at).context("unexpected end of JSON")?;
            match c {
                b'{' => {
                    self.at += 1;
                    let mut fields = Vec::new();
                    if !self.eat(b'}') {
                        loop {
                            self.ws();
                            let key = self.string()?;
                            if !self.eat(b':') {
                                bail!("expected `:` at byte {}", self.at);
                            }
                            fields.push((key, self.value()?));
                            if self.eat(b'}') {
                                break;
                            }
                            if !self.eat(b',') {
                                bail!("expected `,` or `}}` at byte {}", self.at);
                            }
                        }
                    }
                    Ok(Value::Object(fields))
                }
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    if !self.eat(b']') {
                        loop {
                            items.push(self.value()?);
                            if self.eat(b']') {
                                break;
                            }
                            if !self.eat(b',') {
                                bail!("expected `,` or `]` at byte {}", self.at);
                            }
                        }
                    }
                    Ok(Value::Array(items))
                }
                b'"' => Ok(Value::String(self.string()?)),
                _ => {
                    let start = self.at;
                    while self
                        .s
                        .get(self.at)
                        .is_some_and(|c| !b",}] \t\r\n".contains(c))
                    {
                        self.at += 1;
                    }
                    match &self.s[start..self.at] {
                        b"null" => Ok(Value::Null),
                        b"true" => Ok(Value::Bool(true)),
                        b"false" => Ok(Value::Bool(false)),
                        n if !n.is_empty() && n.iter().all(|c| b"+-.eE0123456789".contains(c)) => {
                            Ok(Value::Number(String::from_utf8_lossy(n).into_owned()))
                        }
                        _ => bail!("unexpected token at byte {start}"),
                    }
                }
            }
        }

        fn string(&mut self) -> Result<String> {
            if self.s.get(self.at) != Some(&b'"') {
                bail!("expected a string at byte {}", self.at);
            }
            self.at += 1;
            let mut out = Vec::new();
            loop {
                let c = *self.s.get(self.at).context("unterminated string")?;
                self.at += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let e = *self.s.get(self.at).context("unterminated escape")?;
                        self.at += 1;
                        let ch = match e {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'u' => self.unicode_escape()?,
                            other => char::from(other),
                        };
                        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    _ => out.push(c),
                }
            }
            String::from_utf8(out).context("string is not UTF-8")
        }

        fn unicode_escape(&mut self) -> Result<char> {
            let hex = |p: &mut Self| -> Result<u32> {
                let digits = p.s.get(p.at..p.at + 4).context("short \\u escape")?;
                p.at += 4;
                u32::from_str_radix(std::str::from_utf8(digits)?, 16).context("bad \\u escape")
            };
            let first = hex(self)?;
            let code = if (0xd800..0xdc00).contains(&first) && self.s[self.at..].starts_with(b"\\u")
            {
                self.at += 2;
                let low = hex(self)?;
                0x10000 + ((first - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff)
            } else {
                first
            };
            Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json::{parse, Value};
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

    #[test]
    fn cargo_artifact_message_fields_are_read() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#0.1.0","target":{"kind":["test"],"crate_types":["bin"],"name":"cgroup_v2","test":true},"profile":{"opt_level":"3","debuginfo":null,"debug_assertions":false},"features":[],"filenames":["/w/target/release/deps/cgroup_v2-1a2b"],"executable":"/w/target/release/deps/cgroup_v2-1a2b","fresh":true}"#;
        let msg = parse(line).unwrap();
        assert_eq!(
            msg.get("reason").and_then(Value::as_str),
            Some("compiler-artifact")
        );
        let kind = msg.get("target").and_then(|t| t.get("kind"));
        assert_eq!(
            kind,
            Some(&Value::Array(vec![Value::String("test".into())]))
        );
        assert_eq!(
            msg.get("executable").and_then(Value::as_str),
            Some("/w/target/release/deps/cgroup_v2-1a2b")
        );
        assert_eq!(
            msg.get("profile").and_then(|p| p.get("debuginfo")),
            Some(&Value::Null)
        );
    }

    #[test]
    fn escapes_and_errors() {
        let v = parse(r#"{"p":"a\"b\\c\u00e9\ud83d\ude00","n":-1.5e3,"t":true}"#).unwrap();
        assert_eq!(v.get("p").and_then(Value::as_str), Some("a\"b\\cé😀"));
        assert_eq!(v.get("n"), Some(&Value::Number("-1.5e3".into())));
        assert!(parse(r#"{"a":}"#).is_err());
        assert!(parse(r#"{"a":1"#).is_err());
        assert!(parse(r#"{"a":1} x"#).is_err());
    }
}
