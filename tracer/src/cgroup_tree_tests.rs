use std::fs;

use super::*;
use crate::cgroupfs::{CgroupFs, CgroupVersion};

#[test]
fn resolver_rescans_once_per_generation_within_bounds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
    let cg = CgroupFs::at(tmp.path(), CgroupVersion::V2);
    let id_b = cg.cgroup_id("/a/b").expect("id");
    let mut resolver = IdPathResolver::new(cg.clone(), 8, 100);
    assert_eq!(resolver.resolve(id_b, 0).as_deref(), Some("/a/b"));
    assert_eq!(resolver.len(), 3, "root, /a and /a/b");
    fs::create_dir(tmp.path().join("a/c")).expect("mkdir");
    let id_c = cg.cgroup_id("/a/c").expect("id");
    assert_eq!(
        resolver.resolve(id_c, 0),
        None,
        "generation 0 already rescanned"
    );
    assert_eq!(resolver.resolve(id_c, 1).as_deref(), Some("/a/c"));
    assert_eq!(resolver.remove(id_c).as_deref(), Some("/a/c"));
    resolver.insert(7, "/manual".to_owned());
    assert_eq!(resolver.resolve(7, 1).as_deref(), Some("/manual"));
    let mut shallow = IdPathResolver::new(cg, 1, 100);
    let summary = shallow.rescan().expect("scan");
    assert_eq!(
        summary,
        ScanSummary {
            entries: 2,
            truncated: true
        }
    );
    assert_eq!(shallow.resolve(id_b, 0), None, "/a/b is below max_depth");
}

#[test]
fn walk_is_breadth_first_and_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("a/b/c")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("d")).expect("mkdir");
    let cg = CgroupFs::at(tmp.path(), CgroupVersion::V2);
    let all = walk(&cg, "/", 8, 100).expect("walk");
    assert_eq!(all.paths, ["/", "/a", "/d", "/a/b", "/a/b/c"]);
    assert!(!all.truncated);
    let sub = walk(&cg, "/a", 1, 100).expect("walk");
    assert_eq!(
        sub,
        Walk {
            paths: vec!["/a".into(), "/a/b".into()],
            truncated: true
        }
    );
    let few = walk(&cg, "/", 8, 2).expect("walk");
    assert_eq!(
        few,
        Walk {
            paths: vec!["/".into(), "/a".into()],
            truncated: true
        }
    );
    assert!(
        walk(&cg, "/missing", 8, 100).is_err(),
        "an unreadable start is an error"
    );
}

#[test]
fn subtree_membership() {
    assert!(is_within("/a", "/a"));
    assert!(is_within("/a/b", "/a"));
    assert!(is_within("/a/b", "/a/"));
    assert!(!is_within("/ab", "/a"));
    assert!(is_within("/anything", "/"));
    assert!(!is_within("/", "/a"));
}

#[test]
fn lineage_walks_to_the_root() {
    assert_eq!(
        lineage("/a/b/c").collect::<Vec<_>>(),
        ["/a/b/c", "/a/b", "/a", "/"]
    );
    assert_eq!(lineage("/").collect::<Vec<_>>(), ["/"]);
    assert_eq!(lineage("/a/").collect::<Vec<_>>(), ["/a", "/"]);
    assert_eq!(lineage("a/b").collect::<Vec<_>>(), ["a/b", "a"]);
}
