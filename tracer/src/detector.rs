//! Overshoot incident detection (placeholder; being written).
use serde::{Deserialize, Serialize};

use crate::record::Stamp;

/// An incident opened, updated or closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    #[serde(flatten)]
    pub at: Stamp,
}
