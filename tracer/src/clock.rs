//! Converts the kernel's monotonic event times (`bpf_ktime_get_ns`) to wall-clock stamps.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::record::Stamp;

/// Maps CLOCK_MONOTONIC nanoseconds to wall-clock time using an offset measured once at start
/// (NTP slews after that are not followed; stamps stay consistent with each other).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime - monotonic, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    /// Measures the offset between CLOCK_REALTIME and CLOCK_MONOTONIC now.
    pub fn measure() -> Clock {
        let mono = monotonic_ns();
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Clock {
            offset_ns: real as i128 - mono as i128,
        }
    }

    /// A clock with a fixed offset (tests, replay).
    pub fn with_offset_ns(offset_ns: i128) -> Clock {
        Clock { offset_ns }
    }

    pub fn stamp(&self, mono_ns: u64) -> Stamp {
        let unix_ns = (mono_ns as i128 + self.offset_ns).max(0) as u128;
        let secs = (unix_ns / 1_000_000_000) as u64;
        let nanos = (unix_ns % 1_000_000_000) as u32;
        let time = UNIX_EPOCH + Duration::new(secs, nanos);
        Stamp {
            ts: humantime::format_rfc3339_nanos(time).to_string(),
            mono_ns,
        }
    }

    pub fn now(&self) -> Stamp {
        self.stamp(monotonic_ns())
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns()` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_add_the_offset() {
        let clock = Clock::with_offset_ns(1_700_000_000_000_000_000);
        let s = clock.stamp(5);
        assert_eq!(s.ts, "2023-11-14T22:13:20.000000005Z");
        assert_eq!(s.mono_ns, 5);
    }

    #[test]
    fn measured_clock_is_close_to_now() {
        let clock = Clock::measure();
        let now = clock.now();
        assert!(now.ts.starts_with("20"), "{}", now.ts);
    }
}
