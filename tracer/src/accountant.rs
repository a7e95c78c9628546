//! Per-container accounting of the vSwap memory classes (placeholder; being written).
use serde::{Deserialize, Serialize};

use crate::record::Stamp;

/// Periodic per-container summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    #[serde(flatten)]
    pub at: Stamp,
}
