//! The guest's whole root file system: a gzip'd newc cpio with busybox, the agent, the test
//! executables, the shared libraries they link, and an `/init` that runs the tests and prints
//! the markers the host judges by (see `report`).
//!
//! The archive is written here rather than by `cpio` so that it can hold device nodes and root
//! ownership without the host needing root or `mknod`.
use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use super::Payload;

const BUSYBOX: &str = "/bin/busybox";
/// Where the agent lives in the guest (`TRACER_BIN`).
pub const GUEST_AGENT: &str = "/bin/tracer";
/// Where the tests' workload program lives in the guest (`TRACER_WORKLOAD`).
pub const GUEST_WORKLOAD: &str = "/bin/workload";

/// Writes the initramfs to `out` and returns the guest names of the test executables (the names
/// the markers use), in the order `/init` runs them.
pub fn build(payload: &Payload, filter: Option<&str>, out: &Path) -> Result<Vec<String>> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("{BUSYBOX} is missing: install busybox-static (cargo xtask setup --vm)");
    }
    let names = guest_names(&payload.tests);
    let mut files: Vec<(String, PathBuf)> = vec![
        ("bin/busybox".into(), BUSYBOX.into()),
        (
            GUEST_AGENT.trim_start_matches('/').into(),
            payload.agent.clone(),
        ),
    ];
    for (name, path) in names.iter().zip(&payload.tests) {
        files.push((format!("tests/{name}"), path.clone()));
    }
    if let Some(workload) = &payload.workload {
        files.push((
            GUEST_WORKLOAD.trim_start_matches('/').into(),
            workload.clone(),
        ));
    }
    let mut libraries = BTreeSet::new();
    for (_, path) in &files {
        libraries.extend(shared_libraries(path)?);
    }
    for lib in libraries {
        let guest = lib.to_string_lossy().trim_start_matches('/').to_string();
        files.push((guest, lib));
    }

    let partial = out.with_extension("partial");
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("starting gzip (to compress the initramfs); is gzip installed?")?;
    let stdin = gzip.stdin.take().context("gzip has no stdin pipe")?;
    let written = write_archive(
        io::BufWriter::new(stdin),
        &files,
        &init_script(&names, filter),
    );
    let status = gzip.wait().context("waiting for gzip")?;
    written.with_context(|| format!("writing the initramfs {}", partial.display()))?;
    if !status.success() {
        bail!(
            "gzip failed with {status} while writing {}",
            partial.display()
        );
    }
    fs::rename(&partial, out).with_context(|| format!("moving {} into place", out.display()))?;
    Ok(names)
}

fn write_archive<W: Write>(out: W, files: &[(String, PathBuf)], init: &str) -> Result<()> {
    let mut dirs: BTreeSet<String> = [
        "dev", "proc", "sys", "tmp", "run", "root", "bin", "sbin", "usr/bin", "usr/sbin", "tests",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let wanted: Vec<String> = dirs
        .iter()
        .cloned()
        .chain(files.iter().map(|(n, _)| n.clone()))
        .collect();
    for name in &wanted {
        let mut parent = Path::new(name).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    let mut archive = Newc::new(out);
    // Sorted, so every parent comes before its children (the kernel does not create parents).
    for dir in &dirs {
        archive.entry(dir, 0o040_755, 0, &mut io::empty())?;
    }
    archive.device("dev/console", 0o020_600, (5, 1))?;
    archive.device("dev/null", 0o020_666, (1, 3))?;
    archive.entry("init", 0o100_755, init.len() as u64, &mut init.as_bytes())?;
    for (name, host) in files {
        let mut src = File::open(host).with_context(|| format!("opening {}", host.display()))?;
        let len = src
            .metadata()
            .with_context(|| format!("stat {}", host.display()))?
            .len();
        archive.entry(name, 0o100_755, len, &mut src)?;
    }
    archive.finish()
}

/// File names for `/tests/`, made marker-safe (no spaces) and unique.
fn guest_names(tests: &[PathBuf]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tests
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let raw = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let mut name: String = raw
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if name.is_empty() || !seen.insert(name.clone()) {
                name = format!("{i}-{name}");
                seen.insert(name.clone());
            }
            name
        })
        .collect()
}

