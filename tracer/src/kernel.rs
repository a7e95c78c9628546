//! What the running kernel offers, and the plan derived from it: which program serves each
//! probe (tp_btf, classic tracepoint, or a cgroupfs fallback) and the load-time configuration
//! (tracepoint field offsets from tracefs, struct offsets and enum values from BTF).
//!
//! Pure over a [`Tracefs`] root and a parsed [`Btf`], so it is tested on fixtures.
use tracer_common::{ProbeConfig, TpField, CONFIG_TASK_MEMCG_WALK};

use crate::{btf::Btf, tracefs::Tracefs};

/// One kernel probe the agent can use.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub category: &'static str,
    pub name: &'static str,
    /// Program (function) name of the classic tracepoint variant in the eBPF object.
    pub program: &'static str,
    /// Program name of the tp_btf variant, where one exists.
    pub btf_program: Option<&'static str>,
    /// Per-page hot path: attached only while some container is near its limit (adaptive).
    pub hot: bool,
    /// Tracepoint fields the program reads: (field enum, field name, size; 0 = data_loc).
    pub fields: &'static [(TpField, &'static str, u32)],
    /// What replaces the probe when the kernel lacks it.
    pub fallback: Option<&'static str>,
}

const STAT_FALLBACK: Option<&str> = Some("memory.stat/memory.events sampled at each interval");

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        category: "memcg",
        name: "mod_memcg_state",
        program: "memcg_state",
        btf_program: Some("memcg_state_btf"),
        hot: false,
        fields: &[
            (TpField::MemcgStateId, "id", 8),
            (TpField::MemcgStateItem, "item", 4),
            (TpField::MemcgStateVal, "val", 4),
        ],
        fallback: STAT_FALLBACK,
    },
    ProbeSpec {
        category: "memcg",
        name: "mod_memcg_lruvec_state",
        program: "memcg_lruvec_state",
        btf_program: Some("memcg_lruvec_state_btf"),
        hot: true,
        fields: &[
            (TpField::LruvecStateId, "id", 8),
            (TpField::LruvecStateItem, "item", 4),
            (TpField::LruvecStateVal, "val", 4),
        ],
        fallback: STAT_FALLBACK,
    },
    ProbeSpec {
        category: "memcg",
        name: "count_memcg_events",
        program: "memcg_events",
        btf_program: Some("memcg_events_btf"),
        hot: true,
        fields: &[
            (TpField::EventsId, "id", 8),
            (TpField::EventsItem, "item", 4),
            (TpField::EventsVal, "val", 8),
        ],
        fallback: STAT_FALLBACK,
    },
    reclaim_begin("mm_vmscan_memcg_reclaim_begin", "memcg_reclaim_begin"),
    reclaim_end("mm_vmscan_memcg_reclaim_end", "memcg_reclaim_end"),
    reclaim_begin(
        "mm_vmscan_memcg_softlimit_reclaim_begin",
        "softlimit_reclaim_begin",
    ),
    reclaim_end(
        "mm_vmscan_memcg_softlimit_reclaim_end",
        "softlimit_reclaim_end",
    ),
    reclaim_begin("mm_vmscan_direct_reclaim_begin", "direct_reclaim_begin"),
    reclaim_end("mm_vmscan_direct_reclaim_end", "direct_reclaim_end"),
    ProbeSpec {
        category: "vmscan",
        name: "mm_vmscan_wakeup_kswapd",
        program: "wakeup_kswapd",
        btf_program: None,
        hot: false,
        fields: &[
            (TpField::KswapdNid, "nid", 4),
            (TpField::KswapdZid, "zid", 4),
            (TpField::KswapdOrder, "order", 4),
            (TpField::KswapdGfp, "gfp_flags", 8),
        ],
        fallback: None,
    },
    ProbeSpec {
        category: "vmscan",
        name: "mm_shrink_slab_start",
        program: "shrink_slab_start",
        btf_program: None,
        hot: false,
        fields: &[
            (TpField::ShrinkStartShr, "shr", 8),
            (TpField::ShrinkStartShrink, "shrink", 8),
            (TpField::ShrinkStartNid, "nid", 4),
            (TpField::ShrinkStartNrObjects, "nr_objects_to_shrink", 8),
            (TpField::ShrinkStartGfp, "gfp_flags", 8),
            (TpField::ShrinkStartCacheItems, "cache_items", 8),
            (TpField::ShrinkStartTotalScan, "total_scan", 8),
            (TpField::ShrinkStartPriority, "priority", 4),
        ],
        fallback: None,
    },
    ProbeSpec {
        category: "vmscan",
        name: "mm_shrink_slab_end",
        program: "shrink_slab_end",
        btf_program: None,
        hot: false,
        fields: &[(TpField::ShrinkEndRetval, "retval", 4)],
        fallback: None,
    },
    ProbeSpec {
        category: "kmem",
        name: "kmem_cache_alloc",
        program: "kmem_cache_alloc",
        btf_program: Some("kmem_cache_alloc_btf"),
        hot: true,
        fields: &[
            (TpField::KmemName, "name", 0),
            (TpField::KmemBytesAlloc, "bytes_alloc", 8),
        ],
        fallback: None,
    },
    ProbeSpec {
        category: "oom",
        name: "mark_victim",
        program: "mark_victim",
        btf_program: None,
        hot: false,
        fields: &[
            (TpField::OomPid, "pid", 4),
            (TpField::OomComm, "comm", 0),
            (TpField::OomTotalVm, "total_vm", 8),
            (TpField::OomAnonRss, "anon_rss", 8),
            (TpField::OomFileRss, "file_rss", 8),
            (TpField::OomShmemRss, "shmem_rss", 8),
            (TpField::OomUid, "uid", 4),
            (TpField::OomPgtables, "pgtables", 8),
            (TpField::OomScoreAdj, "oom_score_adj", 2),
        ],
        fallback: Some("memory.events oom_kill / memory.oom_control counts (no victim pid)"),
    },
    cgroup_probe("cgroup_mkdir"),
    cgroup_probe("cgroup_rmdir"),
];

