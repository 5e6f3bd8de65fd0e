"""Security rules of `compose check`, registered into `policy.RULES`.

What a cluster admin signs off before a model runs in a shared cluster:

- **Pod Security.** The checks of the Pod Security Standards that a patch can break
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/;
  kubernetes/pod-security-admission `policy/check_*.go`): Windows HostProcess, host
  namespaces, privileged containers, added capabilities, hostPath volumes, host ports,
  AppArmor, SELinux, `/proc` mount type, seccomp Unconfined and unsafe sysctls (the
  *baseline* level), and runAsNonRoot / runAsUser 0, privilege escalation, seccomp
  and `drop: [ALL]` (the *restricted* level). Each workload is held to the level its
  namespace enforces in the same build (a namespace the build does not render is
  assumed `restricted`); a vLLM server is always held to `restricted`. The real API
  server is the proof (tests/test_pod_security.py admits every overlay's pods under
  `restricted`); these rules say *which* field broke it, before anything is applied.
- **Namespaces.** Every rendered Namespace carries the `pod-security.kubernetes.io/`
  `enforce`, `audit` and `warn` labels. A model's is `restricted`; an add-on's may be
  looser only with a `vllm-compose.io/pod-security-reason` annotation and no looser
  than its pods need. No overlay owns a reserved namespace (kube-*, default, argocd,
  flux-system, monitoring, an add-on's). Argo CD and Flux never prune or delete a
  Namespace (annotations below), so removing an overlay never takes the namespace,
  and what others put in it (the hf-token Secret, other teams' objects), with it.
- **Service-account tokens, emptyDir sizes, credentials, image pinning.**

`SECURITY_RULES` lists the ids; tests/test_policy.py breaks each one with a fixture
under tests/fixtures/broken/.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterator

from compose.core import names
from compose.core import secrets as secrets_mod
from compose.verify.policy import (
    Build,
    _containers,
    _env,
    _get,
    _image_tag,
    _ns,
    _pod_spec,
    _pod_spec_path,
    is_vllm_container,
    rule,
)

PSA_PREFIX = "pod-security.kubernetes.io/"
PSA_MODES = ("enforce", "audit", "warn")
PSA_LEVELS = ("privileged", "baseline", "restricted")  # least to most restrictive
PSA_VERSION = re.compile(r"^(latest|v1\.(0|[1-9][0-9]{0,2}))$")
REASON_ANNOTATION = "vllm-compose.io/pod-security-reason"

# Argo CD: never prune (object left Git) nor delete (Application deleted) the
# Namespace; Delete=false needs Argo CD >= 2.7 (argoproj/argo-cd#12448). Flux: skip it
# in garbage collection (kustomize-controller docs, "Prune"; the same annotation
# protects it when the Kustomization is deleted).
ARGOCD_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
ARGOCD_NAMESPACE_OPTIONS = ("Prune=false", "Delete=false")
FLUX_PRUNE = "kustomize.toolkit.fluxcd.io/prune"
FLUX_PRUNE_DISABLED = "disabled"

# Capabilities a baseline pod may add (check_capabilities_baseline.go); restricted
# allows only NET_BIND_SERVICE (check_capabilities_restricted.go).
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
# Sysctls the baseline level allows (Pod Security Standards, "Sysctls"; check_sysctls.go),
# as of v1.30, the `enforce-version` every generated namespace pins: v1.27 added
# ip_local_reserved_ports, v1.29 the four TCP keepalive/fin timers. (v1.32 adds
# net.ipv4.tcp_rmem and tcp_wmem, which the pinned v1.30 still refuses.)
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
# SELinux types the baseline level allows (check_seLinuxOptions.go; "" = unset). v1.31
# adds container_engine_t, which the pinned v1.30 refuses. user and role must be unset.
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
# The AppArmor field (v1.30+) and the legacy annotation (check_appArmorProfile.go).
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Inline secrets the hf-token-secret rule already reports.
_HF_TOKEN_NAMES = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}
# vLLM flags that take a secret on the command line (visible in `ps` and the manifest).
SECRET_FLAGS = ("--api-key", "--hf-token")

SECURITY_RULES: list[str] = []


def _security_rule(rule_id: str, summary: str):
    SECURITY_RULES.append(rule_id)
    return rule(rule_id, summary)


def _level_index(level: str | None) -> int:
    return PSA_LEVELS.index(level) if level in PSA_LEVELS else len(PSA_LEVELS) - 1


# ----------------------------------------------------------------------------- Pod Security checks


class Violation:
    __slots__ = ("rule", "level", "field", "problem", "fix")

    def __init__(self, rule_id: str, level: str, field: str, problem: str, fix: str):
        self.rule, self.level, self.field, self.problem, self.fix = rule_id, level, field, problem, fix


def _sc(obj: dict) -> dict:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _metadata_prefix(prefix: str) -> str:
    """The pod template's metadata path beside its spec path (`spec.template.spec` ->
    `spec.template.metadata`; a Pod's `spec` -> `metadata`)."""
    return prefix[: -len("spec")] + "metadata" if prefix.endswith("spec") else "metadata"


