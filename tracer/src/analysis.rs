//! The analysis stages every record passes through, live (`tracer run`) and offline
//! (`tracer diagnose`): one path, so an incident found live and one rebuilt from the recording
//! come from the same code.
use crate::{
    accountant::{Accountant, AccountantOptions},
    record::{Record, Stamp},
};

pub struct Analysis {
    accountant: Accountant,
}

impl Analysis {
    pub fn new(page_size: u64) -> Analysis {
        Analysis {
            accountant: Accountant::new(AccountantOptions {
                page_size,
                ..Default::default()
            }),
        }
    }

    /// Feeds one record; returns the records it gives rise to (incidents).
    pub fn observe(&mut self, rec: &Record) -> Vec<Record> {
        self.accountant.observe(rec);
        Vec::new()
    }

    /// End of a sample tick: per-container summaries.
    pub fn end_tick(&mut self, at: Stamp) -> Vec<Record> {
        self.accountant.summaries(at)
    }

    /// End of the stream.
    pub fn finish(&mut self, _at: Stamp) -> Vec<Record> {
        Vec::new()
    }
}
