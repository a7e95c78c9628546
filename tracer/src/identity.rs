//! Maps a cgroup path (relative to its hierarchy root, as in `/proc/<pid>/cgroup` or the cgroup
//! tracepoints) to the container identity an operator recognises. Pure string work, no filesystem,
//! infallible: anything unrecognised becomes [`IdentityKind::Plain`], so there is no error type.
//!
//! How a path is read (cgroup v1 and v2 paths have the same shape relative to their root):
//! - Components are split on `/`; empty and `.` components, a trailing newline and the
//!   ` (deleted)` suffix that v2 `/proc/<pid>/cgroup` prints for removed cgroups are dropped.
//! - The DEEPEST component that names a container wins; anything below it (`init.scope`, a
//!   systemd tree inside the container, crio/podman's `container` leaf) still belongs to that
//!   container, and `unit` then names the deepest systemd unit at or below it. Outer containers
//!   (kind-in-docker, docker-in-docker) are ignored in favour of the innermost one.
//! - Kubernetes pod context is taken from the nearest pod cgroup above the container.
//! - Without a container, the deepest pod cgroup gives kind `Pod`; otherwise the leaf decides.
//!
//! Heuristics (documented because paths carry no type information):
//! - A bare hex id (>= 32 chars, no runtime prefix) is a container only under a `docker`
//!   component (docker cgroupfs driver, runtime Docker) or directly under a cgroupfs pod cgroup
//!   (`pod<uid>`). There dockershim and containerd use identical shapes, so runtime is `None`.
//! - Plain containerd (`ctr run`, cgroupfs): `/<ns>/<id>` with `<ns>` one of
//!   [`CONTAINERD_NAMESPACES`] at the TOP level and `<id>` a valid containerd identifier.
//!   Any other top-level name is left Plain (e.g. `/process_api/<hex>`).
//! - `machine-<name>.scope` is any machined-registered machine; it is reported as
//!   systemd-nspawn although libvirt VMs register the same way.
//! - `unit` keeps systemd's escaped spelling (what `systemctl` accepts); machine names shown in
//!   `name`/`container_id` are unescaped (`\x2d` -> `-`).
//! - `short_id` is the first 12 chars of a hex id; for name-based ids (LXC, nspawn, containerd
//!   names) it is the whole name, which is already what a person recognises.

use serde::{Deserialize, Serialize};

/// The identity of the workload behind one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerIdentity {
    pub kind: IdentityKind,
    pub runtime: Option<Runtime>,
    /// Full id as it appears in the path (usually 64 hex chars; a name for LXC/nspawn).
    pub container_id: Option<String>,
    pub short_id: Option<String>,
    /// Kubernetes pod UID with dashes restored (the systemd driver encodes `-` as `_`).
    pub pod_uid: Option<String>,
    pub qos: Option<QosClass>,
    /// systemd unit/slice name of the deepest unit at or below the identified cgroup.
    pub unit: Option<String>,
    /// Short display name, e.g. `docker:3f2a1b4c5d6e`, `pod <uid>/cri-containerd:abcdef012345`.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Root,
    Container,
    /// Pod-level cgroup with no container below it.
    Pod,
    SystemdUnit,
    SystemdSlice,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    Lxc,
    SystemdNspawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

const SHORT_ID_LEN: usize = 12;
/// Prefixed ids (`docker-<id>.scope`) are unambiguous, so shorter hex ids are accepted.
const MIN_PREFIXED_HEX_ID_LEN: usize = 12;
/// Bare hex names need more evidence: a short hex string is too easily an ordinary group name.
const MIN_BARE_HEX_ID_LEN: usize = 32;
/// Longest id accepted, so a pathological component is never taken for a container.
const MAX_HEX_ID_LEN: usize = 128;
/// containerd namespaces recognised as a top-level `/<ns>/<id>` container cgroup.
pub const CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io", "moby", "buildkit"];
/// containerd's identifier limit (`identifiers.Validate`).
const MAX_CONTAINERD_ID_LEN: usize = 76;

