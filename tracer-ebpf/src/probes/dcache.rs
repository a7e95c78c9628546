//! Dentry-cache allocations: `kmem:kmem_cache_alloc` filtered in the kernel to the `dentry`
//! cache, counted (allocations and bytes) per memcg of the allocating task in a per-CPU map.
//! Never streamed: it fires on every slab allocation on the host.
use aya_ebpf::{
    cty::c_void,
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, map, tracepoint},
    maps::Array,
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{Counter, DentryValue, TpField};

use super::ret;
use crate::{
    context::{config, count, current_ids, current_memcg_id, filtered_out, is_agent, tp_offset},
    maps::DENTRY_ALLOCS,
};

// name: kmem_cache_alloc
// format:
//	field:unsigned long call_site;	offset:8;	size:8;	signed:0;
//	field:const void * ptr;	offset:16;	size:8;	signed:0;
//	field:__data_loc char[] name;	offset:24;	size:4;	signed:0;
//	field:size_t bytes_req;	offset:32;	size:8;	signed:0;
//	field:size_t bytes_alloc;	offset:40;	size:8;	signed:0;
//	field:unsigned long gfp_flags;	offset:48;	size:8;	signed:0;
//	field:int node;	offset:56;	size:4;	signed:1;
//	field:bool accounted;	offset:60;	size:1;	signed:0;

/// "dentry\0" as a little-endian u64 with the 8th byte masked off: one compare per hit.
const DENTRY_LE: u64 = u64::from_le_bytes(*b"dentry\0\0");
const NAME_MASK: u64 = 0x00ff_ffff_ffff_ffff;

/// The `dentry` cache (`struct kmem_cache *`) and its object size, learned from its first
/// allocation. kmem_cache_alloc fires for every slab allocation on the host; once this is known
/// the tp_btf program rejects other caches without reading their names. The dentry cache is
/// created at boot, never destroyed, and never merged with another cache (it has a usercopy
/// region), so the pointer identifies dentries for the life of the kernel.
#[map]
static DENTRY_CACHE: Array<DentryCache> = Array::with_max_entries(1, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct DentryCache {
    cache: u64,
    object_size: u64,
}

#[tracepoint(category = "kmem", name = "kmem_cache_alloc")]
pub fn kmem_cache_alloc(ctx: TracePointContext) -> u32 {
    ret(try_classic(&ctx))
}

// tp_btf: TP_PROTO(unsigned long call_site, const void *ptr, struct kmem_cache *s,
//                  gfp_t gfp_flags, int node)
#[btf_tracepoint(function = "kmem_cache_alloc")]
pub fn kmem_cache_alloc_btf(ctx: BtfTracePointContext) -> u32 {
    ret(try_btf(&ctx))
}

#[inline(always)]
fn try_classic(ctx: &TracePointContext) -> Result<(), i32> {
    let loc: u32 = unsafe { ctx.read_at(tp_offset(TpField::KmemName))? };
    let name: u64 = unsafe { ctx.read_at((loc & 0xffff) as usize)? };
    if name & NAME_MASK != DENTRY_LE {
        return Ok(());
    }
    let bytes: u64 = unsafe { ctx.read_at(tp_offset(TpField::KmemBytesAlloc))? };
    record(bytes)
}

#[inline(always)]
fn try_btf(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let cache: *const c_void = ctx.arg(2);
    let base = cache as u64;
    let Some(known) = DENTRY_CACHE.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: a valid pointer into a one-entry array map; only this program writes it, and
    // writing the same two values from several CPUs at once is benign.
    let known = unsafe { &mut *known };
    if known.cache != 0 {
        // Learned: every other cache is rejected with one compare, no kernel memory read.
        if known.cache != base {
            return Ok(());
        }
        return record(known.object_size);
    }
    let name_ptr: u64 = unsafe {
        bpf_probe_read_kernel((base + config!(off_kmem_cache_name) as u64) as *const u64)?
    };
    let name: u64 = unsafe { bpf_probe_read_kernel(name_ptr as *const u64)? };
    if name & NAME_MASK != DENTRY_LE {
        return Ok(());
    }
    let size: u32 = unsafe {
        bpf_probe_read_kernel((base + config!(off_kmem_cache_size) as u64) as *const u32)?
    };
    known.object_size = size as u64;
    known.cache = base;
    record(size as u64)
}

#[inline(always)]
fn record(bytes: u64) -> Result<(), i32> {
    let (tgid, _) = current_ids();
    if is_agent(tgid) {
        return Ok(());
    }
    let memcg_id = current_memcg_id();
    if filtered_out(memcg_id) {
        return Ok(());
    }
    if let Some(value) = DENTRY_ALLOCS.get_ptr_mut(memcg_id) {
        unsafe {
            (*value).allocs += 1;
            (*value).bytes += bytes;
        }
        return Ok(());
    }
    if DENTRY_ALLOCS
        .insert(memcg_id, DentryValue { allocs: 1, bytes }, 0)
        .is_err()
    {
        count(Counter::DentryMapFull as u32);
    }
    Ok(())
}
