use super::*;

/// Hand encoder for little-endian BTF blobs: ids are handed out in call order from 1.
struct Encoder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }
    fn string(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend(text.as_bytes());
        self.strings.push(0);
        offset
    }
    fn words(&mut self, words: &[u32]) {
        words
            .iter()
            .for_each(|word| self.types.extend(word.to_le_bytes()));
    }
    /// Type record header; the caller appends the kind-specific words.
    fn ty(&mut self, name: &str, kind: u8, kind_flag: bool, vlen: usize, size_or_type: u32) -> u32 {
        let name_off = self.string(name);
        let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen as u32;
        self.words(&[name_off, info, size_or_type]);
        self.next_id += 1;
        self.next_id - 1
    }
    fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        let id = self.ty(name, KIND_INT, false, 0, size);
        self.words(&[bits]);
        id
    }
    /// Struct/union/enum/proto with (name, word, word) records; `third` None for 2-word records.
    fn records(
        &mut self,
        name: &str,
        kind: u8,
        flag: bool,
        size: u32,
        recs: &[(&str, u32, Option<u32>)],
    ) -> u32 {
        let id = self.ty(name, kind, flag, recs.len(), size);
        for &(rec_name, a, b) in recs {
            let rec_name = self.string(rec_name);
            self.words(&[rec_name, a]);
            self.words(b.as_slice());
        }
        id
    }
    fn finish(&self) -> Vec<u8> {
        let (type_len, str_len) = (self.types.len() as u32, self.strings.len() as u32);
        let mut blob = vec![0x9f, 0xeb, 1, 0];
        for word in [HEADER_LEN as u32, 0, type_len, type_len, str_len] {
            blob.extend(word.to_le_bytes());
        }
        blob.extend(&self.types);
        blob.extend(&self.strings);
        blob
    }
}

fn enum_blob() -> Vec<u8> {
    let mut enc = Encoder::new();
    enc.records("colour", KIND_ENUM, false, 4, &[]); // forward declaration, skipped
    enc.records(
        "colour",
        KIND_ENUM,
        false,
        4,
        &[("RED", 0, None), ("GREEN", 7, None)],
    );
    enc.records("temp", KIND_ENUM, true, 4, &[("COLD", -3i32 as u32, None)]);
    enc.records(
        "big",
        KIND_ENUM64,
        false,
        8,
        &[("SMALL", 1, Some(0)), ("HUGE", 5, Some(1))],
    );
    enc.finish()
}

#[test]
fn enums_and_enum64_keep_order_sign_and_width() {
    let btf = Btf::from_bytes(&enum_blob()).unwrap();
    let colours = btf.enum_variants("colour").unwrap();
    assert_eq!(
        colours,
        vec![("RED".to_owned(), 0), ("GREEN".to_owned(), 7)]
    );
    assert_eq!(btf.enum_value("temp", "COLD").unwrap(), -3);
    assert_eq!(btf.enum_value("big", "HUGE").unwrap(), 0x1_0000_0005);
    let missing = btf.enum_value("colour", "BLUE").unwrap_err().to_string();
    assert!(
        missing.contains("`BLUE`") && missing.contains("RED, GREEN"),
        "{missing}"
    );
    let no_enum = btf
        .enum_variants("memcg_stat_item")
        .unwrap_err()
        .to_string();
    assert!(
        no_enum.contains("no enum `memcg_stat_item`") && no_enum.contains("CONFIG_DEBUG_INFO_BTF")
    );
}