/// `(cgroup name prefix, runtime, display label)`; conmon prefixes first so they win.
const RUNTIME_PREFIXES: &[(&str, Runtime, &str)] = &[
    ("cri-containerd-", Runtime::Containerd, "cri-containerd"),
    ("crio-conmon-", Runtime::Crio, "crio-conmon"),
    ("crio-", Runtime::Crio, "crio"),
    ("libpod-conmon-", Runtime::Podman, "podman-conmon"),
    ("libpod-", Runtime::Podman, "podman"),
    ("docker-", Runtime::Docker, "docker"),
    ("nerdctl-", Runtime::Containerd, "nerdctl"),
];

/// Unit types that can own a cgroup.
const UNIT_SUFFIXES: &[&str] = &[".service", ".scope", ".slice", ".socket", ".mount", ".swap"];

struct ContainerMatch {
    runtime: Option<Runtime>,
    id: String,
    short_id: String,
    /// `label:short` or just `short` when the runtime is unknown.
    display: String,
}

struct PodMatch {
    uid: String,
    qos: QosClass,
}

/// A parsed `...kubepods[-<qos>][-pod<uid>].slice` name (systemd cgroup driver).
struct KubepodsSlice {
    qos: Option<QosClass>,
    pod_uid: Option<String>,
}

/// Identifies the workload behind `cgroup_path`. Never panics.
pub fn identify(cgroup_path: &str) -> ContainerIdentity {
    let components = split_components(cgroup_path);
    if components.is_empty() {
        return ContainerIdentity::empty(IdentityKind::Root, "/".to_string());
    }
    let deepest_container = (0..components.len())
        .rev()
        .find_map(|index| container_at(&components, index).map(|found| (index, found)));
    if let Some((index, found)) = deepest_container {
        return container_identity(&components, index, found);
    }
    let deepest_pod = (0..components.len())
        .rev()
        .find_map(|index| pod_at(&components, index).map(|pod| (index, pod)));
    if let Some((index, pod)) = deepest_pod {
        let mut identity = ContainerIdentity::empty(IdentityKind::Pod, format!("pod {}", pod.uid));
        identity.qos = Some(pod.qos);
        identity.pod_uid = Some(pod.uid);
        identity.unit = deepest_unit(&components, index);
        return identity;
    }
    leaf_identity(&components)
}

impl ContainerIdentity {
    fn empty(kind: IdentityKind, name: String) -> Self {
        ContainerIdentity {
            kind,
            runtime: None,
            container_id: None,
            short_id: None,
            pod_uid: None,
            qos: None,
            unit: None,
            name,
        }
    }
}

fn split_components(path: &str) -> Vec<&str> {
    let path = path.trim_end_matches(['\n', '\r']);
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .collect()
}

fn container_identity(
    components: &[&str],
    index: usize,
    found: ContainerMatch,
) -> ContainerIdentity {
    // Pod context comes from the nearest pod above, but never from beyond an outer container.
    let pod = (0..index)
        .rev()
        .take_while(|&above| container_at(components, above).is_none())
        .find_map(|above| pod_at(components, above));
    let name = match &pod {
        Some(pod) => format!("pod {}/{}", pod.uid, found.display),
        None => found.display,
    };
    let mut identity = ContainerIdentity::empty(IdentityKind::Container, name);
    identity.runtime = found.runtime;
    identity.container_id = Some(found.id);
    identity.short_id = Some(found.short_id);
    identity.unit = deepest_unit(components, index);
    if let Some(pod) = pod {
        identity.pod_uid = Some(pod.uid);
        identity.qos = Some(pod.qos);
    }
    identity
}

/// No container and no pod: the leaf is a systemd unit/slice, a kubepods QoS level or plain.
fn leaf_identity(components: &[&str]) -> ContainerIdentity {
    let plain_name = format!("/{}", components.join("/"));
    let leaf_index = components.len().saturating_sub(1);
    let leaf = components.get(leaf_index).copied().unwrap_or_default();
    let parent = parent_of(components, leaf_index);
    let qos = match parse_kubepods_slice(leaf) {
        Some(slice) => slice.qos,
        None if parent == Some("kubepods") => qos_from_level(leaf),
        None => None,
    };
    let deepest_unit = (0..components.len())
        .rev()
        .find_map(|index| Some((index, unit_kind(components.get(index)?)?)));
    let mut identity = match deepest_unit {
        // A non-unit child of a service/scope is a delegated subgroup (systemd's Delegate=);
        // slices cannot delegate, so anything below a slice that is not a unit stays plain.
        Some((index, kind)) if index == leaf_index || kind == IdentityKind::SystemdUnit => {
            let unit = components
                .get(index)
                .copied()
                .unwrap_or_default()
                .to_string();
            let mut identity = ContainerIdentity::empty(kind, unit.clone());
            identity.unit = Some(unit);
            identity
        }
        _ => ContainerIdentity::empty(IdentityKind::Plain, plain_name),
    };
    identity.qos = qos;
    identity
}

