//! Debian cloud kernels for the matrix, fetched once into `target/vm-cache/<version>/`.
//!
//! The cloud flavour is small and has everything the guest needs built in (cgroup2, tracefs,
//! BTF, serial console), so no modules go into the initramfs. A cached kernel is used as is:
//! apt is only touched when `vmlinuz` or the `package` stamp is missing.
use std::{
    cmp::Ordering,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{output, run_status};

/// A kernel ready to boot.
pub struct Kernel {
    /// The Debian package it came from, e.g. `linux-image-6.1.0-56-cloud-amd64-unsigned`.
    pub package: String,
    pub vmlinuz: PathBuf,
}

/// Name of the stamp file written last, so an interrupted fetch is redone.
const PACKAGE_STAMP: &str = "package";
const VMLINUZ: &str = "vmlinuz";
const FLAVOUR_SUFFIX: &str = "-cloud-amd64-unsigned";

/// The cached kernel for `version` ("6.1", "6.12", ...) in `dir`, fetched with apt when missing.
pub fn ensure(dir: &Path, version: &str) -> Result<Kernel> {
    check_version(version)?;
    let vmlinuz = dir.join(VMLINUZ);
    let stamp = dir.join(PACKAGE_STAMP);
    if vmlinuz.is_file() {
        if let Ok(package) = fs::read_to_string(&stamp) {
            return Ok(Kernel {
                package: package.trim().to_string(),
                vmlinuz,
            });
        }
    }
    let package = resolve_package(version)?;
    eprintln!(
        "xtask: vm {version}: fetching {package} into {}",
        dir.display()
    );
    fetch(dir, &package)?;
    fs::write(&stamp, format!("{package}\n"))
        .with_context(|| format!("writing the cache stamp {}", stamp.display()))?;
    Ok(Kernel { package, vmlinuz })
}

/// Only `major.minor` is accepted: it goes into an apt search pattern.
pub fn check_version(version: &str) -> Result<()> {
    let mut parts = version.split('.');
    let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
        if !a.is_empty() && !b.is_empty()
            && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()));
    if !ok {
        bail!("kernel version `{version}` is not of the form MAJOR.MINOR (e.g. 6.1, 6.12, or all)");
    }
    Ok(())
}

/// The newest installable `linux-image-<version>.*-cloud-amd64-unsigned` package.
fn resolve_package(version: &str) -> Result<String> {
    let mut names = search_packages(version)?;
    if names.is_empty() {
        eprintln!(
            "xtask: vm {version}: no kernel package in the apt lists; running apt-get update"
        );
        run_status(Command::new("apt-get").args(["update", "-qq"]))
            .context("apt-get update (to find a kernel package for the QEMU matrix) failed")?;
        names = search_packages(version)?;
    }
    names.sort_by(|a, b| natural_cmp(b, a));
    for name in &names {
        let policy = output(Command::new("apt-cache").args(["policy", name]))
            .with_context(|| format!("apt-cache policy {name} failed"))?;
        if has_candidate(&policy) {
            return Ok(name.clone());
        }
    }
    bail!(
        "no installable Debian package linux-image-{version}.*{FLAVOUR_SUFFIX} found \
         (candidates seen: {names:?}); this needs Debian bookworm's main/security sources in apt"
    )
}

fn search_packages(version: &str) -> Result<Vec<String>> {
    let pattern = format!(
        "^linux-image-{}\\.[0-9].*{FLAVOUR_SUFFIX}$",
        version.replace('.', "\\.")
    );
    let listing = output(Command::new("apt-cache").args(["search", "--names-only", &pattern]))
        .with_context(|| format!("apt-cache search {pattern} failed"))?;
    Ok(matching_packages(&listing, version))
}

/// Package names from `apt-cache search` output that really are the wanted kernel flavour.
fn matching_packages(listing: &str, version: &str) -> Vec<String> {
    let prefix = format!("linux-image-{version}.");
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&prefix) && name.ends_with(FLAVOUR_SUFFIX))
        .map(str::to_string)
        .collect()
}

fn has_candidate(policy: &str) -> bool {
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .any(|c| c.trim() != "(none)")
}

