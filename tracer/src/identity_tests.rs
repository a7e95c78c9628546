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
