//! Kernel symbol lookup from /proc/kallsyms, to name slab shrinkers by their scan function.
use std::collections::BTreeMap;

/// Text symbols by address. Empty when kallsyms hides addresses (kptr_restrict), in which case
/// names fall back to hex addresses.
#[derive(Debug, Default)]
pub struct Symbols {
    by_addr: BTreeMap<u64, String>,
}

impl Symbols {
    /// Reads /proc/kallsyms; never fails (a missing or restricted file yields no names).
    pub fn load() -> Symbols {
        std::fs::read_to_string("/proc/kallsyms")
            .map(|t| Symbols::parse(&t))
            .unwrap_or_default()
    }

    /// Parses kallsyms text, keeping text symbols (`t`/`T`) with a non-zero address.
    pub fn parse(text: &str) -> Symbols {
        let mut by_addr = BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            if let Ok(addr) = u64::from_str_radix(addr, 16) {
                if addr != 0 {
                    by_addr.entry(addr).or_insert_with(|| name.to_string());
                }
            }
        }
        Symbols { by_addr }
    }

    /// The function containing `addr` (exact or nearest below), or `0x…` when unknown.
    pub fn name(&self, addr: u64) -> String {
        if addr == 0 {
            return "unknown".to_string();
        }
        match self.by_addr.range(..=addr).next_back() {
            Some((start, name)) if addr - start < (1 << 20) => name.clone(),
            _ => format!("{addr:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "ffffffff81000000 T _stext\n\
        ffffffff81200000 t super_cache_scan\n\
        ffffffff81200400 T deferred_split_scan\n\
        ffffffff82000000 D some_data\n\
        0000000000000000 T hidden\n";

    #[test]
    fn names_exact_and_interior_addresses() {
        let s = Symbols::parse(KALLSYMS);
        assert_eq!(s.name(0xffffffff81200000), "super_cache_scan");
        assert_eq!(s.name(0xffffffff81200010), "super_cache_scan");
        assert_eq!(s.name(0xffffffff81200400), "deferred_split_scan");
        assert_eq!(s.name(0x1000), "0x1000");
        assert_eq!(s.name(0), "unknown");
    }

    #[test]
    fn restricted_kallsyms_gives_addresses() {
        let s = Symbols::parse("0000000000000000 T a\n0000000000000000 t b\n");
        assert_eq!(s.name(0xffffffff81200000), "0xffffffff81200000");
    }
}
