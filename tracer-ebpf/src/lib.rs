//! Library target so `tracer` can name this crate as a build-dependency: cargo then rebuilds the
//! agent when the eBPF sources change (the programs themselves live in the `tracer` binary target).
#![no_std]