/// struct outer { unsigned long head; union { struct { int x; int y; }; unsigned long raw; };
///   inner_t nested; int arr[4]; unsigned int flags:3; struct inner *ptr; }
/// with `typedef const struct inner inner_t` and struct inner { int a; int b; }.
fn struct_blob() -> Vec<u8> {
    let mut enc = Encoder::new();
    let int = enc.int("int", 4, 32);
    let ulong = enc.int("long unsigned int", 8, 64);
    let inner = enc.records(
        "inner",
        KIND_STRUCT,
        false,
        8,
        &[("a", int, Some(0)), ("b", int, Some(32))],
    );
    let const_inner = enc.ty("", KIND_CONST, false, 0, inner);
    let inner_t = enc.ty("inner_t", KIND_TYPEDEF, false, 0, const_inner);
    let xy = enc.records(
        "",
        KIND_STRUCT,
        false,
        8,
        &[("x", int, Some(0)), ("y", int, Some(32))],
    );
    let anon = enc.records(
        "",
        KIND_UNION,
        false,
        8,
        &[("", xy, Some(0)), ("raw", ulong, Some(0))],
    );
    let arr = enc.ty("", KIND_ARRAY, false, 0, 0);
    enc.words(&[int, int, 4]);
    let ptr = enc.ty("", KIND_PTR, false, 0, inner);
    let members = [
        ("head", ulong, Some(0)),
        ("", anon, Some(64)),
        ("nested", inner_t, Some(128)),
        ("arr", arr, Some(192)),
        ("flags", int, Some((3 << 24) | 320)),
        ("ptr", ptr, Some(384)),
    ];
    let outer = enc.records("outer", KIND_STRUCT, true, 56, &members);
    enc.ty("outer_t", KIND_TYPEDEF, false, 0, outer);
    let u3 = enc.int("unsigned int", 4, 3); // old-style bitfield: width in the INT itself
    enc.records("old", KIND_STRUCT, false, 4, &[("bits", u3, Some(5))]);
    enc.finish()
}

#[test]
fn member_offsets_follow_anonymous_members_typedefs_and_arrays() {
    let btf = Btf::from_bytes(&struct_blob()).unwrap();
    let at = |path: &str| btf.member_offset("outer", path).map(|l| (l.offset, l.size));
    assert_eq!(at("head").unwrap(), (0, 8));
    assert_eq!(at("x").unwrap(), (8, 4));
    assert_eq!(at("y").unwrap(), (12, 4));
    assert_eq!(at("raw").unwrap(), (8, 8));
    assert_eq!(at("nested").unwrap(), (16, 8));
    assert_eq!(at("nested.b").unwrap(), (20, 4));
    assert_eq!(at("arr").unwrap(), (24, 16));
    assert_eq!(at("arr[3]").unwrap(), (36, 4));
    assert_eq!(at("ptr").unwrap(), (48, 8));
    assert_eq!(btf.member_offset("outer_t", "nested.a").unwrap().offset, 16);
}

#[test]
fn member_offset_errors_name_the_problem() {
    let btf = Btf::from_bytes(&struct_blob()).unwrap();
    let problem = |struct_name: &str, path: &str| match btf.member_offset(struct_name, path) {
        Err(BtfError::Member { problem, .. }) => problem,
        other => panic!("{struct_name}.{path}: expected a member error, got {other:?}"),
    };
    let cases = [
        (
            "outer",
            "flags",
            "`flags` is a bitfield (3 bits at bit offset 320)",
        ),
        (
            "old",
            "bits",
            "`bits` is a bitfield (3 bits at bit offset 5)",
        ),
        (
            "outer",
            "arr[4]",
            "index 4 is out of bounds: `arr` has 4 elements",
        ),
        ("outer", "head[0]", "`head` is a int, not an array"),
        ("outer", "ptr.a", "`a` is inside a pointer, not a struct"),
        ("outer", "a..b", "`` is not a C member name"),
        ("outer", "arr[x]", "`x` is not an array index"),
        ("outer", "nested.c", "no member `c`; members there: a, b"),
        (
            "outer",
            "z",
            "members there: head, x, y, raw, nested, arr, flags, ptr",
        ),
    ];
    for (struct_name, path, expected) in cases {
        let problem = problem(struct_name, path);
        assert!(
            problem.contains(expected),
            "{struct_name}.{path}: {problem}"
        );
    }
    let bitfield = btf.member_offset("outer", "flags").unwrap_err().to_string();
    assert!(
        bitfield.starts_with("cannot locate `outer.flags`"),
        "{bitfield}"
    );
    let missing = btf.member_offset("nope", "a").unwrap_err();
    assert!(
        matches!(missing, BtfError::StructNotFound { .. }),
        "{missing}"
    );
}

