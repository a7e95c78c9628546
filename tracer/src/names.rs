//! Names and units of the memcg tracepoints' `item` numbers, from the running kernel's BTF.
//!
//! `item` indexes kernel enums whose numbering differs between kernel builds (config options add
//! and remove entries), so nothing here is hard-coded: the tables come from BTF at start-up.
use std::collections::HashMap;

use tracer_common::StatFamily;

use crate::btf::{Btf, BtfError};

/// What a stat's `val` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Pages,
    Bytes,
    Events,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Pages => "pages",
            Unit::Bytes => "bytes",
            Unit::Events => "events",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ItemNames {
    /// `node_stat_item` and `memcg_stat_item` share one number space: memcg items start at
    /// `NR_VM_NODE_STAT_ITEMS`. Both state tracepoints index it.
    state: HashMap<u32, String>,
    /// `vm_event_item`, indexed by `count_memcg_events`.
    events: HashMap<u32, String>,
}

impl ItemNames {
    pub fn from_btf(btf: &Btf) -> Result<ItemNames, BtfError> {
        let mut names = ItemNames::default();
        for enum_name in ["node_stat_item", "memcg_stat_item"] {
            for (name, value) in btf.enum_variants(enum_name)? {
                names.insert_state(value, name);
            }
        }
        for (name, value) in btf.enum_variants("vm_event_item")? {
            names.insert_event(value, name);
        }
        Ok(names)
    }

    /// Builds tables from (name, value) pairs (tests and replay).
    pub fn from_pairs(state: &[(&str, i64)], events: &[(&str, i64)]) -> ItemNames {
        let mut names = ItemNames::default();
        for (n, v) in state {
            names.insert_state(*v, n.to_string());
        }
        for (n, v) in events {
            names.insert_event(*v, n.to_string());
        }
        names
    }

    fn insert_state(&mut self, value: i64, name: String) {
        // Sentinels like NR_VM_NODE_STAT_ITEMS share a value with the first memcg item: keep the
        // real item's name.
        if let Ok(v) = u32::try_from(value) {
            if !name.starts_with("NR_VM_") && !name.starts_with("MEMCG_NR_") {
                self.state.insert(v, name);
            } else {
                self.state.entry(v).or_insert(name);
            }
        }
    }

    fn insert_event(&mut self, value: i64, name: String) {
        if let Ok(v) = u32::try_from(value) {
            if name != "NR_VM_EVENT_ITEMS" {
                self.events.insert(v, name);
            }
        }
    }

    pub fn name(&self, family: StatFamily, item: u32) -> String {
        let table = match family {
            StatFamily::MemcgState | StatFamily::LruvecState => &self.state,
            StatFamily::Events => &self.events,
        };
        table
            .get(&item)
            .cloned()
            .unwrap_or_else(|| format!("item_{item}"))
    }

    /// Looks an item up by name (for the accountant: "which index is NR_ANON_MAPPED here?").
    pub fn state_index(&self, name: &str) -> Option<u32> {
        self.state
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(v, _)| *v)
    }

    pub fn len(&self) -> usize {
        self.state.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Unit of an item's tracepoint `val`: event counters count events; state items count pages.
///
/// Even the byte-sized items (`*_B`, e.g. NR_SLAB_RECLAIMABLE_B, MEMCG_PERCPU_B) arrive in pages:
/// the kernel converts `val` with `memcg_state_val_in_pages()` before the tracepoint, which
/// truncates to whole pages and rounds only sub-page changes up to one page. Slab deltas from
/// the tracepoints are therefore approximate (docs/records.md, "Precision").
pub fn unit_of(family: StatFamily, _name: &str) -> Unit {
    match family {
        StatFamily::Events => Unit::Events,
        StatFamily::MemcgState | StatFamily::LruvecState => Unit::Pages,
    }
}

pub fn family_name(family: StatFamily) -> &'static str {
    match family {
        StatFamily::MemcgState => "memcg_state",
        StatFamily::LruvecState => "lruvec_state",
        StatFamily::Events => "events",
    }
}

pub fn family_from_name(name: &str) -> Option<StatFamily> {
    match name {
        "memcg_state" => Some(StatFamily::MemcgState),
        "lruvec_state" => Some(StatFamily::LruvecState),
        "events" => Some(StatFamily::Events),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_sentinels() {
        let names = ItemNames::from_pairs(
            &[
                ("NR_ANON_MAPPED", 17),
                ("NR_SLAB_RECLAIMABLE_B", 6),
                ("MEMCG_SWAP", 51),
                ("NR_VM_NODE_STAT_ITEMS", 51),
            ],
            &[("PGFAULT", 23), ("NR_VM_EVENT_ITEMS", 99)],
        );
        assert_eq!(names.name(StatFamily::LruvecState, 17), "NR_ANON_MAPPED");
        assert_eq!(names.name(StatFamily::MemcgState, 51), "MEMCG_SWAP");
        assert_eq!(names.name(StatFamily::Events, 23), "PGFAULT");
        assert_eq!(names.name(StatFamily::Events, 99), "item_99");
        assert_eq!(names.state_index("NR_ANON_MAPPED"), Some(17));
        assert_eq!(
            unit_of(StatFamily::LruvecState, "NR_SLAB_RECLAIMABLE_B"),
            Unit::Pages
        );
        assert_eq!(
            unit_of(StatFamily::LruvecState, "NR_ANON_MAPPED"),
            Unit::Pages
        );
        assert_eq!(unit_of(StatFamily::Events, "PGFAULT"), Unit::Events);
        assert_eq!(
            family_from_name(family_name(StatFamily::Events)),
            Some(StatFamily::Events)
        );
    }

    #[test]
    fn host_btf_names_the_memcg_items() {
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: no /sys/kernel/btf/vmlinux on this host\n",
            );
            return;
        }
        let names = ItemNames::from_btf(&Btf::from_file(path).unwrap()).unwrap();
        let anon = names
            .state_index("NR_ANON_MAPPED")
            .expect("NR_ANON_MAPPED in node_stat_item");
        assert_eq!(names.name(StatFamily::LruvecState, anon), "NR_ANON_MAPPED");
        assert!(names.state_index("MEMCG_KMEM").is_some());
    }
}
