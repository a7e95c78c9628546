//! Adaptive tracing: the per-page probes (memcg lruvec/event stats, dentry allocations) cost
//! ~60-140 ns per hit and fire several times per faulted page, so they are attached only while
//! some container is near its limit, and detached again with hysteresis.
use crate::cgroupfs::MemorySnapshot;

#[derive(Debug, Clone, Copy)]
pub struct AdaptiveOptions {
    /// Attach when usage reaches this fraction of a limit (hard, or v2 memory.high).
    pub high_watermark: f64,
    /// Detach only when every container is below this fraction...
    pub low_watermark: f64,
    /// ...for this many consecutive samples.
    pub cooldown_samples: u32,
    /// Always traced (the `--full-tracing` flag).
    pub force_full: bool,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions {
            high_watermark: 0.9,
            low_watermark: 0.8,
            cooldown_samples: 5,
            force_full: false,
        }
    }
}

/// A decision to switch modes, with the reason shown in the `mode` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    ToFull(String),
    ToSampled(String),
}

#[derive(Debug)]
pub struct Adaptive {
    opts: AdaptiveOptions,
    full: bool,
    calm_samples: u32,
    /// Pressure seen since the last evaluation (limit hits, memcg reclaim).
    pending_trigger: Option<String>,
}

impl Adaptive {
    pub fn new(opts: AdaptiveOptions) -> Adaptive {
        Adaptive {
            opts,
            full: opts.force_full,
            calm_samples: 0,
            pending_trigger: None,
        }
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    /// A memcg reclaim (a charge hit a limit) was seen for `cgroup`.
    pub fn note_limit_pressure(&mut self, why: String) {
        self.pending_trigger.get_or_insert(why);
    }

    /// Usage of `snapshot` as a fraction of its tightest limit, if it has one.
    pub fn fill_ratio(snapshot: &MemorySnapshot) -> Option<f64> {
        let limits = [snapshot.limits.hard, snapshot.limits.high];
        let tightest = limits.iter().flatten().min().copied()?;
        (tightest > 0).then(|| snapshot.usage_bytes as f64 / tightest as f64)
    }

    /// Evaluates one sample tick: `samples` are (cgroup path, snapshot, limit hits since the last
    /// tick). Returns a switch when the mode changes.
    pub fn evaluate<'a>(
        &mut self,
        samples: impl IntoIterator<Item = (&'a str, &'a MemorySnapshot, u64)>,
    ) -> Option<Switch> {
        if self.opts.force_full {
            return None;
        }
        let mut hot: Option<String> = self.pending_trigger.take();
        let mut warm = hot.is_some();
        for (path, snap, limit_hits) in samples {
            let ratio = Self::fill_ratio(snap).unwrap_or(0.0);
            if limit_hits > 0 && hot.is_none() {
                hot = Some(format!("{path} hit its limit {limit_hits} times"));
            }
            if ratio >= self.opts.high_watermark && hot.is_none() {
                hot = Some(format!("{path} at {:.0}% of its limit", ratio * 100.0));
            }
            warm |= ratio >= self.opts.low_watermark || limit_hits > 0;
        }
        if let Some(reason) = hot {
            self.calm_samples = 0;
            if !self.full {
                self.full = true;
                return Some(Switch::ToFull(reason));
            }
            return None;
        }
        if !self.full {
            return None;
        }
        if warm {
            self.calm_samples = 0;
            return None;
        }
        self.calm_samples += 1;
        if self.calm_samples >= self.opts.cooldown_samples {
            self.full = false;
            self.calm_samples = 0;
            return Some(Switch::ToSampled(format!(
                "every container below {:.0}% of its limits for {} samples",
                self.opts.low_watermark * 100.0,
                self.opts.cooldown_samples
            )));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::{CgroupVersion, Limits};

    fn snap(usage: u64, hard: Option<u64>) -> MemorySnapshot {
        MemorySnapshot {
            version: CgroupVersion::V1,
            usage_bytes: usage,
            max_usage_bytes: None,
            limits: Limits {
                hard,
                ..Default::default()
            },
            stat: Default::default(),
            events: Default::default(),
            failcnt: None,
            kmem_usage_bytes: None,
            swap_usage_bytes: None,
        }
    }

    #[test]
    fn attaches_at_the_watermark_and_detaches_after_cooldown() {
        let mut a = Adaptive::new(AdaptiveOptions {
            cooldown_samples: 2,
            ..Default::default()
        });
        let low = snap(10, Some(100));
        let high = snap(95, Some(100));
        let warm = snap(85, Some(100));
        assert_eq!(a.evaluate([("/a", &low, 0)]), None);
        assert!(
            matches!(a.evaluate([("/a", &high, 0)]), Some(Switch::ToFull(r)) if r.contains("95%"))
        );
        assert_eq!(
            a.evaluate([("/a", &warm, 0)]),
            None,
            "between watermarks: stay full"
        );
        assert_eq!(a.evaluate([("/a", &warm, 0)]), None);
        assert_eq!(a.evaluate([("/a", &low, 0)]), None, "first calm sample");
        assert!(matches!(
            a.evaluate([("/a", &low, 0)]),
            Some(Switch::ToSampled(_))
        ));
        assert!(!a.is_full());
    }

    #[test]
    fn limit_hits_and_reclaim_trigger_full_tracing() {
        let mut a = Adaptive::new(AdaptiveOptions::default());
        let unlimited = snap(10, None);
        assert!(
            matches!(a.evaluate([("/b", &unlimited, 3)]), Some(Switch::ToFull(r)) if r.contains("hit its limit 3"))
        );
        let mut b = Adaptive::new(AdaptiveOptions::default());
        b.note_limit_pressure("memcg reclaim in /c".into());
        assert_eq!(
            b.evaluate([]),
            Some(Switch::ToFull("memcg reclaim in /c".into()))
        );
    }

    #[test]
    fn forced_full_never_switches() {
        let mut a = Adaptive::new(AdaptiveOptions {
            force_full: true,
            ..Default::default()
        });
        assert!(a.is_full());
        assert_eq!(a.evaluate([("/a", &snap(1, Some(100)), 0)]), None);
    }
}
