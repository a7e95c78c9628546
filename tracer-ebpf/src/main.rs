//! eBPF programs of the memory reclamation tracer: one module per probe family.
//!
//! Entry points are thin: they call a `try_*` function and map its `Result` to a return code.
//! Hot per-page tracepoints only update per-CPU aggregation maps; discrete events are reserved
//! directly in the ring buffer (never built on the stack) and every failed reserve is counted.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod context;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects code that could reach it.
    loop {}
}

/// bpf_probe_read_kernel and friends are GPL-only helpers.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // Built for the host only by workspace-wide cargo commands (clippy, check); the real object is
    // built for bpfel-unknown-none by tracer/build.rs through aya-build.
}