def _baseline_context_violations(sc: dict, field: str, who: str) -> Iterator[Violation]:
    """The baseline checks that read one securityContext, the pod's or a container's:
    Windows HostProcess, AppArmor, SELinux and (containers only) the /proc mount."""
    if _get(sc, "windowsOptions", "hostProcess") is True:
        yield Violation("windows-host-process", "baseline", f"{field}.securityContext.windowsOptions.hostProcess",
                        f"hostProcess: true runs {who} as a process on the Windows node, with the host's network "
                        "and filesystem (forbidden from Pod Security baseline up)",
                        "remove windowsOptions.hostProcess (or set it to false)")
    apparmor = _get(sc, "appArmorProfile", "type")
    if apparmor is not None and apparmor not in APPARMOR_TYPES:
        yield Violation("apparmor", "baseline", f"{field}.securityContext.appArmorProfile.type",
                        f"appArmorProfile {apparmor} turns the node's AppArmor confinement off for {who} "
                        "(forbidden from Pod Security baseline up)",
                        "remove appArmorProfile (the runtime's default applies) or set type: RuntimeDefault")
    selinux = sc.get("seLinuxOptions")
    if isinstance(selinux, dict):
        bad = []
        if str(selinux.get("type") or "") not in SELINUX_TYPES:
            bad.append(f"type {selinux.get('type')}")
        bad += [f"{k} {selinux[k]}" for k in ("user", "role") if selinux.get(k)]
        if bad:
            yield Violation("selinux", "baseline", f"{field}.securityContext.seLinuxOptions",
                            f"seLinuxOptions sets {', '.join(bad)} for {who}: a custom SELinux type, user or role can "
                            "lift the container's confinement (Pod Security baseline allows only the types "
                            f"{', '.join(sorted(t for t in SELINUX_TYPES if t))} and no user or role)",
                            "remove seLinuxOptions (the runtime labels the container container_t) or keep only "
                            "level/an allowed type")
    proc = sc.get("procMount")
    if proc not in (None, "Default"):
        yield Violation("proc-mount", "baseline", f"{field}.securityContext.procMount",
                        f"procMount {proc} unmasks /proc for {who}: /proc/kcore, /proc/sysrq-trigger and the "
                        "node's kernel tunables become readable or writable (forbidden from Pod Security baseline up)",
                        "remove procMount (or set it to Default)")


