//! Rebuild the eBPF object when bpf-linker changes (it is the linker of the bpf target), as the
//! aya template does; cargo does not track the linker on its own.
use which::which;

fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!(
            "cargo:warning=bpf-linker not found on PATH ({err}); run `cargo xtask setup` to install it"
        ),
    }
}