const fn reclaim_begin(name: &'static str, program: &'static str) -> ProbeSpec {
    ProbeSpec {
        category: "vmscan",
        name,
        program,
        btf_program: None,
        hot: false,
        fields: &[
            (TpField::ReclaimBeginOrder, "order", 4),
            (TpField::ReclaimBeginGfp, "gfp_flags", 8),
        ],
        fallback: None,
    }
}

const fn reclaim_end(name: &'static str, program: &'static str) -> ProbeSpec {
    ProbeSpec {
        category: "vmscan",
        name,
        program,
        btf_program: None,
        hot: false,
        fields: &[(TpField::ReclaimEndNr, "nr_reclaimed", 8)],
        fallback: None,
    }
}

const fn cgroup_probe(name: &'static str) -> ProbeSpec {
    ProbeSpec {
        category: "cgroup",
        name,
        program: name,
        btf_program: None,
        hot: false,
        fields: &[
            (TpField::CgroupRoot, "root", 4),
            (TpField::CgroupLevel, "level", 4),
            (TpField::CgroupId, "id", 8),
            (TpField::CgroupPath, "path", 0),
        ],
        fallback: Some("periodic rescan of the cgroup tree"),
    }
}

/// How a probe will be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    TpBtf,
    Tracepoint,
    /// Not on this kernel; why.
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct PlannedProbe {
    pub spec: ProbeSpec,
    pub via: Via,
    /// The classic tracepoint's fields were all found: it can replace a tp_btf program that
    /// fails to load.
    pub classic_ok: bool,
}

/// The load-time configuration plus what could not be configured.
#[derive(Debug)]
pub struct Plan {
    pub config: ProbeConfig,
    pub probes: Vec<PlannedProbe>,
    /// Problems worth telling the operator (each names the tracepoint/struct/field).
    pub warnings: Vec<String>,
}

/// Plans every probe: tp_btf where BTF describes the tracepoint and the program has a tp_btf
/// variant (and `prefer_btf`), else the classic tracepoint when tracefs has it, else unavailable.
/// Tracepoint field offsets come from tracefs; a field that is missing or of an unexpected size
/// makes that probe unavailable with a message naming the tracepoint and field.
pub fn plan(tracefs: &Tracefs, btf: Option<&Btf>, prefer_btf: bool) -> Plan {
    let mut config = ProbeConfig::zeroed();
    let mut warnings = Vec::new();
    let btf_walk = btf
        .map(|b| configure_btf(b, &mut config, &mut warnings))
        .unwrap_or(false);
    if btf.is_none() {
        warnings.push(
            "no kernel BTF (/sys/kernel/btf/vmlinux): tp_btf programs, item names and the \
             task memcg walk are unavailable; build the kernel with CONFIG_DEBUG_INFO_BTF=y"
                .to_string(),
        );
    }
    let mut probes = Vec::new();
    for spec in PROBES {
        let classic = plan_fields(tracefs, spec, &mut config);
        // tp_btf programs read their arguments, not the tracefs record, so they also serve
        // kernels whose record lacks a field (e.g. kmem_cache_alloc's `name` before 6.x).
        let btf_ok = prefer_btf
            && btf_walk
            && spec.btf_program.is_some()
            && tracefs.has_tracepoint(spec.category, spec.name)
            && btf.is_some_and(|b| btf_args_match(b, spec));
        let via = match (&classic, btf_ok) {
            (_, true) => Via::TpBtf,
            (Ok(()), false) => Via::Tracepoint,
            (Err(reason), false) => Via::Unavailable(reason.clone()),
        };
        let classic_ok = classic.is_ok();
        if let Via::Unavailable(reason) = &via {
            if spec.category != "memcg" {
                warnings.push(reason.clone());
            }
        }
        probes.push(PlannedProbe {
            spec: *spec,
            via,
            classic_ok,
        });
    }
    Plan {
        config,
        probes,
        warnings,
    }
}