def pod_security_violations(spec: dict, prefix: str, annotations: dict | None = None) -> Iterator[Violation]:
    """Every Pod Security Standards violation of one pod spec (and its template's
    `annotations`, for the legacy AppArmor key); `level` is the least restrictive level
    that forbids it (baseline or restricted)."""
    pod_sc = _sc(spec)
    yield from _baseline_context_violations(pod_sc, prefix, "every container of the pod")
    for key, value in sorted((annotations or {}).items(), key=lambda kv: str(kv[0])):
        if str(key).startswith(APPARMOR_ANNOTATION) and value and value != "runtime/default" \
                and not str(value).startswith("localhost/"):
            yield Violation("apparmor", "baseline", f"{_metadata_prefix(prefix)}.annotations[{key}]",
                            f"the annotation sets AppArmor profile {value!r} for container "
                            f"{str(key)[len(APPARMOR_ANNOTATION):]}: its confinement is off (forbidden from Pod "
                            "Security baseline up)", "remove the annotation (the runtime's default applies) or set "
                            "securityContext.appArmorProfile.type: RuntimeDefault")
    sysctls = [x for x in pod_sc.get("sysctls") or [] if isinstance(x, dict)]
    unsafe = [str(x.get("name")) for x in sysctls if x.get("name") not in SAFE_SYSCTLS]
    if unsafe:
        yield Violation("sysctls", "baseline", f"{prefix}.securityContext.sysctls[{unsafe[0]}]",
                        f"sets {', '.join(unsafe)}, outside the Pod Security Standards' safe set: such a sysctl is "
                        "not isolated from other pods or the node (forbidden from baseline up; the kubelet also "
                        "refuses it unless --allowed-unsafe-sysctls lists it)",
                        f"remove it; only {', '.join(sorted(SAFE_SYSCTLS))} are safe (tune the node instead)")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield Violation("host-namespaces", "baseline", f"{prefix}.{key}",
                            f"{key}: true shares the node's {key[4:].lower()} namespace with the pod "
                            "(forbidden from Pod Security baseline up)", f"remove {key}")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and "hostPath" in v:
            yield Violation("host-path", "baseline", f"{prefix}.volumes[{v.get('name')}].hostPath",
                            f"hostPath volume {_get(v, 'hostPath', 'path')!r} mounts the node's filesystem into "
                            "the pod (forbidden from Pod Security baseline up)",
                            "use an emptyDir, a PersistentVolumeClaim, a ConfigMap or a Secret; a node agent "
                            "that needs the host belongs in its own add-on namespace labelled with the level it needs")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    if pod_sc.get("runAsUser") == 0:
        yield Violation("run-as-non-root", "restricted", f"{prefix}.securityContext.runAsUser",
                        "runAsUser: 0 runs the pod as root (forbidden by Pod Security restricted)",
                        "run as a non-root uid (the base uses 1000) with runAsNonRoot: true")
    seccomp_pod = _get(pod_sc, "seccompProfile", "type")
    if seccomp_pod == "Unconfined":
        yield Violation("seccomp", "baseline", f"{prefix}.securityContext.seccompProfile.type",
                        "seccompProfile Unconfined turns the syscall filter off (forbidden from baseline up)",
                        "set seccompProfile.type: RuntimeDefault")
    for where, c in _containers(spec):
        field = f"{prefix}.{where}"
        sc = _sc(c)
        yield from _baseline_context_violations(sc, field, f"container {c.get('name')}")
        if sc.get("privileged") is True:
            yield Violation("privileged", "baseline", f"{field}.securityContext.privileged",
                            "privileged: true gives the container every device and capability of the node "
                            "(forbidden from Pod Security baseline up)", "remove privileged (or set it to false)")
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("hostPort") not in (None, 0):
                yield Violation("host-port", "baseline", f"{field}.ports[{p.get('name') or p.get('containerPort')}].hostPort",
                                f"hostPort {p.get('hostPort')} binds a port on the node's own address, bypassing "
                                "the Service and any NetworkPolicy (forbidden from Pod Security baseline up)",
                                "remove hostPort; reach the pod through its Service")
        caps = _get(sc, "capabilities", default={}) or {}
        added = [str(x) for x in caps.get("add") or []]
        beyond = [x for x in added if x.removeprefix("CAP_") not in BASELINE_CAPABILITIES]
        if beyond:
            yield Violation("capabilities", "baseline", f"{field}.securityContext.capabilities.add",
                            f"adds {', '.join(beyond)}, outside even the baseline set (forbidden from Pod Security "
                            "baseline up)", "remove the added capabilities; keep drop: [ALL]")
        extra = [x for x in added if x not in beyond and x.removeprefix("CAP_") != "NET_BIND_SERVICE"]
        if extra:
            yield Violation("capabilities", "restricted", f"{field}.securityContext.capabilities.add",
                            f"adds {', '.join(extra)}; Pod Security restricted allows only NET_BIND_SERVICE",
                            "remove the added capabilities; keep drop: [ALL]")
        if "ALL" not in [str(x) for x in caps.get("drop") or []]:
            yield Violation("capabilities", "restricted", f"{field}.securityContext.capabilities.drop",
                            "the container keeps the runtime's default capabilities (NET_RAW, CHOWN, ...); "
                            "Pod Security restricted requires drop: [ALL]", "set capabilities.drop: [ALL]")
        if sc.get("allowPrivilegeEscalation") is not False:
            yield Violation("privilege-escalation", "restricted", f"{field}.securityContext.allowPrivilegeEscalation",
                            f"allowPrivilegeEscalation is {sc.get('allowPrivilegeEscalation', 'unset (true)')}: a setuid "
                            "binary can gain privileges (Pod Security restricted requires false)",
                            "set allowPrivilegeEscalation: false")
        if sc.get("runAsUser") == 0:
            yield Violation("run-as-non-root", "restricted", f"{field}.securityContext.runAsUser",
                            "runAsUser: 0 runs the container as root (forbidden by Pod Security restricted)",
                            "remove runAsUser or use a non-root uid")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            yield Violation("run-as-non-root", "restricted", f"{field}.securityContext.runAsNonRoot",
                            f"runAsNonRoot is {non_root if non_root is not None else 'unset'} (pod: "
                            f"{pod_sc.get('runAsNonRoot', 'unset')}): the image's user, root for vllm/vllm-openai, "
                            "is used (Pod Security restricted requires true)",
                            "set runAsNonRoot: true (pod securityContext) with a non-root runAsUser")
        seccomp = _get(sc, "seccompProfile", "type")
        if seccomp == "Unconfined":
            yield Violation("seccomp", "baseline", f"{field}.securityContext.seccompProfile.type",
                            "seccompProfile Unconfined turns the syscall filter off (forbidden from baseline up)",
                            "set seccompProfile.type: RuntimeDefault")
        elif seccomp is None and seccomp_pod not in ("RuntimeDefault", "Localhost", "Unconfined"):
            yield Violation("seccomp", "restricted", f"{prefix}.securityContext.seccompProfile",
                            "no seccomp profile on the pod or the container (Pod Security restricted requires "
                            "RuntimeDefault or Localhost)", "set securityContext.seccompProfile.type: RuntimeDefault")