fn parent_of<'a>(components: &[&'a str], index: usize) -> Option<&'a str> {
    components.get(index.checked_sub(1)?).copied()
}

fn container_at(components: &[&str], index: usize) -> Option<ContainerMatch> {
    let component = *components.get(index)?;
    let parent = parent_of(components, index);
    prefixed_container(component)
        .or_else(|| machine_container(component))
        .or_else(|| lxc_container(component, parent))
        .or_else(|| bare_hex_container(components, index))
        .or_else(|| containerd_namespace_container(components, index))
}

/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>` (cgroupfs), `libpod-<id>`...
fn prefixed_container(component: &str) -> Option<ContainerMatch> {
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    RUNTIME_PREFIXES
        .iter()
        .find_map(|&(prefix, runtime, label)| {
            let id = stem.strip_prefix(prefix)?;
            is_hex_id(id, MIN_PREFIXED_HEX_ID_LEN)
                .then(|| hex_container(Some(runtime), Some(label), id))
        })
}

/// `systemd-nspawn@<name>.service` and machined's `machine-<name>.scope`.
fn machine_container(component: &str) -> Option<ContainerMatch> {
    let escaped = component
        .strip_prefix("systemd-nspawn@")
        .and_then(|rest| rest.strip_suffix(".service"))
        .or_else(|| {
            component
                .strip_prefix("machine-")
                .and_then(|rest| rest.strip_suffix(".scope"))
        })
        .filter(|name| !name.is_empty())?;
    Some(named_container(
        Runtime::SystemdNspawn,
        "nspawn",
        unescape_systemd(escaped),
    ))
}

/// LXC 4+/LXD `lxc.payload.<name>` / `lxc.monitor.<name>`, LXC 3 `lxc.payload/<name>`, LXC 1-2
/// `lxc/<name>`.
fn lxc_container(component: &str, parent: Option<&str>) -> Option<ContainerMatch> {
    let (label, name) = if let Some(name) = component.strip_prefix("lxc.payload.") {
        ("lxc", name)
    } else if let Some(name) = component.strip_prefix("lxc.monitor.") {
        ("lxc-monitor", name)
    } else {
        match parent? {
            "lxc" | "lxc.payload" => ("lxc", component),
            "lxc.monitor" => ("lxc-monitor", component),
            _ => return None,
        }
    };
    (!name.is_empty()).then(|| named_container(Runtime::Lxc, label, name.to_string()))
}

/// `/docker/<64hex>` (docker cgroupfs driver) and `.../pod<uid>/<64hex>` (kubelet cgroupfs).
fn bare_hex_container(components: &[&str], index: usize) -> Option<ContainerMatch> {
    let id = *components.get(index)?;
    if !is_hex_id(id, MIN_BARE_HEX_ID_LEN) {
        return None;
    }
    let parent_index = index.checked_sub(1)?;
    if components.get(parent_index) == Some(&"docker") {
        return Some(hex_container(Some(Runtime::Docker), Some("docker"), id));
    }
    pod_at(components, parent_index).map(|_| hex_container(None, None, id))
}

/// Plain containerd (`ctr run`): `/<namespace>/<id>` at the top of the hierarchy.
fn containerd_namespace_container(components: &[&str], index: usize) -> Option<ContainerMatch> {
    let namespace = *components.first()?;
    let id = *components.get(1)?;
    if index != 1 || !CONTAINERD_NAMESPACES.contains(&namespace) || !is_containerd_id(id) {
        return None;
    }
    let short_id = if is_hex_id(id, MIN_PREFIXED_HEX_ID_LEN) {
        short_of(id)
    } else {
        id.to_string()
    };
    Some(ContainerMatch {
        runtime: Some(Runtime::Containerd),
        id: id.to_string(),
        display: format!("containerd:{namespace}/{short_id}"),
        short_id,
    })
}

fn hex_container(runtime: Option<Runtime>, label: Option<&str>, id: &str) -> ContainerMatch {
    let short_id = short_of(id);
    let display = match label {
        Some(label) => format!("{label}:{short_id}"),
        None => short_id.clone(),
    };
    ContainerMatch {
        runtime,
        id: id.to_string(),
        short_id,
        display,
    }
}

fn named_container(runtime: Runtime, label: &str, name: String) -> ContainerMatch {
    ContainerMatch {
        runtime: Some(runtime),
        display: format!("{label}:{name}"),
        short_id: name.clone(),
        id: name,
    }
}

/// A Kubernetes pod cgroup: `...kubepods[-<qos>]-pod<uid_>.slice` (systemd driver) or
/// `kubepods[/<qos>]/pod<uid>` (cgroupfs driver).
fn pod_at(components: &[&str], index: usize) -> Option<PodMatch> {
    let component = *components.get(index)?;
    if let Some(slice) = parse_kubepods_slice(component) {
        return Some(PodMatch {
            uid: slice.pod_uid?,
            qos: slice.qos?,
        });
    }
    let uid = component
        .strip_prefix("pod")
        .filter(|uid| is_pod_uid(uid))?;
    let parent = *components.get(index.checked_sub(1)?)?;
    let qos = if parent == "kubepods" {
        QosClass::Guaranteed
    } else {
        let grandparent = *components.get(index.checked_sub(2)?)?;
        qos_from_level(parent).filter(|_| grandparent == "kubepods")?
    };
    Some(PodMatch {
        uid: uid.to_string(),
        qos,
    })
}

/// Parses slice names whose dash-separated path contains `kubepods`; any prefix before it is
/// allowed because kubelet's `--cgroup-root` adds one (kind/minikube: `kubelet-kubepods-...`).
fn parse_kubepods_slice(component: &str) -> Option<KubepodsSlice> {
    let stem = component.strip_suffix(".slice")?;
    let kubepods_at = stem.split('-').position(|part| part == "kubepods")?;
    let rest: Vec<&str> = stem.split('-').skip(kubepods_at + 1).collect();
    let (qos, pod_uid) = match rest.as_slice() {
        [] => (None, None),
        [level] if qos_from_level(level).is_some() => (qos_from_level(level), None),
        [pod] => (Some(QosClass::Guaranteed), Some(systemd_pod_uid(pod)?)),
        [level, pod] => (Some(qos_from_level(level)?), Some(systemd_pod_uid(pod)?)),
        _ => return None,
    };
    Some(KubepodsSlice { qos, pod_uid })
}

/// systemd slice names cannot carry `-` inside a path element, so kubelet writes `_`.
fn systemd_pod_uid(part: &str) -> Option<String> {
    let uid = part.strip_prefix("pod").filter(|uid| is_pod_uid(uid))?;
    Some(uid.replace('_', "-"))
}

fn qos_from_level(level: &str) -> Option<QosClass> {
    match level {
        "burstable" => Some(QosClass::Burstable),
        "besteffort" => Some(QosClass::BestEffort),
        _ => None,
    }
}

/// Pod UIDs are UUIDs, but static pods use a 32-hex config hash, so only the charset is checked.
fn is_pod_uid(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_hex_id(id: &str, min_len: usize) -> bool {
    (min_len..=MAX_HEX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// containerd identifiers: alphanumeric runs joined by single `.`, `_` or `-`.
fn is_containerd_id(id: &str) -> bool {
    let is_separator = |b: u8| matches!(b, b'.' | b'_' | b'-');
    (1..=MAX_CONTAINERD_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || is_separator(b))
        && id.split(['.', '_', '-']).all(|run| !run.is_empty())
}

fn short_of(id: &str) -> String {
    id.chars().take(SHORT_ID_LEN).collect()
}

/// The kind of systemd unit `component` names, if it names one.
fn unit_kind(component: &str) -> Option<IdentityKind> {
    let is_unit_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'\\' | b'@');
    UNIT_SUFFIXES.iter().find_map(|suffix| {
        let stem = component.strip_suffix(suffix)?;
        if stem.is_empty() || !stem.bytes().all(is_unit_char) {
            return None;
        }
        Some(if *suffix == ".slice" {
            IdentityKind::SystemdSlice
        } else {
            IdentityKind::SystemdUnit
        })
    })
}

/// The deepest systemd unit name at or below `anchor`.
fn deepest_unit(components: &[&str], anchor: usize) -> Option<String> {
    let below = components.get(anchor..)?;
    below
        .iter()
        .rev()
        .find(|component| unit_kind(component).is_some())
        .map(|unit| unit.to_string())
}

/// Undoes systemd's `\xHH` escaping (`my\x2dbox` -> `my-box`); malformed escapes stay literal.
fn unescape_systemd(escaped: &str) -> String {
    let hex_value = |b: &u8| (*b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = escaped.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'\\' && bytes.get(index + 1) == Some(&b'x') {
            let high = bytes.get(index + 2).and_then(hex_value);
            let low = bytes.get(index + 3).and_then(hex_value);
            if let (Some(high), Some(low)) = (high, low) {
                unescaped.push(high << 4 | low);
                index += 4;
                continue;
            }
        }
        unescaped.push(byte);
        index += 1;
    }
    String::from_utf8_lossy(&unescaped).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentityKind::*;

    const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
    const OUTER: &str = "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999";
    const UID: &str = "1234abcd-5678-90ef-1234-567890abcdef";
    const UID_SYSTEMD: &str = "1234abcd_5678_90ef_1234_567890abcdef";
    const STATIC_UID: &str = "6a1b2c3d4e5f60718293a4b5c6d7e8f9";
    /// Pod slice of a burstable pod under the systemd driver.
    const BURSTABLE: &str =
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice";

    /// Real path shapes and the full identity each must give, one per line:
    /// `path | kind | runtime | container_id | short_id | pod_uid | qos | unit | name`
    /// (`-` = None; `{ID}` 64 hex, `{SHORT}` its first 12, `{UID_}` the systemd-encoded `{UID}`,
    /// `{BURSTABLE}` the burstable pod slice above, `{OUTER}` an enclosing container's id).
    const CORPUS: &str = r"
                                                | root | - | - | - | - | - | - | /
/                                               | root | - | - | - | - | - | - | /
///                                             | root | - | - | - | - | - | - | /
/system.slice/docker-{ID}.scope                 | container | docker | {ID} | {SHORT} | - | - | docker-{ID}.scope | docker:{SHORT}
/docker/{ID}                                    | container | docker | {ID} | {SHORT} | - | - | - | docker:{SHORT}
/docker/{ID}/                                   | container | docker | {ID} | {SHORT} | - | - | - | docker:{SHORT}
/docker/{ID}/init.scope                         | container | docker | {ID} | {SHORT} | - | - | init.scope | docker:{SHORT}
/system.slice/docker-{ID}.scope/init.scope      | container | docker | {ID} | {SHORT} | - | - | init.scope | docker:{SHORT}
/docker/{OUTER}/docker/{ID}                     | container | docker | {ID} | {SHORT} | - | - | - | docker:{SHORT}
/system.slice/docker-{ID}.scope (deleted)       | container | docker | {ID} | {SHORT} | - | - | docker-{ID}.scope | docker:{SHORT}
/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope | container | docker | {ID} | {SHORT} | - | - | docker-{ID}.scope | docker:{SHORT}
/kubepods/burstable/pod{UID}/{ID}               | container | - | {ID} | {SHORT} | {UID} | burstable | - | pod {UID}/{SHORT}
/kubepods/besteffort/pod{UID}/{ID}              | container | - | {ID} | {SHORT} | {UID} | besteffort | - | pod {UID}/{SHORT}
/kubepods/pod{UID}/{ID}                         | container | - | {ID} | {SHORT} | {UID} | guaranteed | - | pod {UID}/{SHORT}
/kubepods/burstable/pod{UID}/crio-{ID}          | container | crio | {ID} | {SHORT} | {UID} | burstable | - | pod {UID}/crio:{SHORT}
/kubepods/besteffort/pod{UID}                   | pod | - | - | - | {UID} | besteffort | - | pod {UID}
/kubepods/pod{UID}/                             | pod | - | - | - | {UID} | guaranteed | - | pod {UID}
/kubepods/burstable                             | plain | - | - | - | - | burstable | - | /kubepods/burstable
/kubepods                                       | plain | - | - | - | - | - | - | /kubepods
{BURSTABLE}/cri-containerd-{ID}.scope           | container | containerd | {ID} | {SHORT} | {UID} | burstable | cri-containerd-{ID}.scope | pod {UID}/cri-containerd:{SHORT}
/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope | container | containerd | {ID} | {SHORT} | {UID} | besteffort | cri-containerd-{ID}.scope | pod {UID}/cri-containerd:{SHORT}
/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope | container | containerd | {ID} | {SHORT} | {UID} | guaranteed | cri-containerd-{ID}.scope | pod {UID}/cri-containerd:{SHORT}
{BURSTABLE}/docker-{ID}.scope                   | container | docker | {ID} | {SHORT} | {UID} | burstable | docker-{ID}.scope | pod {UID}/docker:{SHORT}
{BURSTABLE}/crio-{ID}.scope                     | container | crio | {ID} | {SHORT} | {UID} | burstable | crio-{ID}.scope | pod {UID}/crio:{SHORT}
{BURSTABLE}/crio-{ID}.scope/container           | container | crio | {ID} | {SHORT} | {UID} | burstable | crio-{ID}.scope | pod {UID}/crio:{SHORT}
{BURSTABLE}/crio-conmon-{ID}.scope              | container | crio | {ID} | {SHORT} | {UID} | burstable | crio-conmon-{ID}.scope | pod {UID}/crio-conmon:{SHORT}
{BURSTABLE}                                     | pod | - | - | - | {UID} | burstable | kubepods-burstable-pod{UID_}.slice | pod {UID}
/kubepods.slice/kubepods-pod{UID_}.slice        | pod | - | - | - | {UID} | guaranteed | kubepods-pod{UID_}.slice | pod {UID}
/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC}.slice/cri-containerd-{ID}.scope | container | containerd | {ID} | {SHORT} | {STATIC} | burstable | cri-containerd-{ID}.scope | pod {STATIC}/cri-containerd:{SHORT}
/kubepods.slice/kubepods-burstable.slice        | systemd_slice | - | - | - | - | burstable | kubepods-burstable.slice | kubepods-burstable.slice
/kubepods.slice/kubepods-besteffort.slice/      | systemd_slice | - | - | - | - | besteffort | kubepods-besteffort.slice | kubepods-besteffort.slice
/kubepods.slice                                 | systemd_slice | - | - | - | - | - | kubepods.slice | kubepods.slice
/system.slice/docker-{OUTER}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope | container | containerd | {ID} | {SHORT} | {UID} | besteffort | cri-containerd-{ID}.scope | pod {UID}/cri-containerd:{SHORT}
/machine.slice/libpod-{ID}.scope                | container | podman | {ID} | {SHORT} | - | - | libpod-{ID}.scope | podman:{SHORT}
/machine.slice/libpod-conmon-{ID}.scope         | container | podman | {ID} | {SHORT} | - | - | libpod-conmon-{ID}.scope | podman-conmon:{SHORT}
/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container | container | podman | {ID} | {SHORT} | - | - | libpod-{ID}.scope | podman:{SHORT}
/libpod_parent/libpod-{ID}                      | container | podman | {ID} | {SHORT} | - | - | - | podman:{SHORT}
/default/redis                                  | container | containerd | redis | redis | - | - | - | containerd:default/redis
/k8s.io/{ID}                                    | container | containerd | {ID} | {SHORT} | - | - | - | containerd:k8s.io/{SHORT}
/lxc/web01                                      | container | lxc | web01 | web01 | - | - | - | lxc:web01
/lxc.payload.web01                              | container | lxc | web01 | web01 | - | - | - | lxc:web01
/lxc.payload/web01                              | container | lxc | web01 | web01 | - | - | - | lxc:web01
/lxc.monitor.web01                              | container | lxc | web01 | web01 | - | - | - | lxc-monitor:web01
/lxc.payload.web01/system.slice/nginx.service   | container | lxc | web01 | web01 | - | - | nginx.service | lxc:web01
/machine.slice/systemd-nspawn@my\x2dbox.service | container | systemd-nspawn | my-box | my-box | - | - | systemd-nspawn@my\x2dbox.service | nspawn:my-box
/machine.slice/systemd-nspawn@my\x2dbox.service/payload/system.slice/sshd.service | container | systemd-nspawn | my-box | my-box | - | - | sshd.service | nspawn:my-box
/machine.slice/machine-my\x2dbox.scope          | container | systemd-nspawn | my-box | my-box | - | - | machine-my\x2dbox.scope | nspawn:my-box
/system.slice/nginx.service                     | systemd_unit | - | - | - | - | - | nginx.service | nginx.service
/system.slice/docker.service                    | systemd_unit | - | - | - | - | - | docker.service | docker.service
/user.slice/user-1000.slice/session-3.scope     | systemd_unit | - | - | - | - | - | session-3.scope | session-3.scope
/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope | systemd_unit | - | - | - | - | - | app-firefox-1234.scope | app-firefox-1234.scope
/user.slice/user-1000.slice                     | systemd_slice | - | - | - | - | - | user-1000.slice | user-1000.slice
/system.slice/system-serial\x2dgetty.slice/serial-getty@ttyS0.service | systemd_unit | - | - | - | - | - | serial-getty@ttyS0.service | serial-getty@ttyS0.service
/init.scope                                     | systemd_unit | - | - | - | - | - | init.scope | init.scope
/system.slice/buildkitd.service/buildkit        | systemd_unit | - | - | - | - | - | buildkitd.service | buildkitd.service
/my/plain/group/                                | plain | - | - | - | - | - | - | /my/plain/group
/process_api/d0261e118b6ec690416d90bb467c45a0   | plain | - | - | - | - | - | - | /process_api/d0261e118b6ec690416d90bb467c45a0
/custom-parent/{ID}                             | plain | - | - | - | - | - | - | /custom-parent/{ID}
/default                                        | plain | - | - | - | - | - | - | /default
/default/bad..id                                | plain | - | - | - | - | - | - | /default/bad..id
/system.slice/stray                             | plain | - | - | - | - | - | - | /system.slice/stray
";

    fn expand(text: &str) -> String {
        text.replace("{BURSTABLE}", BURSTABLE)
            .replace("{SHORT}", &ID[..12])
            .replace("{ID}", ID)
            .replace("{OUTER}", OUTER)
            .replace("{UID_}", UID_SYSTEMD)
            .replace("{UID}", UID)
            .replace("{STATIC}", STATIC_UID)
    }

    /// Parses one corpus field; enum fields go through serde, so the spellings are checked too.
    fn field<T: serde::de::DeserializeOwned>(text: &str, quote: bool) -> Option<T> {
        let text = expand(text);
        let json = if quote {
            format!("\"{text}\"")
        } else {
            serde_json::to_string(&text).ok()?
        };
        (text != "-").then(|| serde_json::from_str(&json).unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    fn corpus() -> Vec<(String, ContainerIdentity)> {
        let rows = CORPUS
            .lines()
            .filter(|line| !line.trim().is_empty() || line.contains('|'));
        rows.map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let [path, kind, runtime, id, short, pod, qos, unit, name] = cells[..] else {
                panic!("corpus row needs 9 cells: {row}");
            };
            let expected = ContainerIdentity {
                kind: field(kind, true).unwrap_or_else(|| panic!("kind missing: {row}")),
                runtime: field(runtime, true),
                container_id: field(id, false),
                short_id: field(short, false),
                pod_uid: field(pod, false),
                qos: field(qos, true),
                unit: field(unit, false),
                name: expand(name),
            };
            (expand(path), expected)
        })
        .collect()
    }

    #[test]
    fn corpus_paths_map_to_expected_identities() {
        assert_eq!((ID.len(), OUTER.len()), (64, 64));
        let corpus = corpus();
        assert!(corpus.len() >= 30, "corpus has {} rows", corpus.len());
        for (path, expected) in corpus {
            assert_eq!(identify(&path), expected, "path {path:?}");
        }
    }

    #[test]
    fn trailing_newline_from_proc_is_ignored() {
        let expected = identify("/system.slice/nginx.service");
        assert_eq!(identify("/system.slice/nginx.service\n"), expected);
        assert_eq!(expected.kind, SystemdUnit);
    }

    #[test]
    fn json_round_trip_uses_documented_spellings() -> Result<(), serde_json::Error> {
        let identity = identify(&expand("{BURSTABLE}/cri-containerd-{ID}.scope"));
        let json = serde_json::to_string(&identity)?;
        for part in [
            r#""kind":"container""#,
            r#""runtime":"containerd""#,
            r#""qos":"burstable""#,
        ] {
            assert!(json.contains(part), "{part} missing in {json}");
        }
        assert!(json.contains(&format!(r#""pod_uid":"{UID}""#)), "{json}");
        assert_eq!(serde_json::from_str::<ContainerIdentity>(&json)?, identity);

        let nspawn = identify("/machine.slice/systemd-nspawn@box.service");
        let json = serde_json::to_string(&nspawn)?;
        assert!(json.contains(r#""runtime":"systemd-nspawn""#), "{json}");
        assert_eq!(serde_json::from_str::<ContainerIdentity>(&json)?, nspawn);
        let unit = serde_json::to_string(&identify("/system.slice/nginx.service"))?;
        assert!(
            unit.contains(r#""kind":"systemd_unit","runtime":null"#),
            "{unit}"
        );
        assert_eq!(
            serde_json::to_string(&QosClass::BestEffort)?,
            r#""besteffort""#
        );
        Ok(())
    }

    /// Fragments that sit on the edges of the parsers, joined with `|` (one is empty).
    const ODD_TOKENS: &str = r"|/|//|.|..|\|\x|\x2|\xzz|\xff|é|日本|kubepods|kubepods.slice|pod|pod日本
        |kubepods-pod.slice|kubepods-burstable-pod.slice|kubepods--pod_x.slice|burstable|docker
        |docker-|docker-.scope|crio-conmon-|libpod-|lxc|lxc.payload.|lxc.monitor|machine-.scope
        |systemd-nspawn@.service|systemd-nspawn@\xff\xfe.service|default|.scope|.slice|a.service";

    #[test]
    fn odd_inputs_never_panic_and_keep_invariants() {
        let mut tokens: Vec<&str> = ODD_TOKENS.split('|').map(str::trim).collect();
        tokens.extend([ID, OUTER, "\n", "\u{0}", " (deleted)", "a b", "\t"]);
        let mut inputs: Vec<String> = tokens.iter().map(|token| token.to_string()).collect();
        inputs.push("/".repeat(10_000));
        inputs.push("/a".repeat(50_000));
        inputs.push(format!("/docker/{}", "f".repeat(100_000)));
        inputs.push(format!("{}/docker/{ID}", "/kubepods/pod1".repeat(5_000)));
        // Deterministic pseudo-random joins of the tokens (an LCG, so failures reproduce).
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            usize::try_from(state >> 33).unwrap_or_default()
        };
        for _ in 0..5_000 {
            let path: String = (0..next() % 9)
                .map(|_| format!("/{}", tokens[next() % tokens.len()]))
                .collect();
            inputs.push(path);
        }
        for input in &inputs {
            let identity = identify(input);
            let (id, short) = (&identity.container_id, &identity.short_id);
            assert!(!identity.name.is_empty(), "{input:?}");
            assert_eq!(identity.kind == Root, identity.name == "/", "{input:?}");
            assert_eq!(identity.kind == Container, id.is_some(), "{input:?}");
            assert_eq!(id.is_some(), short.is_some(), "{input:?}");
            assert!(id
                .as_deref()
                .unwrap_or_default()
                .starts_with(short.as_deref().unwrap_or_default()));
            let pod_without_container = identity.pod_uid.is_some() && identity.kind != Container;
            assert_eq!(identity.kind == Pod, pod_without_container, "{input:?}");
        }
    }

    #[test]
    fn unescape_handles_valid_and_malformed_escapes() {
        assert_eq!(unescape_systemd("my\\x2dbox"), "my-box");
        assert_eq!(unescape_systemd("a\\x2"), "a\\x2");
        assert_eq!(unescape_systemd("\\xzz\\x41"), "\\xzzA");
        assert_eq!(unescape_systemd("\\xc3\\xa9"), "é");
        assert_eq!(unescape_systemd("\\xff"), "\u{fffd}");
    }
}
