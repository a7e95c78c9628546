//! The memory reclamation tracer's agent library.
//!
//! Everything except [`loader`] is plain Rust over bytes, strings and files, unit-tested without
//! root or a kernel; only the loader touches aya.
pub mod accountant;
pub mod adaptive;
pub mod agent;
pub mod analysis;
pub mod btf;
pub mod cgroup_layout;
pub mod cgroup_tree;
pub mod cgroupfs;
mod class_sums;
pub mod clock;
pub mod decode;
pub mod detector;
pub mod diagnose;
pub mod identity;
pub mod incident;
mod incident_state;
pub mod kernel;
pub mod loader;
pub mod names;
pub mod pipeline;
mod reclaim_window;
pub mod record;
pub mod recording;
pub mod report;
pub mod sampler;
pub mod summary;
pub mod symbols;
#[cfg(test)]
mod test_records;
pub mod timeline;
pub mod tracefs;
