//! The cgroup tree as paths: ancestry arithmetic, bounded walks, and the id -> path resolver.
//! Relative paths look like `"/a/b"`; `"/"` is the hierarchy's root.
use std::collections::{HashMap, VecDeque};

use crate::cgroupfs::{CgroupError, CgroupFs};

/// Whether `path` is `ancestor` or lies below it: `/a/b` is within `/a`, `/ab` is not.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    ancestor.is_empty()
        || path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` and its ancestors, nearest first: "/a/b" -> "/a/b", "/a", "/".
pub fn lineage(path: &str) -> impl Iterator<Item = &str> {
    let start = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    std::iter::successors(Some(start), |p| match p.rfind('/') {
        _ if *p == "/" => None,
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    })
}

/// A breadth-first walk of the tree below one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// The start and its descendants, parents before children.
    pub paths: Vec<String>,
    /// The walk stopped at the depth or entry bound, so some cgroups were not seen.
    pub truncated: bool,
}

/// Walks `start` and its descendants breadth-first, at most `max_depth` levels below `start`
/// and `max_entries` cgroups. Cgroups removed during the walk are skipped; only an unreadable
/// `start` is an error.
pub fn walk(
    fs: &CgroupFs,
    start: &str,
    max_depth: usize,
    max_entries: usize,
) -> Result<Walk, CgroupError> {
    let mut found = Walk::default();
    let mut queue = VecDeque::from([(start.to_owned(), 0usize)]);
    while let Some((rel, depth)) = queue.pop_front() {
        if found.paths.len() >= max_entries {
            found.truncated = true;
            break;
        }
        let children = match fs.children(&rel) {
            Ok(children) => children,
            Err(e) if rel == start => return Err(e),
            Err(_) => continue,
        };
        if depth >= max_depth {
            found.truncated |= !children.is_empty();
        } else {
            let parent = rel.trim_end_matches('/');
            queue.extend(
                children
                    .into_iter()
                    .map(|c| (format!("{parent}/{c}"), depth + 1)),
            );
        }
        found.paths.push(rel);
    }
    Ok(found)
}

/// What a full rescan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    pub entries: usize,
    /// The walk stopped at the depth or entry bound, so some cgroups were not seen.
    pub truncated: bool,
}

/// Maps cgroup ids (from tracepoints) to relative paths, rescanning the tree on a miss.
/// Rescans cost a walk of the whole hierarchy, so [`Self::resolve`] does at most one per
/// `generation` value: the caller advances the generation (e.g. once per second, or on a
/// `cgroup:cgroup_mkdir` event) and ids that stay unknown cost nothing until then.
#[derive(Debug)]
pub struct IdPathResolver {
    fs: CgroupFs,
    paths: HashMap<u64, String>,
    max_depth: usize,
    max_entries: usize,
    last_rescan_generation: Option<u64>,
}

impl IdPathResolver {
    /// `max_depth` counts levels below the root (0 = root only); `max_entries` bounds one walk.
    pub fn new(fs: CgroupFs, max_depth: usize, max_entries: usize) -> Self {
        IdPathResolver {
            fs,
            paths: HashMap::new(),
            max_depth,
            max_entries,
            last_rescan_generation: None,
        }
    }

    /// The path of `id`: cached, else after one rescan if none ran yet in `generation`.
    /// A failed rescan reads as a miss; call [`Self::rescan`] to see the error.
    pub fn resolve(&mut self, id: u64, generation: u64) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        if self.last_rescan_generation == Some(generation) {
            return None;
        }
        self.last_rescan_generation = Some(generation);
        self.rescan().ok()?;
        self.paths.get(&id).cloned()
    }

    /// Walks the tree within the bounds. A complete walk replaces the cache (so removed cgroups
    /// drop out); a truncated one only adds to it.
    pub fn rescan(&mut self) -> Result<ScanSummary, CgroupError> {
        let tree = walk(&self.fs, "/", self.max_depth, self.max_entries)?;
        let found: HashMap<u64, String> = tree
            .paths
            .into_iter()
            .filter_map(|rel| Some((self.fs.cgroup_id(&rel).ok()?, rel)))
            .collect();
        let entries = found.len();
        if tree.truncated {
            self.paths.extend(found);
        } else {
            self.paths = found;
        }
        Ok(ScanSummary {
            entries,
            truncated: tree.truncated,
        })
    }

    pub fn insert(&mut self, id: u64, path: String) {
        self.paths.insert(id, path);
    }

    pub fn remove(&mut self, id: u64) -> Option<String> {
        self.paths.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
#[path = "cgroup_tree_tests.rs"]
mod tests;