/// Orders embedded numbers by value, so `6.1.0-56` > `6.1.0-9` and `6.12.117` > `6.12.99`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..la]), trim_zeros(&b[..lb]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[la..], &b[lb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

/// Downloads and unpacks `package`, keeping only `vmlinuz` and `config` (the modules are not used).
fn fetch(dir: &Path, package: &str) -> Result<()> {
    let download = dir.join("download");
    let unpacked = dir.join("unpacked");
    for d in [&download, &unpacked] {
        if d.exists() {
            fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
        }
    }
    fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
    run_status(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(&download),
    )
    .with_context(|| format!("apt-get download {package} failed"))?;
    let deb = only_entry(&download, ".deb")?;
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))
        .with_context(|| format!("unpacking {} with dpkg-deb -x", deb.display()))?;
    let boot = unpacked.join("boot");
    let vmlinuz = find_prefixed(&boot, "vmlinuz-")?;
    let staged = dir.join("vmlinuz.partial");
    fs::copy(&vmlinuz, &staged).with_context(|| format!("copying {}", vmlinuz.display()))?;
    if let Ok(config) = find_prefixed(&boot, "config-") {
        fs::copy(&config, dir.join("config"))
            .with_context(|| format!("copying {}", config.display()))?;
    }
    fs::rename(&staged, dir.join(VMLINUZ))
        .with_context(|| format!("moving {} into place", staged.display()))?;
    fs::remove_dir_all(&download).with_context(|| format!("removing {}", download.display()))?;
    fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    Ok(())
}

/// The single file in `dir` whose name ends with `suffix`.
fn only_entry(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let mut found = entries(dir)?
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect::<Vec<_>>();
    if found.len() != 1 {
        bail!(
            "expected one *{suffix} file in {}, found {found:?}",
            dir.display()
        );
    }
    Ok(found.remove(0))
}

fn find_prefixed(dir: &Path, prefix: &str) -> Result<PathBuf> {
    entries(dir)?
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .with_context(|| {
            format!(
                "no {prefix}* in {} (is this a kernel image package?)",
                dir.display()
            )
        })
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    read.map(|e| {
        e.map(|e| e.path())
            .with_context(|| format!("listing {}", dir.display()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = [
            "linux-image-6.1.0-9-cloud-amd64-unsigned",
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
            "linux-image-6.1.0-100-cloud-amd64-unsigned",
            "linux-image-6.1.0-54-cloud-amd64-unsigned",
        ];
        names.sort_by(|a, b| natural_cmp(b, a));
        assert_eq!(names[0], "linux-image-6.1.0-100-cloud-amd64-unsigned");
        assert_eq!(names[3], "linux-image-6.1.0-9-cloud-amd64-unsigned");
        assert_eq!(
            natural_cmp("6.12.117+deb12", "6.12.99+deb12"),
            Ordering::Greater
        );
        assert_eq!(natural_cmp("a007", "a7"), Ordering::Equal);
    }

    #[test]
    fn search_output_keeps_only_the_flavour_of_that_version() {
        let listing = "\
linux-image-6.1.0-55-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-55-cloud-amd64-dbg - Debug symbols for linux-image-6.1.0-55-cloud-amd64
linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
";
        assert_eq!(
            matching_packages(listing, "6.1"),
            [
                "linux-image-6.1.0-55-cloud-amd64-unsigned",
                "linux-image-6.1.0-56-cloud-amd64-unsigned"
            ]
        );
        assert_eq!(
            matching_packages(listing, "6.12"),
            ["linux-image-6.12.117+deb12-cloud-amd64-unsigned"]
        );
    }

    #[test]
    fn candidate_none_is_not_installable() {
        assert!(has_candidate(
            "pkg:\n  Installed: (none)\n  Candidate: 6.1.158-1\n"
        ));
        assert!(!has_candidate(
            "pkg:\n  Installed: (none)\n  Candidate: (none)\n"
        ));
    }

    #[test]
    fn only_major_minor_versions_are_accepted() {
        assert!(check_version("6.1").is_ok());
        assert!(check_version("6.12").is_ok());
        assert!(check_version("6").is_err());
        assert!(check_version("6.1.0").is_err());
        assert!(check_version("6.*").is_err());
    }
}
