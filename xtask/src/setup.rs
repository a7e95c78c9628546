//! `cargo xtask setup`: install what a fresh machine lacks, idempotently.
//!
//! Each piece is checked first and only installed when missing, so a second run is a fast no-op.
//! A piece that cannot be installed stops setup with an error naming the piece and the command.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{output, run_status};

pub struct SetupOptions {
    /// Also install the QEMU kernel-matrix packages.
    pub vm: bool,
}

/// bpf-linker version known to build against the nightly toolchain's own libLLVM here.
const BPF_LINKER_VERSION: &str = "0.13.0";
const NIGHTLY: &str = "nightly";
/// Debian packages the QEMU kernel matrix needs.
const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "cpio"];

pub fn setup(opts: SetupOptions) -> Result<()> {
    let started = std::time::Instant::now();
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    if opts.vm {
        ensure_debian_packages(VM_PACKAGES)?;
    }
    ensure_tracefs()?;
    eprintln!("xtask: setup complete in {:.1?}", started.elapsed());
    Ok(())
}

fn rustup() -> Command {
    Command::new("rustup")
}

fn ensure_nightly() -> Result<()> {
    let list = output(rustup().args(["toolchain", "list"]))
        .context("setup piece `rustup`: `rustup toolchain list` failed; is rustup installed?")?;
    if list.lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    eprintln!("xtask: installing the nightly toolchain (eBPF programs need -Z build-std)");
    run_status(rustup().args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))
        .context("setup piece `nightly toolchain`: `rustup toolchain install nightly` failed")
}

fn ensure_rust_src() -> Result<()> {
    let installed =
        output(rustup().args(["component", "list", "--installed", "--toolchain", NIGHTLY]))
            .context("setup piece `rust-src`: listing nightly components failed")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to nightly (needed for -Z build-std=core)");
    run_status(rustup().args(["component", "add", "rust-src", "--toolchain", NIGHTLY])).context(
        "setup piece `rust-src`: `rustup component add rust-src --toolchain nightly` failed",
    )
}

/// LLVM major version of the nightly rustc (bpf-linker must link the same major).
fn nightly_llvm_major() -> Result<u32> {
    let vv = output(Command::new("rustup").args(["run", NIGHTLY, "rustc", "-vV"]))
        .context("setup piece `bpf-linker`: `rustc +nightly -vV` failed")?;
    let line = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("setup piece `bpf-linker`: `rustc +nightly -vV` printed no LLVM version")?;
    line.split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .with_context(|| format!("setup piece `bpf-linker`: cannot parse LLVM version {line:?}"))
}

/// Persistent prefix holding links to the nightly toolchain's libLLVM (bpf-linker gets an rpath
/// to it, so it must not live in /tmp).
fn llvm_prefix(major: u32) -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("tracer-toolchain").join(format!("llvm-{major}"))
}

fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        })
        .unwrap_or(false)
}

fn ensure_bpf_linker() -> Result<()> {
    if bpf_linker_works() {
        return Ok(());
    }
    let major = nightly_llvm_major()?;
    let sysroot =
        output(Command::new("rustup").args(["run", NIGHTLY, "rustc", "--print", "sysroot"]))
            .context("setup piece `bpf-linker`: `rustc +nightly --print sysroot` failed")?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    // The real shared object; the `libLLVM.so` beside it may be a linker script.
    let so = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("setup piece `bpf-linker`: reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.ends_with("-nightly"))
        })
        .with_context(|| {
            format!(
                "setup piece `bpf-linker`: no libLLVM.so.*-nightly in {}; the nightly toolchain \
                 must ship its LLVM shared library",
                lib_dir.display()
            )
        })?;
    let prefix = llvm_prefix(major);
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib).with_context(|| {
        format!(
            "setup piece `bpf-linker`: creating {}",
            prefix_lib.display()
        )
    })?;
    let so_name = so.file_name().context("libLLVM path has no file name")?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(so_name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&so, &link).with_context(|| {
            format!(
                "setup piece `bpf-linker`: linking {} -> {}",
                link.display(),
                so.display()
            )
        })?;
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against {} (LLVM {major}); takes 1-2 min",
        so.display()
    );
    let feature = format!("llvm-{major}");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
    ]);
    cmd.args(["--no-default-features", "--features", &feature]);
    cmd.env("LLVM_PREFIX", &prefix);
    run_status(&mut cmd).with_context(|| {
        format!(
            "setup piece `bpf-linker`: `LLVM_PREFIX={} cargo install bpf-linker@{BPF_LINKER_VERSION} \
             --locked --no-default-features --features {feature}` failed",
            prefix.display()
        )
    })?;
    if !bpf_linker_works() {
        bail!("setup piece `bpf-linker`: installed, but `bpf-linker --version` does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run_status(Command::new("apt-get").arg("update").arg("-qq"))
        .context("setup piece `Debian packages`: `apt-get update` failed")?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing);
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    run_status(&mut cmd).with_context(|| {
        format!(
            "setup piece `Debian packages`: `apt-get install -y {}` failed",
            missing.join(" ")
        )
    })
}

fn ensure_tracefs() -> Result<()> {
    let root = Path::new("/sys/kernel/tracing");
    if root.join("events").is_dir() {
        return Ok(());
    }
    if !crate::util::is_root() {
        eprintln!("xtask: tracefs is not mounted and we are not root; the agent will mount it");
        return Ok(());
    }
    run_status(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
        .context("setup piece `tracefs`: `mount -t tracefs nodev /sys/kernel/tracing` failed")
}