/// Libraries (with the dynamic loader) that `ldd` lists for `binary`; none for static ones.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd on {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed with {}: {}",
            binary.display(),
            out.status,
            stderr.trim()
        );
    }
    parse_ldd(&text).with_context(|| format!("libraries of {}", binary.display()))
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    bail!("ldd cannot find `{}` on this host", name.trim());
                }
                target
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or_default();
        // `linux-vdso.so.1 (0x...)` has no file: the kernel provides it.
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `/init`: mounts, cgroup v2 set-up, `tracer check`, each test executable between
/// markers, then power-off. Failures of set-up steps are printed but do not stop the run: the
/// tests that depend on them fail and say why.
fn init_script(tests: &[String], filter: Option<&str>) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
try() { "$@" || echo "@@VMTEST setup-failed: $*"; }
try mount -t proc proc /proc
try mount -t sysfs sysfs /sys
try mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
try mount -t devpts devpts /dev/pts
try mount -t tmpfs tmpfs /dev/shm
try mount -t tmpfs tmpfs /tmp
try mount -t tmpfs tmpfs /run
try mount -t cgroup2 cgroup2 /sys/fs/cgroup
try mount -t tracefs tracefs /sys/kernel/tracing
try mount -t debugfs debugfs /sys/kernel/debug
try mount -t bpf bpf /sys/fs/bpf
try ip link set lo up
for c in memory pids; do
    if grep -qw "$c" /sys/fs/cgroup/cgroup.controllers; then
        try sh -c "echo +$c > /sys/fs/cgroup/cgroup.subtree_control"
    fi
done
echo "@@VMTEST kernel $(uname -r)"
echo "@@VMTEST subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "@@VMTEST memory: $(grep MemTotal /proc/meminfo)"
"#,
    );
    s.push_str(&format!(
        "export TRACER_BIN={GUEST_AGENT} TRACER_WORKLOAD={GUEST_WORKLOAD} TRACER_IN_VM=1 RUST_BACKTRACE=1\n"
    ));
    s.push_str(&format!(
        "{GUEST_AGENT} check\necho \"@@VMTEST check rc=$?\"\n"
    ));
    s.push_str("run_test() {\n    name=$1; shift\n    echo \"@@VMTEST begin $name\"\n");
    s.push_str("    \"/tests/$name\" --test-threads=1 \"$@\" </dev/null\n");
    s.push_str("    echo \"@@VMTEST end $name rc=$?\"\n}\n");
    for name in tests {
        s.push_str(&format!("run_test {}", sh_quote(name)));
        if let Some(f) = filter {
            s.push_str(&format!(" {}", sh_quote(f)));
        }
        s.push('\n');
    }
    s.push_str("echo \"@@VMTEST done\"\nsync\npoweroff -f\n");
    s
}

/// A writer of the "new ASCII" cpio format the kernel unpacks (`070701`, no checksums).
struct Newc<W: Write> {
    out: W,
    next_ino: u32,
    offset: u64,
}

