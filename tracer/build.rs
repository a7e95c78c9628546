//! Builds the eBPF object (tracer-ebpf, for bpfel-unknown-none with the nightly toolchain and
//! bpf-linker) through aya-build; the agent embeds it with `include_bytes_aligned!`.
use std::{fs, path::PathBuf};

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ebpf_dir = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("tracer crate has no parent directory"))?
        .join("tracer-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {ebpf_dir:?}"))?;
    let package = aya_build::Package {
        name: "tracer-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
        .context("building the eBPF programs failed; run `cargo xtask setup` to install the nightly rust-src and bpf-linker")?;

    // With AYA_BUILD_SKIP=1 (docs, lint-only builds) nothing is built: leave an empty object so the
    // agent still compiles; it then refuses to load with a clear error.
    let out = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR not set")?).join("tracer");
    if !out.exists() {
        fs::write(&out, b"").with_context(|| format!("writing placeholder {}", out.display()))?;
    }
    Ok(())
}