def required_level(spec: dict, annotations: dict | None = None) -> str:
    """The most restrictive Pod Security level this pod spec is admitted under."""
    worst = len(PSA_LEVELS) - 1
    for v in pod_security_violations(spec, "", annotations):
        # A baseline violation needs privileged; a restricted-only one needs baseline.
        worst = min(worst, _level_index(v.level) - 1)
    return PSA_LEVELS[worst]


def _pod_annotations(doc: dict) -> dict:
    """The annotations of a workload's pods (the template's; a Pod's own)."""
    path = _metadata_prefix(_pod_spec_path(doc)).split(".")
    found = _get(doc, *path, "annotations", default={})
    return found if isinstance(found, dict) else {}


def _workloads(b: Build) -> Iterator[tuple[dict, dict, str]]:
    for doc in b.docs:
        spec = _pod_spec(doc)
        if isinstance(spec, dict):
            yield doc, spec, _pod_spec_path(doc)


def _is_vllm(spec: dict) -> bool:
    return any(isinstance(c, dict) and is_vllm_container(c) for c in spec.get("containers") or [])


def _enforced_level(b: Build, doc: dict, spec: dict) -> str:
    """The level the workload is held to: restricted for a vLLM server; otherwise what
    its namespace enforces in this build (restricted when the build renders no Namespace)."""
    if _is_vllm(spec):
        return "restricted"
    ns_doc = b.namespaces.get(_ns(doc))
    level = _get(ns_doc, "metadata", "labels", PSA_PREFIX + "enforce") if ns_doc else None
    return level if level in PSA_LEVELS else "restricted"


def _pod_security_rule(rule_id: str, summary: str):
    def check(b: Build) -> None:
        for doc, spec, prefix in _workloads(b):
            level = _enforced_level(b, doc, spec)
            for v in pod_security_violations(spec, prefix, _pod_annotations(doc)):
                if v.rule == rule_id and _level_index(v.level) <= _level_index(level):
                    b.add(doc, v.field, v.problem, v.fix)
    check.__name__ = f"_psa_{rule_id.replace('-', '_')}"
    return _security_rule(rule_id, summary)(check)


_pod_security_rule("privileged", "no privileged container (Pod Security baseline)")
_pod_security_rule("host-namespaces", "no hostNetwork, hostPID or hostIPC (Pod Security baseline)")
_pod_security_rule("host-path", "no hostPath volume (Pod Security baseline)")
_pod_security_rule("host-port", "no hostPort (Pod Security baseline)")
_pod_security_rule("capabilities", "drop ALL and add nothing but NET_BIND_SERVICE (Pod Security restricted)")
_pod_security_rule("run-as-non-root", "runAsNonRoot: true and never runAsUser 0 (Pod Security restricted)")
_pod_security_rule("privilege-escalation", "allowPrivilegeEscalation: false on every container (Pod Security restricted)")
_pod_security_rule("seccomp", "seccomp RuntimeDefault or Localhost (Pod Security restricted)")
_pod_security_rule("apparmor", "no AppArmor Unconfined, by field or annotation (Pod Security baseline)")
_pod_security_rule("proc-mount", "procMount Default, never Unmasked (Pod Security baseline)")
_pod_security_rule("sysctls", "only the Pod Security Standards' safe sysctls (Pod Security baseline)")
_pod_security_rule("selinux", "no custom SELinux type, user or role (Pod Security baseline)")
_pod_security_rule("windows-host-process", "no Windows HostProcess container (Pod Security baseline)")


