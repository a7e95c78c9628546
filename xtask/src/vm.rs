//! `cargo xtask vm-test`: the integration suite inside QEMU guests (placeholder until the
//! harness lands; reports plainly that it is not available).
use anyhow::{bail, Result};

pub fn qemu_available() -> bool {
    false
}

pub fn vm_test(kernel: &str, _filter: Option<&str>) -> Result<()> {
    bail!("vm-test for kernel {kernel}: the QEMU harness is not built yet")
}