impl<W: Write> Newc<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            next_ino: 1,
            offset: 0,
        }
    }

    fn device(&mut self, name: &str, mode: u32, (major, minor): (u32, u32)) -> Result<()> {
        self.header(name, mode, 0, (major, minor))
    }

    fn entry(&mut self, name: &str, mode: u32, len: u64, data: &mut dyn io::Read) -> Result<()> {
        self.header(name, mode, len, (0, 0))?;
        let copied = io::copy(&mut io::Read::take(data, len), &mut self.out)
            .with_context(|| format!("copying the data of {name}"))?;
        if copied != len {
            bail!("{name} shrank while being archived ({copied} of {len} bytes)");
        }
        self.offset += len;
        self.pad()
    }

    fn header(&mut self, name: &str, mode: u32, len: u64, rdev: (u32, u32)) -> Result<()> {
        let size = u32::try_from(len).with_context(|| format!("{name} is over 4 GiB"))?;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let name_size = name.len() + 1;
        let fields = [
            self.next_ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
        ];
        let mut head = String::from("070701");
        for f in fields {
            head.push_str(&format!("{f:08x}"));
        }
        head.push_str(&format!("{name_size:08x}{:08x}{name}\0", 0));
        self.next_ino += 1;
        self.out
            .write_all(head.as_bytes())
            .context("writing a cpio header")?;
        self.offset += head.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> Result<()> {
        let fill = (4 - self.offset % 4) % 4;
        self.out
            .write_all(&[0; 3][..fill as usize])
            .context("writing cpio padding")?;
        self.offset += fill;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.entry("TRAILER!!!", 0, 0, &mut io::empty())?;
        self.out.flush().context("flushing the cpio archive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f95)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f95)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn archive_entries_are_aligned_newc_records() {
        let mut out = Vec::new();
        let mut archive = Newc::new(&mut out);
        archive
            .entry("bin", 0o040_755, 0, &mut io::empty())
            .unwrap();
        archive
            .entry("bin/x", 0o100_755, 5, &mut &b"hello"[..])
            .unwrap();
        archive.finish().unwrap();
        // Walk the records back: magic, name and data at 4-byte aligned offsets.
        let mut names = Vec::new();
        let mut at = 0;
        while at < out.len() {
            assert_eq!(&out[at..at + 6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&out[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                usize::from_str_radix(s, 16).unwrap()
            };
            let (size, name_size) = (field(6), field(11));
            let name = &out[at + 110..at + 110 + name_size - 1];
            names.push(String::from_utf8(name.to_vec()).unwrap());
            let data = (at + 110 + name_size).next_multiple_of(4);
            if names.last().unwrap() == "bin/x" {
                assert_eq!(&out[data..data + size], b"hello");
            }
            at = (data + size).next_multiple_of(4);
        }
        assert_eq!(names, ["bin", "bin/x", "TRAILER!!!"]);
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn init_runs_every_test_between_markers_with_the_filter_quoted() {
        let script = init_script(&["a-1".into(), "b-2".into()], Some("it's"));
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("run_test 'a-1' 'it'\\''s'\n"));
        assert!(script.contains("run_test 'b-2' 'it'\\''s'\n"));
        assert!(script.contains("--test-threads=1"));
        assert!(script.contains("echo +$c > /sys/fs/cgroup/cgroup.subtree_control"));
        assert!(
            script.contains("TRACER_BIN=/bin/tracer TRACER_WORKLOAD=/bin/workload TRACER_IN_VM=1")
        );
        let done = script.find("@@VMTEST done").unwrap();
        assert!(script.find("run_test 'b-2'").unwrap() < done);
        assert!(script.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn guest_names_are_unique_and_marker_safe() {
        let names = guest_names(&[
            PathBuf::from("/t/deps/cgroup_v2-abc"),
            PathBuf::from("/u/deps/cgroup_v2-abc"),
            PathBuf::from("/t/with space"),
        ]);
        assert_eq!(names, ["cgroup_v2-abc", "1-cgroup_v2-abc", "with_space"]);
    }

    #[test]
    fn every_parent_directory_precedes_its_entries() {
        let files = [(
            "lib/x86_64-linux-gnu/libc.so.6".to_string(),
            PathBuf::from("/dev/null"),
        )];
        let mut out = Vec::new();
        write_archive(&mut out, &files, "#!/bin/sh\n").unwrap();
        let text = String::from_utf8_lossy(&out);
        let at = |name: &str| text.find(&format!("{name}\0")).unwrap();
        assert!(at("usr") < at("usr/bin"));
        assert!(at("lib") < at("lib/x86_64-linux-gnu"));
        assert!(at("lib/x86_64-linux-gnu") < at("lib/x86_64-linux-gnu/libc.so.6"));
        assert!(at("dev") < at("dev/console"));
    }
}