#[test]
fn tracepoint_args_come_from_the_btf_trace_typedef() {
    let mut enc = Encoder::new();
    let int = enc.int("int", 4, 32);
    let memcg = enc.records("mem_cgroup", KIND_STRUCT, false, 0, &[]);
    let memcg_ptr = enc.ty("", KIND_PTR, false, 0, memcg);
    let void_ptr = enc.ty("", KIND_PTR, false, 0, 0);
    let params = [
        ("", void_ptr, None),
        ("", memcg_ptr, None),
        ("", int, None),
        ("", int, None),
    ];
    let proto = enc.records("", KIND_FUNC_PROTO, false, 0, &params);
    let proto_ptr = enc.ty("", KIND_PTR, false, 0, proto);
    enc.ty(
        "btf_trace_mod_memcg_state",
        KIND_TYPEDEF,
        false,
        0,
        proto_ptr,
    );
    enc.ty("btf_trace_anonymous", KIND_TYPEDEF, false, 0, proto_ptr);
    enc.ty("btf_trace_not_a_pointer", KIND_TYPEDEF, false, 0, int);
    let named = [
        ("__data", void_ptr, None),
        ("memcg", memcg_ptr, None),
        ("item", int, None),
        ("val", int, None),
    ];
    let named_proto = enc.records("", KIND_FUNC_PROTO, false, 0, &named);
    enc.ty(
        "__probestub_mod_memcg_state",
        KIND_FUNC,
        false,
        0,
        named_proto,
    );
    let char_id = enc.int("char", 1, 8);
    let const_char = enc.ty("", KIND_CONST, false, 0, char_id);
    let const_char_ptr = enc.ty("", KIND_PTR, false, 0, const_char);
    let btf = Btf::from_bytes(&enc.finish()).unwrap();

    let args = btf.tracepoint_args("mod_memcg_state").unwrap();
    let pairs: Vec<_> = args
        .iter()
        .map(|a| (a.name.as_str(), a.type_name.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("memcg", "struct mem_cgroup *"),
            ("item", "int"),
            ("val", "int")
        ]
    );
    let anonymous = btf.tracepoint_args("anonymous").unwrap();
    assert_eq!(
        anonymous
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["arg0", "arg1", "arg2"]
    );
    assert!(matches!(
        btf.tracepoint_args("nope"),
        Err(BtfError::TracepointNotFound { .. })
    ));
    assert!(matches!(
        btf.tracepoint_args("not_a_pointer"),
        Err(BtfError::BadTracepointType { .. })
    ));
    assert_eq!(btf.type_name(const_char_ptr).unwrap(), "const char *");
    assert_eq!(
        btf.type_name(proto_ptr).unwrap(),
        "void (*)(void *, struct mem_cgroup *, int, int)"
    );
}