/// The tp_btf programs read one pointer argument at a fixed position: check the kernel's
/// prototype has that type there.
fn btf_args_match(btf: &Btf, spec: &ProbeSpec) -> bool {
    let (index, type_name) = match spec.category {
        "memcg" => (0, "struct mem_cgroup"),
        "kmem" => (2, "struct kmem_cache"),
        _ => return false,
    };
    btf.tracepoint_args(spec.name)
        .ok()
        .and_then(|args| args.get(index).map(|a| a.type_name.starts_with(type_name)))
        .unwrap_or(false)
}

fn plan_fields(
    tracefs: &Tracefs,
    spec: &ProbeSpec,
    config: &mut ProbeConfig,
) -> Result<(), String> {
    if !tracefs.has_tracepoint(spec.category, spec.name) {
        return Err(format!(
            "tracepoint {}:{} does not exist on this kernel",
            spec.category, spec.name
        ));
    }
    let format = tracefs
        .format(spec.category, spec.name)
        .map_err(|e| e.to_string())?;
    for (slot, field, size) in spec.fields {
        let f = if *size == 0 {
            format.field(field)
        } else {
            format.field_sized(field, *size)
        }
        .map_err(|e| e.to_string())?;
        if *size == 0 && !f.data_loc {
            return Err(format!(
                "tracepoint {}:{} field `{field}` is not a __data_loc string",
                spec.category, spec.name
            ));
        }
        let offset = u16::try_from(f.offset).map_err(|_| {
            format!(
                "tracepoint {}:{} field `{field}` offset {} too large",
                spec.category, spec.name, f.offset
            )
        })?;
        let existing = config.tp[*slot as usize];
        // Begin/end tracepoints of one event class share a slot: they must agree.
        if existing != 0 && existing != offset {
            return Err(format!(
                "tracepoint {}:{} field `{field}` is at offset {offset}, but its sibling \
                 tracepoints have it at {existing}",
                spec.category, spec.name
            ));
        }
        config.tp[*slot as usize] = offset;
    }
    Ok(())
}

/// Fills the struct offsets and enum values the programs need from BTF. Returns whether the
/// task -> memcg walk is configured.
fn configure_btf(btf: &Btf, config: &mut ProbeConfig, warnings: &mut Vec<String>) -> bool {
    let mut walk = || -> Result<(), crate::btf::BtfError> {
        let memory_id = btf.enum_value("cgroup_subsys_id", "memory_cgrp_id")?;
        config.memory_cgrp_id = u32::try_from(memory_id).unwrap_or(u32::MAX);
        config.off_task_cgroups = btf.member_offset("task_struct", "cgroups")?.offset;
        config.off_css_set_subsys = btf.member_offset("css_set", "subsys")?.offset;
        config.off_css_cgroup = btf.member_offset("cgroup_subsys_state", "cgroup")?.offset;
        config.off_cgroup_kn = btf.member_offset("cgroup", "kn")?.offset;
        config.off_kn_id = btf.member_offset("kernfs_node", "id")?.offset;
        config.off_memcg_css = btf.member_offset("mem_cgroup", "css")?.offset;
        Ok(())
    };
    let ok = match walk() {
        Ok(()) if config.memory_cgrp_id < 16 => true,
        Ok(()) => {
            warnings.push(format!(
                "memory_cgrp_id {} is out of range",
                config.memory_cgrp_id
            ));
            false
        }
        Err(e) => {
            warnings.push(format!("task memcg walk unavailable: {e}"));
            false
        }
    };
    if ok {
        config.flags |= CONFIG_TASK_MEMCG_WALK;
    }
    match (
        btf.member_offset("kmem_cache", "name"),
        btf.member_offset("kmem_cache", "size"),
    ) {
        (Ok(name), Ok(size)) => {
            config.off_kmem_cache_name = name.offset;
            config.off_kmem_cache_size = size.offset;
        }
        (Err(e), _) | (_, Err(e)) => warnings.push(format!("tp_btf dentry probe unavailable: {e}")),
    }
    ok
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
