//! One guest boot under QEMU/TCG (`/dev/kvm` does not work on our hosts), with its serial console
//! copied line by line to a log file and to stderr, and a hard deadline after which QEMU is killed.
use std::{
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

pub const QEMU: &str = "qemu-system-x86_64";

pub struct Boot<'a> {
    /// Prefix of every streamed console line, e.g. `6.1`.
    pub label: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub console_log: &'a Path,
    pub timeout: Duration,
}

/// What came out of one guest.
pub struct GuestRun {
    pub lines: Vec<String>,
    /// Set when QEMU was killed at the deadline.
    pub timed_out: bool,
    /// QEMU's own exit status (not the tests').
    pub status: Option<ExitStatus>,
    /// From start to the guest's first `@@VMTEST` line (kernel boot plus `/init` set-up).
    pub boot: Option<Duration>,
}

pub fn run(boot: &Boot) -> Result<GuestRun> {
    let log = File::create(boot.console_log)
        .with_context(|| format!("creating {}", boot.console_log.display()))?;
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "2048",
    ]);
    cmd.args([
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
    ]);
    cmd.arg("-kernel")
        .arg(boot.kernel)
        .arg("-initrd")
        .arg(boot.initrd);
    cmd.args(["-append", "console=ttyS0 quiet panic=-1"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().context("QEMU has no stdout pipe")?;
    let label = boot.label.to_string();
    let reader = thread::spawn(move || stream_console(stdout, log, &label, started));

    let (status, timed_out) = wait_until(&mut child, started + boot.timeout)?;
    // QEMU is gone, so the pipe is closed and the reader ends.
    let (lines, first_marker) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the console reader of the {} guest panicked", boot.label))?;
    Ok(GuestRun {
        lines,
        timed_out,
        status,
        boot: first_marker,
    })
}

/// Waits for QEMU to exit; kills it at `deadline`. Returns its status and whether it was killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<(Option<ExitStatus>, bool)> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok((Some(status), false));
        }
        if Instant::now() >= deadline {
            child.kill().context("killing QEMU at the deadline")?;
            child.wait().context("reaping QEMU after killing it")?;
            return Ok((None, true));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Copies console lines to `log` and stderr; returns them and when the first marker appeared.
fn stream_console(
    stdout: impl std::io::Read,
    mut log: File,
    label: &str,
    started: Instant,
) -> (Vec<String>, Option<Duration>) {
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let mut first_marker = None;
    let mut buf = Vec::new();
    let mut log_ok = true;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = printable(&String::from_utf8_lossy(&buf));
        if first_marker.is_none() && line.contains("@@VMTEST") {
            first_marker = Some(started.elapsed());
        }
        // A full disk must not stop the run: the lines are still judged from memory.
        if log_ok && writeln!(log, "{line}").is_err() {
            log_ok = false;
            eprintln!("[{label}] xtask: writing the console log failed; continuing without it");
        }
        eprintln!("[{label}] {line}");
        lines.push(line);
    }
    (lines, first_marker)
}

/// The line without its end and without terminal control sequences (SeaBIOS clears the screen),
/// so that CI logs stay readable.
fn printable(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI `ESC [ params final` or a two-character escape such as `ESC c`.
                if chars.next() == Some('[') {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_sequences_and_line_ends_are_dropped() {
        assert_eq!(
            printable("\u{1b}c\u{1b}[?7l\u{1b}[2JSeaBIOS (1.16)\r\n"),
            "SeaBIOS (1.16)"
        );
        assert_eq!(printable("test a ... ok\tx\n"), "test a ... ok\tx");
    }
}