# ----------------------------------------------------------------------------- namespaces


@_security_rule("namespace-pod-security", "every Namespace carries Pod Security enforce/audit/warn labels; a "
                "model's is restricted; a looser one says why and is no looser than its pods need")
def _namespace_labels(b: Build) -> None:
    for name, ns in sorted(b.namespaces.items(), key=lambda kv: str(kv[0])):
        labels = _get(ns, "metadata", "labels", default={}) or {}
        missing = [m for m in PSA_MODES if PSA_PREFIX + m not in labels]
        if missing:
            b.add(ns, "metadata.labels", f"no Pod Security label {', '.join(PSA_PREFIX + m for m in missing)}: "
                  "the namespace falls back to the cluster default, which is privileged unless an admin "
                  "configured otherwise", f"label it {PSA_PREFIX}enforce/audit/warn: restricted (base/vllm/namespace.yaml)")
        for key, value in sorted(labels.items()):
            if not str(key).startswith(PSA_PREFIX):
                continue
            mode = str(key)[len(PSA_PREFIX):]
            if mode in PSA_MODES and value not in PSA_LEVELS:
                b.add(ns, f"metadata.labels.{key}", f"{value!r} is not a Pod Security level; the API server "
                      "rejects the namespace", f"use one of {', '.join(PSA_LEVELS)}")
            elif mode.removesuffix("-version") in PSA_MODES and mode.endswith("-version") \
                    and not PSA_VERSION.match(str(value)):
                b.add(ns, f"metadata.labels.{key}", f"{value!r} is not a Pod Security version", "use latest or v1.<minor>")
        enforce = labels.get(PSA_PREFIX + "enforce")
        if enforce not in PSA_LEVELS:
            continue
        pods = [(d, s) for d, s, _ in _workloads(b) if _ns(d) == name]
        if any(_is_vllm(s) for _, s in pods) and enforce != "restricted":
            b.add(ns, f"metadata.labels.{PSA_PREFIX}enforce", f"the model's namespace enforces {enforce}; a vLLM "
                  "server needs nothing beyond restricted, so anything else only admits what should be refused",
                  f"set {PSA_PREFIX}enforce: restricted")
            continue
        if enforce == "restricted":
            continue
        reason = (_get(ns, "metadata", "annotations", default={}) or {}).get(REASON_ANNOTATION)
        if not str(reason or "").strip():
            b.add(ns, f"metadata.annotations.{REASON_ANNOTATION}", f"the namespace enforces Pod Security {enforce} "
                  "without saying why", f"annotate {REASON_ANNOTATION} with the field that needs it "
                  "(e.g. hostPath /var/lib/kubelet/device-plugins), or label it restricted")
        # The most restrictive level that still admits every pod of the namespace.
        needed = min((required_level(s, _pod_annotations(d)) for d, s in pods), key=_level_index, default=None)
        if needed is not None and _level_index(needed) > _level_index(enforce):
            b.add(ns, f"metadata.labels.{PSA_PREFIX}enforce", f"the namespace enforces {enforce}, but its pods are "
                  f"admitted under {needed}", f"set {PSA_PREFIX}enforce: {needed} (the least its pods need)")


@_security_rule("namespace-reserved", "no build owns a reserved namespace (kube-*, default, argocd, flux-system, "
                "monitoring, an add-on's) or runs a vLLM server in one")
def _namespace_reserved(b: Build) -> None:
    for name, ns in sorted(b.namespaces.items(), key=lambda kv: str(kv[0])):
        why = names.reserved_namespace(str(name))
        if not why:
            continue
        if name in names.ADDON_NAMESPACES and not any(_is_vllm(s) for d, s, _ in _workloads(b) if _ns(d) == name):
            continue  # the add-on's own build
        b.add(ns, "metadata.name", f"the build renders Namespace {name}: {why}, and whoever syncs this build "
              "would own (label, prune) it", "render the model into its own namespace (`namespace:` in the "
              "kustomization; compose uses the overlay name)")
    for doc, spec, _ in _workloads(b):
        ns = _ns(doc)
        why = names.reserved_namespace(str(ns)) if ns else None
        if why and _is_vllm(spec) and ns not in b.namespaces:
            b.add(doc, "metadata.namespace", f"a vLLM server in {ns}: {why}",
                  "render the model into its own namespace")


