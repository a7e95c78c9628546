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
    /// An identity of `kind` named `name`, with no container, pod or unit details.
    pub fn empty(kind: IdentityKind, name: String) -> Self {
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
#[path = "identity_tests.rs"]
mod tests;