#[test]
fn truncated_garbage_and_cyclic_input_errors_without_panicking() {
    let blob = struct_blob();
    for len in 0..blob.len() {
        assert!(
            Btf::from_bytes(&blob[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    let mut bad_magic = blob.clone();
    bad_magic[0] = 0;
    assert!(Btf::from_bytes(&bad_magic)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    let mut huge_strings = blob.clone();
    huge_strings[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Btf::from_bytes(&huge_strings)
        .unwrap_err()
        .to_string()
        .contains("string section"));

    let mut enc = Encoder::new();
    enc.ty("future", 25, false, 0, 0);
    let unknown = Btf::from_bytes(&enc.finish()).unwrap_err().to_string();
    assert!(
        unknown.contains("kind 25") && unknown.contains("update the agent"),
        "{unknown}"
    );

    let mut enc = Encoder::new();
    let looped = enc.ty("looped", KIND_TYPEDEF, false, 0, 1); // typedef to itself
    enc.records(
        "s",
        KIND_STRUCT,
        false,
        4,
        &[("m", looped, Some(0)), ("dangling", 999, Some(0))],
    );
    let btf = Btf::from_bytes(&enc.finish()).unwrap();
    assert!(matches!(
        btf.member_offset("s", "m.x"),
        Err(BtfError::Malformed { .. })
    ));
    assert!(matches!(
        btf.member_offset("s", "dangling"),
        Err(BtfError::Malformed { .. })
    ));

    // Deterministic byte corruption: every outcome is fine except a panic or a hang.
    let (mut seed, mut parsed) = (0x2545_f491_u64, 0);
    for _ in 0..3000 {
        let mut corrupt = blob.clone();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = HEADER_LEN + (seed >> 33) as usize % (blob.len() - HEADER_LEN);
            corrupt[at] = (seed >> 13) as u8;
        }
        if let Ok(btf) = Btf::from_bytes(&corrupt) {
            parsed += 1;
            for path in ["head", "x", "nested.b", "arr[3]", "ptr", "flags"] {
                let _ = btf.member_offset("outer", path);
            }
            let _ = (btf.enum_variants("inner"), btf.tracepoint_args("outer"));
        }
    }
    assert!(
        parsed > 0,
        "corruption never left a parseable blob; the loop tested nothing"
    );
}

#[test]
fn running_kernel_btf_has_what_the_agent_needs() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        eprintln!(
            "skipping: {} does not exist (kernel without CONFIG_DEBUG_INFO_BTF)",
            path.display()
        );
        return;
    }
    let btf = Btf::from_file(path).unwrap();
    assert!(btf.enum_value("memcg_stat_item", "MEMCG_SWAP").is_ok());
    assert!(btf.enum_value("node_stat_item", "NR_FILE_PAGES").is_ok());
    assert!(btf.enum_value("node_stat_item", "NR_ANON_MAPPED").is_ok());
    assert!(btf.enum_value("vm_event_item", "PGFAULT").is_ok());
    let memory_id = btf
        .enum_value("cgroup_subsys_id", "memory_cgrp_id")
        .unwrap();
    let subsys_count = btf
        .enum_value("cgroup_subsys_id", "CGROUP_SUBSYS_COUNT")
        .unwrap();
    assert!((0..subsys_count).contains(&memory_id));
    let pointer_members = [
        ("task_struct", "cgroups"),
        ("cgroup_subsys_state", "cgroup"),
        ("cgroup", "kn"),
        ("kmem_cache", "name"),
    ];
    for (struct_name, member) in pointer_members {
        let location = btf.member_offset(struct_name, member).unwrap();
        assert_eq!(location.size, 8, "{struct_name}.{member} is a pointer");
        eprintln!("{struct_name}.{member}: {location:?}");
    }
    assert_eq!(btf.member_offset("kernfs_node", "id").unwrap().size, 8);
    assert_eq!(btf.member_offset("kmem_cache", "size").unwrap().size, 4);
    assert!(btf.member_offset("mem_cgroup", "css").is_ok());
    let subsys = btf.member_offset("css_set", "subsys").unwrap();
    assert_eq!(subsys.size as i64, 8 * subsys_count);
    let memory = btf
        .member_offset("css_set", &format!("subsys[{memory_id}]"))
        .unwrap();
    assert_eq!(
        memory,
        MemberLocation {
            offset: subsys.offset + 8 * memory_id as u32,
            size: 8
        }
    );
    let css_cgroup = btf.member_offset("mem_cgroup", "css.cgroup").unwrap();
    assert_eq!(
        css_cgroup,
        btf.member_offset("cgroup_subsys_state", "cgroup").unwrap()
    );
    let args = btf.tracepoint_args("mod_memcg_state").unwrap();
    assert_eq!(args[0].type_name, "struct mem_cgroup *", "{args:?}");
    eprintln!("memory_cgrp_id={memory_id} subsys={subsys:?} mod_memcg_state args={args:?}");
}