@_security_rule("namespace-protected", "every Namespace is exempt from Argo CD prune/delete and Flux garbage collection")
def _namespace_protected(b: Build) -> None:
    for name, ns in sorted(b.namespaces.items(), key=lambda kv: str(kv[0])):
        ann = _get(ns, "metadata", "annotations", default={}) or {}
        opts = {o.strip() for o in str(ann.get(ARGOCD_SYNC_OPTIONS, "")).split(",") if o.strip()}
        lacking = [o for o in ARGOCD_NAMESPACE_OPTIONS if o not in opts]
        if lacking:
            b.add(ns, f"metadata.annotations.{ARGOCD_SYNC_OPTIONS}", f"Argo CD may {' and '.join(o.split('=')[0].lower() for o in lacking)} "
                  f"Namespace {name}: deleting the Application (resources finalizer) or the overlay would delete the "
                  "namespace and everything in it, Secrets and objects Argo CD never created included",
                  f"annotate {ARGOCD_SYNC_OPTIONS}: {','.join(ARGOCD_NAMESPACE_OPTIONS)}")
        if str(ann.get(FLUX_PRUNE, "")).lower() != FLUX_PRUNE_DISABLED:
            b.add(ns, f"metadata.annotations.{FLUX_PRUNE}", f"Flux garbage-collects Namespace {name} when the "
                  "Kustomization is deleted or the overlay leaves Git, and everything in it with it",
                  f"annotate {FLUX_PRUNE}: {FLUX_PRUNE_DISABLED}")


# ----------------------------------------------------------------------------- pods: token, emptyDir


@_security_rule("service-account-token", "pods mount no service-account token unless they name an account that needs it")
def _sa_token(b: Build) -> None:
    for doc, spec, prefix in _workloads(b):
        auto = spec.get("automountServiceAccountToken")
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        if auto is False or (auto is True and account != "default" and not _is_vllm(spec)):
            continue
        b.add(doc, f"{prefix}.automountServiceAccountToken",
              f"automountServiceAccountToken is {auto if auto is not None else 'unset (true)'}: every container gets "
              f"a token for ServiceAccount {account}, which anything that compromises the pod can use against "
              "the API server", "set automountServiceAccountToken: false (the vLLM server and the device plugin never "
              "call the API)")


def _shm_volumes(spec: dict) -> set[str]:
    """emptyDirs a vLLM container mounts at /dev/shm: the dev-shm rule sizes those."""
    out = set()
    for c in spec.get("containers") or []:
        if isinstance(c, dict) and is_vllm_container(c):
            out |= {m.get("name") for m in c.get("volumeMounts") or []
                    if str(m.get("mountPath", "")).rstrip("/") == "/dev/shm"}
    return out


@_security_rule("emptydir-size-limit", "every emptyDir has a sizeLimit")
def _emptydir(b: Build) -> None:
    for doc, spec, prefix in _workloads(b):
        shm = _shm_volumes(spec)
        for v in spec.get("volumes") or []:
            if not isinstance(v, dict) or "emptyDir" not in v or v.get("name") in shm:
                continue
            ed = v.get("emptyDir") if isinstance(v.get("emptyDir"), dict) else {}
            if ed.get("sizeLimit") is None:
                medium = "memory" if ed.get("medium") == "Memory" else "the node's ephemeral storage"
                b.add(doc, f"{prefix}.volumes[{v.get('name')}].emptyDir.sizeLimit",
                      f"emptyDir {v.get('name')} has no sizeLimit: a runaway writer fills {medium} and the kubelet "
                      "evicts other pods on the node before this one",
                      "set emptyDir.sizeLimit (base/README.md explains the base's figures)")


# ----------------------------------------------------------------------------- credentials


@_security_rule("secret-env-inline", "no secret written inline: env vars named like a secret or holding a token, "
                "and vLLM's --api-key/--hf-token, come from a Secret")
