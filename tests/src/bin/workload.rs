//! Deterministic memory workloads the integration tests run inside their own cgroups.
//!
//! workload anon MIB [HOLD_MS]     touch MIB of anonymous memory, keep it HOLD_MS, exit
//! workload file PATH MIB          write MIB to PATH (page cache), fsync, exit
//! workload dentry DIR N           create and stat N unique empty files in DIR
//! workload hog                    allocate anonymous memory 1 MiB at a time until killed
//! workload anon-hold MIB MARKER   touch MIB of anonymous memory, create MARKER, keep the memory
//!                                 until MARKER is removed (at most 120 s), exit
//! workload negdentry DIR N        look up N names that do not exist in DIR (negative dentries:
//!                                 unpinned and on the LRU, on any filesystem, tmpfs included)
use std::{io::Write, time::Duration};

const MIB: usize = 1 << 20;

fn touch_anon(mib: usize) -> Vec<Vec<u8>> {
    let mut chunks = Vec::with_capacity(mib);
    for _ in 0..mib {
        // Non-zero bytes so every page is really faulted in and charged.
        chunks.push(vec![0x5a_u8; MIB]);
    }
    chunks
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    match args.first().map(String::as_str) {
        Some("anon") => {
            let chunks = touch_anon(num(1));
            std::thread::sleep(Duration::from_millis(num(2) as u64));
            drop(chunks);
        }
        Some("file") => {
            let mut f = std::fs::File::create(&args[1]).expect("create file");
            let buf = vec![0xa5_u8; MIB];
            for _ in 0..num(2) {
                f.write_all(&buf).expect("write");
            }
            f.sync_all().expect("fsync");
        }
        Some("dentry") => {
            let dir = std::path::Path::new(&args[1]);
            std::fs::create_dir_all(dir).expect("create dir");
            for i in 0..num(2) {
                let p = dir.join(format!("entry-{i:08}"));
                std::fs::File::create(&p).expect("create entry");
                let _ = std::fs::metadata(&p);
            }
        }
        Some("hog") => {
            let mut chunks = Vec::new();
            loop {
                chunks.push(vec![0x5a_u8; MIB]);
            }
        }
        Some("anon-hold") => {
            let chunks = touch_anon(num(1));
            let marker = std::path::Path::new(&args[2]);
            std::fs::write(marker, std::process::id().to_string()).expect("create marker");
            // Bounded so a workload whose test died does not hold memory for ever.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while marker.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(chunks);
        }
        Some("negdentry") => {
            let dir = std::path::Path::new(&args[1]);
            std::fs::create_dir_all(dir).expect("create dir");
            for i in 0..num(2) {
                let _ = std::fs::metadata(dir.join(format!("absent-{i:08}")));
            }
        }
        _ => {
            eprintln!(
                "usage: workload anon MIB [HOLD_MS] | file PATH MIB | dentry DIR N | hog \
                 | anon-hold MIB MARKER | negdentry DIR N"
            );
            std::process::exit(2);
        }
    }
}
