//! The analysis stages every record passes through, live (`tracer run`): the accountant
//! (per-container summaries) and the detector (incidents). `tracer diagnose` runs the same
//! [`Detector`] over a recording, so an incident found live and one rebuilt from the recording
//! come from the same code.
use crate::{
    accountant::{Accountant, AccountantOptions},
    detector::{Detector, DetectorOptions},
    record::{Record, Stamp},
};

pub struct Analysis {
    accountant: Accountant,
    detector: Detector,
}

impl Analysis {
    pub fn new(page_size: u64) -> Analysis {
        Analysis {
            accountant: Accountant::new(AccountantOptions {
                page_size,
                ..Default::default()
            }),
            detector: Detector::new(DetectorOptions::default()),
        }
    }

    /// Feeds one record; returns the records it gives rise to (incidents).
    pub fn observe(&mut self, rec: &Record) -> Vec<Record> {
        self.accountant.observe(rec);
        self.detector.observe(rec)
    }

    /// End of a sample tick: per-container summaries.
    pub fn end_tick(&mut self, at: Stamp) -> Vec<Record> {
        self.accountant.summaries(at)
    }

    /// End of the stream: incidents still open are closed as `still_open_at_exit`.
    pub fn finish(&mut self, at: Stamp) -> Vec<Record> {
        self.detector.finish(at)
    }
}