def _secret_env(b: Build) -> None:
    for doc, spec, prefix in _workloads(b):
        for where, c in _containers(spec):
            for name, e in sorted(_env(c).items(), key=lambda kv: str(kv[0])):
                value = e.get("value")
                if not value or not isinstance(value, str):
                    continue
                found = secrets_mod.tokens(value)
                if (secrets_mod.secret_env_name(str(name)) and name not in _HF_TOKEN_NAMES) or found:
                    what = f" ({found[0]})" if found else ""
                    b.add(doc, f"{prefix}.{where}.env[{name}]", f"{name} is written inline{what}: anyone who can "
                          "read the repository, the Deployment or `kubectl describe` has it",
                          f"read it from a Secret: valueFrom.secretKeyRef (e.g. `compose new-model "
                          f"--api-key-secret NAME` for VLLM_API_KEY)")
            args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            for i, a in enumerate(args):
                flag = a.split("=", 1)[0]
                if flag in SECRET_FLAGS and ("=" in a or i + 1 < len(args)):
                    b.add(doc, f"{prefix}.{where}.args", f"{flag} passes a secret on the command line: it is in Git, "
                          "in the Deployment and in `ps` on the node", "remove it; set VLLM_API_KEY (HF_TOKEN) from a "
                          "Secret with valueFrom.secretKeyRef (`compose new-model --api-key-secret NAME`)")


