//! Byte totals per vSwap class (anon, file, kernel, swap), and how a `stat` record's item
//! contributes to them: shared by the accountant's windows and the cross-check functions.
use crate::cgroupfs::MemoryClasses;
use crate::record::StatRecord;
use crate::summary::{ClassBytes, ClassDeltas};

/// Four signed byte amounts (a change, or an events-advanced absolute value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClassSums {
    pub(crate) anon: i64,
    pub(crate) file: i64,
    pub(crate) kernel: i64,
    pub(crate) swap: i64,
}

impl ClassSums {
    pub(crate) fn of(classes: &MemoryClasses) -> ClassSums {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        ClassSums {
            anon: signed(classes.anon),
            file: signed(classes.file),
            kernel: signed(classes.kernel),
            swap: signed(classes.swap),
        }
    }

    /// Adds a stat item's bytes to its class; items outside the four classes are ignored.
    pub(crate) fn add_item(&mut self, item: &str, bytes: i64) {
        let class = match item {
            "NR_ANON_MAPPED" => &mut self.anon,
            "NR_FILE_PAGES" => &mut self.file,
            "MEMCG_KMEM" => &mut self.kernel,
            "MEMCG_SWAP" => &mut self.swap,
            _ => return,
        };
        *class = class.saturating_add(bytes);
    }

    pub(crate) fn plus(self, o: ClassSums) -> ClassSums {
        ClassSums {
            anon: self.anon.saturating_add(o.anon),
            file: self.file.saturating_add(o.file),
            kernel: self.kernel.saturating_add(o.kernel),
            swap: self.swap.saturating_add(o.swap),
        }
    }

    pub(crate) fn deltas(self, dentry_alloc_bytes: Option<u64>) -> ClassDeltas {
        let ClassSums {
            anon,
            file,
            kernel,
            swap,
        } = self;
        ClassDeltas {
            anon,
            file,
            kernel,
            swap,
            dentry_alloc_bytes,
        }
    }

    /// Negative totals (imprecise slab batches) are reported as 0.
    pub(crate) fn bytes(self, dentry_alloc_bytes: Option<u64>) -> ClassBytes {
        let size = |v: i64| Some(u64::try_from(v).unwrap_or(0));
        ClassBytes {
            anon: size(self.anon),
            file: size(self.file),
            kernel: size(self.kernel),
            swap: size(self.swap),
            dentry_alloc_bytes,
        }
    }
}

/// Bytes of a stat record, or None for event counters.
pub(crate) fn stat_bytes(rec: &StatRecord) -> Option<i64> {
    if rec.family == "events" {
        return None;
    }
    // The kernel converts every state item's `val` to pages before the tracepoint
    // (memcg_state_val_in_pages), `*_B` and `*_KB` items included, so delta_bytes is pages x
    // page size for all of them.
    rec.delta_bytes
}
