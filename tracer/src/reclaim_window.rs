//! Reclaim episodes of one cgroup in one summary window, and the [`ReclaimStats`] they give.
use std::collections::BTreeMap;

use crate::accountant::SWAP_CLUSTER_MAX;
use crate::record::ReclaimRecord;
use crate::summary::ReclaimStats;

#[derive(Debug, Clone, Default)]
pub(crate) struct ReclaimAcc {
    pub(crate) count: u64,
    pub(crate) by_kind: BTreeMap<String, u64>,
    pub(crate) failures: u64,
    pub(crate) missing_begin: u64,
    pub(crate) total_latency_ns: u64,
    pub(crate) max_latency_ns: Option<u64>,
    pub(crate) latencies: Vec<u64>,
    pub(crate) truncated: bool,
    pub(crate) pages: u64,
}

impl ReclaimAcc {
    pub(crate) fn add(&mut self, rec: &ReclaimRecord, max_latencies: usize) {
        self.count += 1;
        *self.by_kind.entry(rec.kind.clone()).or_default() += 1;
        self.failures += u64::from(rec.nr_reclaimed == 0);
        self.pages = self.pages.saturating_add(rec.nr_reclaimed);
        if rec.missing_begin {
            self.missing_begin += 1;
            return;
        }
        self.total_latency_ns = self.total_latency_ns.saturating_add(rec.latency_ns);
        self.max_latency_ns = self.max_latency_ns.max(Some(rec.latency_ns));
        if self.latencies.len() < max_latencies {
            self.latencies.push(rec.latency_ns);
        } else {
            self.truncated = true;
        }
    }

    /// Roll-up: the union of the kept latencies (transient, so not re-bounded).
    pub(crate) fn merge(&mut self, o: &ReclaimAcc) {
        self.count += o.count;
        for (kind, n) in &o.by_kind {
            *self.by_kind.entry(kind.clone()).or_default() += n;
        }
        self.failures += o.failures;
        self.missing_begin += o.missing_begin;
        self.total_latency_ns = self.total_latency_ns.saturating_add(o.total_latency_ns);
        self.max_latency_ns = self.max_latency_ns.max(o.max_latency_ns);
        self.latencies.extend_from_slice(&o.latencies);
        self.truncated |= o.truncated;
        self.pages = self.pages.saturating_add(o.pages);
    }

    pub(crate) fn stats(&self, page_size: u64) -> ReclaimStats {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let requested = self.count.saturating_mul(SWAP_CLUSTER_MAX);
        ReclaimStats {
            count: self.count,
            by_kind: self.by_kind.clone(),
            failures: self.failures,
            missing_begin: self.missing_begin,
            total_latency_ns: self.total_latency_ns,
            max_latency_ns: self.max_latency_ns,
            p50_latency_ns: nearest_rank(&sorted, 50),
            p99_latency_ns: nearest_rank(&sorted, 99),
            latency_samples: sorted.len() as u64,
            latencies_truncated: self.truncated,
            pages_reclaimed: self.pages,
            bytes_reclaimed: self.pages.saturating_mul(page_size),
            requested_pages_assumed: requested,
            efficiency: (requested > 0).then(|| self.pages as f64 / requested as f64),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with >= percent% at or below it.
pub(crate) fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (sorted.len() * percent).div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}