def _strings(node, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            key = v.get("name") if isinstance(v, dict) and isinstance(v.get("name"), str) else i
            yield from _strings(v, f"{path}[{key}]")
    elif isinstance(node, str):
        yield path, node


@_security_rule("secret-in-url", "no credentials in a URL, and no provider token, anywhere in the rendered objects")
def _secret_in_url(b: Build) -> None:
    for doc in b.docs:
        for path, text in _strings(doc):
            if re.search(r"\.env\[[^\]]*\]\.value$", path):
                leaks = secrets_mod.url_credentials(text)  # the env rule reports tokens in env values
            else:
                leaks = secrets_mod.leaks(text)
            for leak in leaks:
                if leak.kind == "url-userinfo":
                    problem = (f"a URL with credentials ({leak.text}): they end up in Git, in the object and in "
                               "every log line that prints it")
                    fix = ("drop the userinfo; give the client its credentials from a Secret (KEDA: a "
                           "TriggerAuthentication; Git: an Argo CD repository Secret or a Flux secretRef)")
                else:
                    problem = f"a {leak.kind} token ({leak.text}) is written into the object"
                    fix = "revoke it, remove it, and read it from a Secret"
                b.add(doc, path, problem, fix)


# ----------------------------------------------------------------------------- network policy

# Where a cluster's pods, Services, nodes and private API endpoints live: an egress
# ipBlock as wide as one of these must except it (components/network-policy does), or the
# model's pods may call every in-cluster HTTPS service. Link-local: cloud metadata.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"))


def _internal_reach(block: dict) -> list[str]:
    """Internal ranges an ipBlock covers whole and does not except."""
    try:
        net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        excepts = [ipaddress.ip_network(str(e), strict=False) for e in block.get("except") or []]
    except ValueError:
        return []
    return [str(r) for r in INTERNAL_NETWORKS if r.version == net.version and r.subnet_of(net)
            and not any(e.version == r.version and r.subnet_of(e) for e in excepts)]


def _np_namespaces(peer: dict) -> set[str] | None:
    """Namespace names a `from`/`to` peer admits by name; None for 'any namespace'."""
    sel = peer.get("namespaceSelector")
    if sel is None:
        return set()  # podSelector alone: the policy's own namespace only
    names_ = set()
    for e in sel.get("matchExpressions") or []:
        if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "In":
            names_ |= set(e.get("values") or [])
    ml = sel.get("matchLabels") or {}
    if "kubernetes.io/metadata.name" in ml:
        names_.add(ml["kubernetes.io/metadata.name"])
    if not names_ and not sel.get("matchExpressions") and not ml:
        return None
    return names_


def _port_allowed(rule_: dict, port: int, protocol: str) -> bool:
    ports = rule_.get("ports")
    if not ports:
        return True
    for p in ports:
        proto = p.get("protocol", "TCP")
        number = p.get("port")
        end = p.get("endPort", number)
        if proto == protocol and (number is None or number == port or number == "http"
                                  or (isinstance(number, int) and isinstance(end, int) and number <= port <= end)):
            return True
    return False


@_security_rule("network-policy-flows", "a NetworkPolicy on the model admits Prometheus on 8000 (when it scrapes), "
                "lets the pods reach DNS and HTTPS, and opens no egress to the cluster's internal ranges")
def _network_policy(b: Build) -> None:
    from compose.generate.options import prometheus_namespace

    scraped = any(d.get("kind") in ("PodMonitor", "ServiceMonitor") for d in b.docs)
    for np in (d for d in b.docs if d.get("kind") == "NetworkPolicy"):
        selector = _get(np, "spec", "podSelector")
        pods = [d for d, s, _ in _workloads(b) if _ns(d) == _ns(np) and _is_vllm(s)
                and _labels_match_np(selector, _get(d, "spec", "template", "metadata", "labels"))]
        if not pods:
            continue
        types = _get(np, "spec", "policyTypes", default=None) or ["Ingress"]
        if "Ingress" in types and scraped:
            prom = {prometheus_namespace(str(_get(t, "metadata", "serverAddress", default="")))
                    for so in b.scaled_objects for t in _get(so, "spec", "triggers", default=[]) or []
                    if t.get("type") == "prometheus"} - {None} or {"monitoring"}
            for ns in sorted(prom):
                if not any(_port_allowed(r, 8000, "TCP") and _admits(r.get("from"), ns)
                           for r in _get(np, "spec", "ingress", default=[]) or []):
                    b.add(np, "spec.ingress", f"Prometheus in namespace {ns} scrapes /metrics on port 8000, which "
                          "this policy does not admit: the PodMonitor gets nothing, the KEDA query returns no "
                          "series and the ScaledObject falls back", f"admit namespace {ns} on TCP 8000 "
                          f"(`compose new-model ... --allow-from {ns}`)")
        if "Egress" in types:
            egress = _get(np, "spec", "egress", default=[]) or []
            for port, proto, why in ((53, "UDP", "DNS"), (443, "TCP", "HTTPS to Hugging Face")):
                if not any(_port_allowed(r, port, proto) for r in egress):
                    b.add(np, "spec.egress", f"egress allows no {proto} {port} ({why}): the init container's "
                          "weight download fails", f"allow {proto} {port} (components/network-policy does)")
            for i, r in enumerate(egress):
                peers = r.get("to") or []
                if not peers:
                    b.add(np, f"spec.egress[{i}].to", "an egress rule without `to` allows every destination, the "
                          "cluster's pods, Services, nodes and API server included", "name the peers (DNS pods, "
                          "an ipBlock that excepts the internal ranges: components/network-policy)")
                for j, peer in enumerate(peers):
                    reach = _internal_reach(peer.get("ipBlock") or {}) if isinstance(peer, dict) else []
                    if reach:
                        b.add(np, f"spec.egress[{i}].to[{j}].ipBlock.except", f"ipBlock {peer['ipBlock'].get('cidr')} "
                              f"does not except {', '.join(reach)}: the model's pods may call the in-cluster services "
                              "(pods, Services, nodes, a private API endpoint, cloud metadata) there",
                              f"except {', '.join(reach)} (components/network-policy/networkpolicy.yaml); an "
                              "in-cluster proxy or mirror gets its own narrow policy")


def _admits(peers: list | None, namespace: str) -> bool:
    """Whether an ingress rule's `from` admits pods of `namespace` (no `from`: everyone)."""
    if not peers:
        return True
    for peer in peers:
        allowed = _np_namespaces(peer)
        if "ipBlock" not in peer and (allowed is None or namespace in allowed):
            return True
    return False


def _labels_match_np(selector, labels) -> bool:
    from compose.verify.policy import _labels_match

    return _labels_match(selector if isinstance(selector, dict) else {}, labels)


# ----------------------------------------------------------------------------- images


@_security_rule("image-digest", "a digest is sha256:<64 hex>; with --require-digest every image carries one")
def _image_digest(b: Build) -> None:
    for doc, spec, prefix in _workloads(b):
        for where, c in _containers(spec):
            image = str(c.get("image") or "")
            if not image:
                continue
            field = f"{prefix}.{where}.image"
            if "@" in image:
                digest = image.split("@", 1)[1]
                if not DIGEST.match(digest):
                    b.add(doc, field, f"image {image}: {digest!r} is not a digest (sha256: and 64 lower-case hex "
                          "digits); the kubelet cannot pull it", "pin `repo:tag@sha256:<64 hex>` (crane digest "
                          "repo:tag), e.g. `compose new-model --image-digest sha256:...`")
            elif b.require_digest:
                tag, _ = _image_tag(image)
                b.add(doc, field, f"image {image} is pinned by tag only{'' if tag else ' (no tag)'}; a tag can be "
                      "moved to other bytes, a digest cannot", "pin the digest: `compose new-model --image-digest "
                      "sha256:...` (resolve it with `crane digest " + (image or "repo:tag") + "`)")


__all__ = ["SECURITY_RULES", "pod_security_violations", "required_level", "PSA_LEVELS", "REASON_ANNOTATION"]
