"""`compose doctor`: read-only pre-flight checks of a live cluster against a rendered overlay.

Each check returns `Check`s (id, status ok|warn|fail, what it saw, the one
fix). Every check runs, whatever the others found; a read the cluster forbids
(403) or fails (5xx) becomes a `warn` finding of that check, never a
traceback. Only an unreachable cluster stops the run (`ClusterUnreachable`,
exit 2 at the CLI edge).

The checks, in order (README.md, "compose doctor", explains each):
server-version, crd/<name>, keda-operator, keda-version, keda-metrics-api,
storage-class, runtime-class, device-plugin, hf-token, api-key, prometheus-url,
prometheus-podmonitor, prometheus-rule, network-policy, scheduling.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from compose.cluster import scheduling
from compose.cluster.kube import Cluster
from compose.cluster.target import Target, group_version
from compose.core.errors import ClusterApiError, Forbidden, NotFound

SCHEMA = "vllm-compose.io/doctor/v1"
OK, WARN, FAIL = "ok", "warn", "fail"
_RANK = {OK: 0, WARN: 1, FAIL: 2}


@dataclass
class Check:
    id: str
    status: str  # ok | warn | fail
    saw: str
    fix: str | None = None
    title: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    overlay: str
    namespace: str
    server: str
    context: str | None
    version: str
    checks: list[Check]

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=OK)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (OK, WARN, FAIL)}

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "overlay": self.overlay,
            "namespace": self.namespace,
            "cluster": {"server": self.server, "context": self.context, "version": self.version},
            "status": self.status,
            "summary": self.counts(),
            "checks": [{"id": c.id, "title": c.title, "status": c.status, "saw": c.saw, "fix": c.fix,
                        "details": c.details} for c in self.checks],
        }


# --------------------------------------------------------------------------- facts shared by the checks


class Facts:
    """Lazy, cached reads of the cluster that several checks share."""

    def __init__(self, cluster: Cluster, target: Target):
        self.cluster = cluster
        self.target = target
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = read()
            except ClusterApiError as err:
                self._cache[key] = err
        value = self._cache[key]
        if isinstance(value, ClusterApiError):
            raise value
        return value

    def nodes(self) -> list[dict]:
        return self._once("nodes", lambda: self.cluster.list("/api/v1/nodes"))

    def pods(self) -> list[dict]:
        return self._once("pods", lambda: self.cluster.list(
            "/api/v1/pods", fieldSelector="status.phase!=Succeeded,status.phase!=Failed"))

    def served(self, api_version: str) -> dict | None:
        """The discovery document of a group/version, None when not served."""
        group, version = group_version(api_version)
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        return self._once(f"served:{api_version}", lambda: self.cluster.find(path))

    def group(self, group: str) -> dict | None:
        return self._once(f"group:{group}", lambda: self.cluster.find(f"/apis/{group}"))

    def nodepools(self) -> list[dict]:
        doc = self.served("karpenter.sh/v1")
        if not doc or not any(r.get("kind") == "NodePool" for r in doc.get("resources") or []):
            return []
        return self._once("nodepools", lambda: self.cluster.list("/apis/karpenter.sh/v1/nodepools"))

    def runtime_class(self) -> dict | None:
        name = self.target.runtime_class
        if not name:
            return None
        return self._once(f"rc:{name}", lambda: self.cluster.find(f"/apis/node.k8s.io/v1/runtimeclasses/{name}"))

    def pod(self) -> scheduling.Pod:
        try:
            rc = self.runtime_class()
        except ClusterApiError:
            rc = None
        return scheduling.admitted_pod(self.target.pod_spec, self.target.namespace, self.target.pod_labels,
                                       runtime_class=rc)


def _forbidden(check_id: str, title: str, err: ClusterApiError, what: str) -> Check:
    if isinstance(err, Forbidden):
        return Check(check_id, WARN, f"could not check {what}: {err}",
                     "grant this identity get/list on it (e.g. the `view` ClusterRole plus nodes), or run doctor "
                     "with a context that may read it", title)
    return Check(check_id, WARN, f"could not check {what}: {err}", "retry; if it persists, check the API server's health", title)


# --------------------------------------------------------------------------- server version

# Fields that need a minimum Kubernetes minor: (description, minor, predicate on a rendered object).
def _pod_specs(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") == "CronJob":
        return [((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}]
    tpl = spec.get("template")
    return [tpl.get("spec") or {}] if isinstance(tpl, dict) else []


def _containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _uses_sleep(doc: dict) -> bool:
    return any("sleep" in ((c.get("lifecycle") or {}).get(hook) or {})
               for s in _pod_specs(doc) for c in _containers(s) for hook in ("preStop", "postStart"))


def _uses_spread_field(name: str) -> Callable[[dict], bool]:
    return lambda doc: any(name in c for s in _pod_specs(doc) for c in s.get("topologySpreadConstraints") or [])


def _uses_sidecar(doc: dict) -> bool:
    return any(c.get("restartPolicy") == "Always" for s in _pod_specs(doc) for c in s.get("initContainers") or [])


FEATURES: list[tuple[str, int, Callable[[dict], bool], str]] = [
    ("preStop `sleep` (PodLifecycleSleepAction, on by default from 1.30)", 30, _uses_sleep,
     "replace the sleep action with `exec: {command: [sleep, N]}` if the image has a shell, or upgrade"),
    ("sidecar init containers (restartPolicy: Always, on by default from 1.29)", 29, _uses_sidecar, "upgrade"),
    ("PodDisruptionBudget `unhealthyPodEvictionPolicy` (on by default from 1.27)", 27,
     lambda d: d.get("kind") == "PodDisruptionBudget" and "unhealthyPodEvictionPolicy" in (d.get("spec") or {}),
     "upgrade, or drop the field (a crash-looping pod then blocks node drains)"),
    ("topology spread `matchLabelKeys` (on by default from 1.27)", 27, _uses_spread_field("matchLabelKeys"), "upgrade"),
    ("topology spread `nodeTaintsPolicy` (on by default from 1.26)", 26, _uses_spread_field("nodeTaintsPolicy"), "upgrade"),
]


def _minor(version: str | None) -> tuple[int, int] | None:
    m = re.match(r"v?(\d{1,6})\.(\d{1,6})(?!\d)", version or "")  # more digits than that is no release
    return (int(m.group(1)), int(m.group(2))) if m else None


def _small_int(text: object) -> int:
    """The digits of a version field ("28+" -> 28); 0 when there are none or absurdly many."""
    digits = re.sub(r"\D", "", str(text or ""))
    return int(digits) if 0 < len(digits) <= 6 else 0


def check_server_version(facts: Facts) -> list[Check]:
    title = "the server version supports every field the overlay uses"
    info = facts.cluster.version()
    git = info.get("gitVersion", "")
    server = _minor(git) or (_small_int(info.get("major")), _small_int(info.get("minor")))
    used = [(desc, minor, fix) for desc, minor, pred, fix in FEATURES if any(pred(d) for d in facts.target.docs)]
    too_new = [(desc, minor, fix) for desc, minor, fix in used if server < (1, minor)]
    details = {"server": git, "needs": {desc: f"1.{minor}" for desc, minor, _ in used}}
    if too_new:
        desc, minor, fix = max(too_new, key=lambda t: t[1])
        return [Check("server-version", FAIL,
                      f"the API server is {git}; the overlay uses " + "; ".join(f"{d} (needs 1.{m})" for d, m, _ in too_new),
                      f"upgrade the control plane to 1.{minor} or later; or {fix}", title, details)]
    need = max((m for _, m, _ in used), default=0)
    checks = [Check("server-version", OK, f"{git} serves every field the overlay uses"
                    + (f" (the newest needs 1.{need}: {next(d for d, m, _ in used if m == need)})" if need else ""),
                    None, title, details)]
    # The kubelet runs the sleep action: older kubelets (version skew) ignore it.
    if need:
        try:
            old = sorted(n["metadata"]["name"] for n in facts.nodes()
                         if (_minor(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")) or (99, 99)) < (1, need))
        except ClusterApiError:
            old = []
        if old:
            checks[0] = Check("server-version", WARN,
                              f"the API server is {git}, but {len(old)} node(s) run kubelets older than 1.{need}: {', '.join(old[:5])}",
                              f"upgrade those node pools to 1.{need} or later (the kubelet runs the preStop hook)", title, details)
    return checks


# --------------------------------------------------------------------------- CRDs

# The KEDA release doctor's fixes pin: the release the CRDs in ../shared/crds/keda come from
# (kedacore/keda v2.20.2). KEDA's Helm chart versions follow the KEDA release.
KEDA_PIN = "2.20.2"
CRD_FIXES = {
    "keda.sh": "install KEDA: helm repo add kedacore https://kedacore.github.io/charts && "
               f"helm install keda kedacore/keda --version {KEDA_PIN} --namespace keda --create-namespace",
    "monitoring.coreos.com": "install the Prometheus Operator (e.g. the kube-prometheus-stack Helm chart), "
                             "or regenerate the overlay with --no-monitoring",
    "karpenter.sh": "install Karpenter 1.x (serves karpenter.sh/v1) and create a GPU NodePool",
    "gateway.networking.k8s.io": "install the Gateway API CRDs (standard channel) and a Gateway controller",
    "inference.networking.x-k8s.io": "install the Gateway API Inference Extension CRDs",
    "inference.networking.k8s.io": "install the Gateway API Inference Extension CRDs",
    "argoproj.io": "install Argo CD (kubectl create namespace argocd && kubectl apply -n argocd -f <the Argo CD install manifest>)",
    "kustomize.toolkit.fluxcd.io": "install Flux: flux install (or flux bootstrap)",
    "source.toolkit.fluxcd.io": "install Flux: flux install (or flux bootstrap)",
}
GITOPS_KINDS = {
    "argocd": [("argoproj.io/v1alpha1", "Application"), ("argoproj.io/v1alpha1", "ApplicationSet")],
    "flux": [("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("source.toolkit.fluxcd.io/v1", "GitRepository")],
}


def _crd_check(facts: Facts, api_version: str, kind: str, required: bool = True, why: str = "") -> Check:
    group, version = group_version(api_version)
    check_id = f"crd/{kind.lower()}.{group}"
    title = f"{kind} ({api_version}) is served" + (f": {why}" if why else "")
    fix = CRD_FIXES.get(group, f"install the CRD that defines {kind} in {group}")
    try:
        doc = facts.served(api_version)
        if doc is not None:
            kinds = {r.get("kind") for r in doc.get("resources") or [] if "/" not in r.get("name", "")}
            if kind in kinds:
                return Check(check_id, OK, f"{api_version} serves {kind}", None, title)
            return Check(check_id, FAIL if required else WARN,
                         f'no matches for kind "{kind}" in version "{api_version}": the group serves {sorted(k for k in kinds if k)}',
                         fix, title)
        grp = facts.group(group)
    except ClusterApiError as err:
        return _forbidden(check_id, title, err, f"whether {api_version} is served")
    if grp is None:
        return Check(check_id, FAIL if required else WARN,
                     f'no matches for kind "{kind}" in version "{api_version}": no CRD of group {group} is installed', fix, title)
    versions = [v.get("version") for v in grp.get("versions") or []]
    return Check(check_id, FAIL if required else WARN,
                 f'no matches for kind "{kind}" in version "{api_version}": {group} serves only {", ".join(versions)}',
                 f"upgrade the controller that owns {group} to a release that serves {version}; {fix}", title,
                 {"served_versions": versions})


def check_crds(facts: Facts, gitops: str | None = None) -> list[Check]:
    out = [_crd_check(facts, av, kind) for av, kind in facts.target.custom_kinds()]
    if facts.target.cloud == "eks":
        out.append(_crd_check(facts, "karpenter.sh/v1", "NodePool", required=False,
                              why="the eks component selects nodes by Karpenter's labels"))
    for av, kind in GITOPS_KINDS.get(gitops or "", []):
        out.append(_crd_check(facts, av, kind, why=f"--gitops {gitops}"))
    return out


# --------------------------------------------------------------------------- KEDA

KEDA_OPERATOR_SELECTORS = ("app.kubernetes.io/name=keda-operator", "app=keda-operator")
METRICS_APISERVICE = "v1beta1.external.metrics.k8s.io"
# ScaledObject fields that need a minimum KEDA release: fallback.behavior (static, currentReplicas,
# currentReplicasIfHigher, currentReplicasIfLower) came in KEDA 2.17 (kedacore/keda#6464, documented
# from keda-docs content/docs/2.17/reference/scaledobject-spec.md, kedacore/keda-docs#1519). An older
# KEDA's CRD has no such field: the API server prunes it and the fallback is static (jumps to
# fallback.replicas on every Prometheus outage).
KEDA_FEATURES: list[tuple[str, tuple[int, int], Callable[[Target], bool]]] = [
    ("ScaledObject fallback.behavior", (2, 17), lambda t: any(b != "static" for b in t.fallback_behaviors())),
]


def keda_version(deployment: dict) -> tuple[str, tuple[int, int, int] | None]:
    """(image, (major, minor, patch) from its tag, or None) of a KEDA operator Deployment."""
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])
    c = next((c for c in containers if c.get("name") == "keda-operator"),
             next((c for c in containers if "keda" in c.get("image", "")), containers[0] if containers else {}))
    image = c.get("image", "")
    ref = image.split("@", 1)[0]
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
    m = re.match(r"v?(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?(?!\d)", tag)
    return image, ((int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None)


def _keda_version_check(facts: Facts, found: dict[str, dict]) -> Check:
    title = "the KEDA release serves every ScaledObject field the overlay uses"
    used = [(what, need) for what, need, pred in KEDA_FEATURES if pred(facts.target)]
    need = max((n for _, n in used), default=None)
    seen = {k: keda_version(d) for k, d in found.items()}
    details = {"operators": {k: img for k, (img, _) in seen.items()},
               "needs": {what: f"{n[0]}.{n[1]}" for what, n in used}}
    upgrade = (f"upgrade KEDA: helm upgrade keda kedacore/keda --version {KEDA_PIN} --namespace {{ns}} "
               f"(KEDA's chart also updates its CRDs)")
    if need:
        old = [(k, img, v) for k, (img, v) in seen.items() if v is not None and v[:2] < need]
        if old:
            k, img, v = old[0]
            uses = "; ".join(f"{w} (needs KEDA {n[0]}.{n[1]})" for w, n in used)
            return Check("keda-version", FAIL,
                         f"KEDA operator {k} runs {img} ({v[0]}.{v[1]}.{v[2]}); the overlay uses {uses}: "
                         "the API server prunes the field and the fallback is static",
                         upgrade.format(ns=k.split("/")[0]), title, details)
        unknown = [(k, img) for k, (img, v) in seen.items() if v is None]
        if unknown:
            k, img = unknown[0]
            return Check("keda-version", WARN,
                         f"KEDA operator {k} runs {img}, whose tag names no release; the overlay needs KEDA "
                         f"{need[0]}.{need[1]} or later ({', '.join(w for w, _ in used)})",
                         f"check the release it runs is {need[0]}.{need[1]} or later, or " + upgrade.format(ns=k.split("/")[0]),
                         title, details)
    versions = ", ".join(f"{k}: {img}" for k, (img, _) in seen.items())
    return Check("keda-version", OK, versions + (f"; the overlay needs KEDA {need[0]}.{need[1]} or later" if need else ""),
                 None, title, details)


def check_keda(facts: Facts) -> list[Check]:
    if not facts.target.scaled_objects:
        return []
    out = []
    title = "the KEDA operator runs"
    try:
        found: dict[str, dict] = {}
        for sel in KEDA_OPERATOR_SELECTORS:
            for d in facts.cluster.list("/apis/apps/v1/deployments", labelSelector=sel):
                found[f"{d['metadata']['namespace']}/{d['metadata']['name']}"] = d
        if not found:
            out.append(Check("keda-operator", FAIL,
                             "no KEDA operator Deployment in any namespace (labels app.kubernetes.io/name=keda-operator or app=keda-operator): "
                             "nothing acts on the ScaledObject", CRD_FIXES["keda.sh"], title))
        else:
            ready = {k: (d.get("status") or {}).get("availableReplicas", 0) or 0 for k, d in found.items()}
            if any(ready.values()):
                out.append(Check("keda-operator", OK, ", ".join(f"{k}: {v} available" for k, v in ready.items()), None, title))
            else:
                name = next(iter(found))
                ns = name.split("/")[0]
                out.append(Check("keda-operator", FAIL, f"Deployment {name} has no available replica",
                                 f"kubectl -n {ns} describe deployment {name.split('/')[1]}; kubectl -n {ns} get pods", title))
            out.append(_keda_version_check(facts, found))
    except ClusterApiError as err:
        out.append(_forbidden("keda-operator", title, err, "the KEDA operator Deployment"))
    title = "KEDA's external metrics API is registered and available"
    try:
        svc = facts.cluster.find(f"/apis/apiregistration.k8s.io/v1/apiservices/{METRICS_APISERVICE}")
        if svc is None:
            out.append(Check("keda-metrics-api", FAIL,
                             f"APIService {METRICS_APISERVICE} does not exist: the HPA KEDA creates cannot read the queue metric",
                             "install KEDA with its metrics API server (the Helm chart does)", title))
        else:
            ref = (svc.get("spec") or {}).get("service") or {}
            cond = next((c for c in (svc.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), {})
            backend = f"{ref.get('namespace')}/{ref.get('name')}" if ref else "the API server itself"
            if cond.get("status") != "True":
                out.append(Check("keda-metrics-api", FAIL,
                                 f"APIService {METRICS_APISERVICE} (served by {backend}) is not Available: "
                                 f"{cond.get('reason', 'no condition')}: {cond.get('message', '')}".rstrip(": "),
                                 f"check the KEDA metrics API server: kubectl -n {ref.get('namespace', 'keda')} get pods,endpointslices", title))
            elif "keda" not in (ref.get("name") or ""):
                out.append(Check("keda-metrics-api", WARN,
                                 f"{METRICS_APISERVICE} is served by {backend}, not KEDA's metrics server: one adapter owns the external metrics API",
                                 "let KEDA serve external.metrics.k8s.io (uninstall the other adapter's external metrics) ", title))
            else:
                out.append(Check("keda-metrics-api", OK, f"{METRICS_APISERVICE} Available, served by {backend}", None, title))
    except ClusterApiError as err:
        out.append(_forbidden("keda-metrics-api", title, err, f"APIService {METRICS_APISERVICE}"))
    return out


# --------------------------------------------------------------------------- storage

# provisioner -> access modes it can provision (CSI drivers' documentation).
PROVISIONER_MODES = {
    "efs.csi.aws.com": {"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce", "ReadWriteOncePod"},
    "ebs.csi.aws.com": {"ReadWriteOnce", "ReadWriteOncePod"},
    "kubernetes.io/aws-ebs": {"ReadWriteOnce"},
    "filestore.csi.storage.gke.io": {"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"},
    "pd.csi.storage.gke.io": {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteOncePod"},
    "kubernetes.io/gce-pd": {"ReadWriteOnce", "ReadOnlyMany"},
    "file.csi.azure.com": {"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"},
    "kubernetes.io/azure-file": {"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"},
    "disk.csi.azure.com": {"ReadWriteOnce", "ReadWriteOncePod"},
    "kubernetes.io/azure-disk": {"ReadWriteOnce"},
    "rancher.io/local-path": {"ReadWriteOnce", "ReadWriteOncePod"},
    "nfs.csi.k8s.io": {"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"},
}
STORAGE_FIXES = {
    "efs-sc": "install the Amazon EFS CSI driver and create StorageClass efs-sc (provisioner efs.csi.aws.com, "
              "provisioningMode efs-ap, your fileSystemId); see components/eks/README.md",
    "standard-rwx": "enable GKE's Filestore CSI driver (gcloud container clusters update CLUSTER "
                    "--update-addons=GcpFilestoreCsiDriver=ENABLED), which creates standard-rwx",
    "azurefile-csi": "enable the Azure Files CSI driver (az aks update --enable-file-driver), which creates azurefile-csi",
    "local-path": "k3s ships local-path unless started with --disable local-storage; re-enable it or install rancher/local-path-provisioner",
}


def check_storage(facts: Facts) -> list[Check]:
    out = []
    for claim in facts.target.claims:
        name = claim["metadata"]["name"]
        spec = claim.get("spec") or {}
        modes = list(spec.get("accessModes") or [])
        sc_name = spec.get("storageClassName")
        check_id, title = "storage-class", f"the StorageClass of claim {name} exists and supports {', '.join(modes)}"
        try:
            if not sc_name:
                default = [s for s in facts.cluster.list("/apis/storage.k8s.io/v1/storageclasses")
                           if ((s["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true")]
                if not default:
                    out.append(Check(check_id, FAIL, f"claim {name} names no StorageClass and the cluster has no default one",
                                     "set storageClassName in the overlay's patch-storage.yaml, or mark a class default", title))
                    continue
                sc = default[0]
                sc_name = sc["metadata"]["name"]
            else:
                sc = facts.cluster.find(f"/apis/storage.k8s.io/v1/storageclasses/{sc_name}")
            if sc is None:
                out.append(Check(check_id, FAIL,
                                 f'StorageClass "{sc_name}" not found: claim {name} would stay Pending '
                                 f'(storageclass.storage.k8s.io "{sc_name}" not found)',
                                 STORAGE_FIXES.get(sc_name, f"create StorageClass {sc_name}, or change storageClassName in the overlay's patch-storage.yaml"),
                                 title, {"storage_class": sc_name}))
                continue
            prov = sc.get("provisioner", "")
            details = {"storage_class": sc_name, "provisioner": prov, "access_modes": modes,
                       "volume_binding_mode": sc.get("volumeBindingMode", "Immediate")}
            supported = PROVISIONER_MODES.get(prov)
            if prov == "kubernetes.io/no-provisioner":
                pvs = [pv for pv in facts.cluster.list("/api/v1/persistentvolumes")
                       if (pv.get("spec") or {}).get("storageClassName") == sc_name
                       and (pv.get("status") or {}).get("phase") == "Available"
                       and set(modes) <= set((pv.get("spec") or {}).get("accessModes") or [])]
                if pvs:
                    out.append(Check(check_id, OK, f"{sc_name} is a static class; {len(pvs)} Available PersistentVolume(s) offer {', '.join(modes)}", None, title, details))
                else:
                    out.append(Check(check_id, WARN, f"{sc_name} has no provisioner (kubernetes.io/no-provisioner) and no Available PersistentVolume offers {', '.join(modes)}",
                                     f"create a PersistentVolume of class {sc_name} with {', '.join(modes)}, or use a class with a provisioner", title, details))
                continue
            if supported is None:
                out.append(Check(check_id, WARN, f"{sc_name} uses provisioner {prov}, whose access modes doctor does not know; the claim asks {', '.join(modes)}",
                                 f"check that {prov} supports {', '.join(modes)} (its documentation)", title, details))
                continue
            missing = [m for m in modes if m not in supported]
            if missing:
                out.append(Check(check_id, FAIL, f"{sc_name} provisions with {prov}, which supports {', '.join(sorted(supported))}, not {', '.join(missing)}",
                                 "use a class whose driver offers ReadWriteMany (EFS, Filestore, Azure Files, NFS) so every replica shares the cache"
                                 if "ReadWriteMany" in missing else f"use a class that supports {', '.join(missing)}", title, details))
                continue
            check = Check(check_id, OK, f"{sc_name} ({prov}) supports {', '.join(modes)}", None, title, details)
            if "csi" in prov:
                driver = facts.cluster.find(f"/apis/storage.k8s.io/v1/csidrivers/{prov}")
                if driver is None:
                    check = Check(check_id, WARN, f"{sc_name} names CSI driver {prov}, but no CSIDriver {prov} is registered: the claim may stay Pending",
                                  f"install the {prov} CSI driver", title, details)
            out.append(check)
        except ClusterApiError as err:
            out.append(_forbidden(check_id, title, err, f"StorageClass {sc_name or '(default)'}"))
    return out


# --------------------------------------------------------------------------- runtime class


def check_runtime_class(facts: Facts) -> list[Check]:
    name = facts.target.runtime_class
    title = "the RuntimeClass the pod names exists"
    if not name:
        return [Check("runtime-class", OK, "the overlay sets no runtimeClassName (the nodes' default runtime must expose the GPUs)", None, title)]
    try:
        rc = facts.runtime_class()
    except ClusterApiError as err:
        return [_forbidden("runtime-class", title, err, f"RuntimeClass {name}")]
    if rc is None:
        return [Check("runtime-class", FAIL,
                      f'RuntimeClass "{name}" not found: the API server rejects every pod of the Deployment '
                      f'(pods "..." is forbidden: pod rejected: RuntimeClass "{name}" not found)',
                      "kubectl apply -k base/nvidia-device-plugin (it creates RuntimeClass nvidia, handler nvidia); "
                      "k3s v1.28.4 and later create it themselves when they find the NVIDIA container toolkit", title)]
    return [Check("runtime-class", OK, f"RuntimeClass {name} exists (handler {rc.get('handler')})", None, title)]


# --------------------------------------------------------------------------- device plugin

DEVICE_PLUGIN_LABELS = (
    ("app.kubernetes.io/name", "nvidia-device-plugin"),  # base/nvidia-device-plugin, NVIDIA's Helm chart
    ("name", "nvidia-device-plugin-ds"),  # NVIDIA's static manifest, AKS
    ("app", "nvidia-device-plugin-daemonset"),  # GPU operator
    ("k8s-app", "nvidia-gpu-device-plugin"),  # GKE
    ("app.kubernetes.io/name", "amd-gpu-device-plugin"),
    ("name", "amdgpu-dp-ds"),  # AMD's static manifest
)
DEVICE_PLUGIN_IMAGES = ("k8s-device-plugin", "nvidia-gpu-device-plugin")


GPU_LABELS = ("nvidia.com/gpu.present", "cloud.google.com/gke-accelerator", "karpenter.k8s.aws/instance-gpu-name",
              "kubernetes.azure.com/accelerator", "nvidia.com/gpu.count", "karpenter.k8s.aws/instance-gpu-count",
              "feature.node.kubernetes.io/pci-10de.present")


def _gpu_key(key: str) -> bool:
    return key in GPU_LABELS


def _gpu_label(key: str, value: str) -> bool:
    """Whether a node label says something about GPUs (well-known, or `gpu`/`accelerator` in it)."""
    if key in ("kubernetes.io/hostname",) or key.startswith("vllm-compose.test/"):
        return False
    if key.endswith("gpu-count") and value in ("0", ""):
        return False
    text = f"{key}={value}".lower()
    return _gpu_key(key) or "gpu" in text or "accelerator" in key.lower()


def gpu_hint(labels: dict[str, str]) -> str | None:
    """A label that says "this node has a GPU", or None (well-known labels first)."""
    for k, v in sorted(labels.items(), key=lambda kv: (kv[0] not in GPU_LABELS or GPU_LABELS.index(kv[0]), kv[0])):
        if _gpu_label(k, v):
            return f"{k}={v}"
    return None


def device_plugin_daemonsets(daemonsets: Iterable[dict]) -> list[dict]:
    out = []
    for ds in daemonsets:
        labels = ds["metadata"].get("labels") or {}
        images = [c.get("image", "") for c in (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []]
        if any(labels.get(k) == v for k, v in DEVICE_PLUGIN_LABELS) or any(i in img for img in images for i in DEVICE_PLUGIN_IMAGES):
            out.append(ds)
    return out


def check_device_plugin(facts: Facts) -> list[Check]:
    title = "the GPU device plugin runs and GPU nodes advertise GPUs"
    pod = facts.pod()
    gpu = pod.gpus()
    if gpu is None:
        return [Check("device-plugin", OK, "the pod requests no GPU", None, title)]
    resource, need = gpu
    try:
        nodes = facts.nodes()
        plugins = device_plugin_daemonsets(facts.cluster.list("/apis/apps/v1/daemonsets"))
    except ClusterApiError as err:
        return [_forbidden("device-plugin", title, err, "nodes and DaemonSets")]
    gpu_nodes = {}
    for n in nodes:
        labels = n["metadata"].get("labels") or {}
        alloc = (n.get("status") or {}).get("allocatable") or {}
        hint = gpu_hint(labels)
        if hint or any(r in alloc for r in scheduling.GPU_RESOURCES):
            gpu_nodes[n["metadata"]["name"]] = (hint, alloc)
    dark = {name: hint for name, (hint, alloc) in gpu_nodes.items()
            if not any(str(alloc.get(r, "0")) not in ("0", "") for r in scheduling.GPU_RESOURCES)}
    ds_text = ", ".join(f"{d['metadata']['namespace']}/{d['metadata']['name']} "
                        f"({(d.get('status') or {}).get('numberReady', 0)}/{(d.get('status') or {}).get('desiredNumberScheduled', 0)} ready)"
                        for d in plugins)
    details = {"gpu_nodes": sorted(gpu_nodes), "nodes_without_gpu_resource": sorted(dark),
               "daemonsets": [f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in plugins]}
    install = ("install the NVIDIA device plugin: kubectl apply -k base/nvidia-device-plugin (k3s, bare metal, EKS AL2023 nodes), "
               "or the GPU operator; GKE and AKS GPU node pools run their own")
    if dark:
        sample = sorted(dark)[:4]
        hints = sorted({h for h in dark.values() if h})
        saw = (f"{len(dark)} node(s) look like GPU nodes ({', '.join(hints[:2]) or 'GPU labels'}) but advertise no {resource}: "
               f"{', '.join(sample)}{' …' if len(dark) > 4 else ''}")
        if plugins:
            saw += f"; device-plugin DaemonSet(s): {ds_text}"
            ns = plugins[0]["metadata"]["namespace"]
            fix = (f"the device plugin does not run (or fails) on those nodes: kubectl -n {ns} get pods -o wide -l "
                   f"{_selector_text(plugins[0])}; check its node affinity and tolerations match them")
        else:
            saw += "; no device-plugin DaemonSet in any namespace"
            fix = install
        return [Check("device-plugin", FAIL, saw, fix, title, details)]
    if not gpu_nodes:
        if plugins:
            return [Check("device-plugin", OK, f"no GPU node yet; device-plugin DaemonSet(s): {ds_text}", None, title, details)]
        try:
            pools = facts.nodepools()
        except ClusterApiError:
            pools = []
        status = WARN if pools else FAIL
        return [Check("device-plugin", status,
                      "no node advertises GPUs and no device-plugin DaemonSet exists"
                      + (f"; Karpenter NodePools ({', '.join(p['metadata']['name'] for p in pools)}) launch nodes whose AMI must ship the plugin" if pools else ""),
                      install if not pools else "use an AMI that ships the device plugin (EKS GPU AMIs, Bottlerocket) or " + install,
                      title, details)]
    unready = [d for d in plugins if (d.get("status") or {}).get("numberReady", 0) < (d.get("status") or {}).get("desiredNumberScheduled", 0)]
    if unready:
        return [Check("device-plugin", WARN, f"{len(gpu_nodes)} GPU node(s) advertise {resource}, but device-plugin pods are not all ready: {ds_text}",
                      f"kubectl -n {unready[0]['metadata']['namespace']} get pods -o wide -l {_selector_text(unready[0])}", title, details)]
    return [Check("device-plugin", OK,
                  f"{len(gpu_nodes)} GPU node(s) advertise {resource}; "
                  + (f"device-plugin DaemonSet(s): {ds_text}" if plugins else "no device-plugin DaemonSet found (the cloud's managed plugin)"),
                  None, title, details)]


def _selector_text(ds: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in (((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())


# --------------------------------------------------------------------------- hf-token


def check_hf_token(facts: Facts) -> list[Check]:
    t = facts.target
    ref = t.token_ref()
    title = "the Hugging Face token Secret exists with its key (the value is never shown)"
    if ref is None:
        status = FAIL if t.gated else OK
        return [Check("hf-token", status, "the download container reads no HF_TOKEN from a Secret"
                      + (f", but {t.hf_repo} is gated" if t.gated else ""),
                      "add HF_TOKEN from a Secret to the download-weights init container (base/vllm does)" if t.gated else None, title)]
    create = f"kubectl -n {t.namespace} create secret generic {ref.secret} --from-literal={ref.key}=hf_..."
    gated = f"{t.hf_repo} is gated" if t.gated else ("whether the model is gated is unknown (no compose-plan.yaml)" if t.gated is None else f"{t.hf_repo} is not gated")
    try:
        secret = facts.cluster.find(f"/api/v1/namespaces/{t.namespace}/secrets/{ref.secret}")
    except ClusterApiError as err:
        return [_forbidden("hf-token", title, err, f"Secret {t.namespace}/{ref.secret}")]
    if secret is None:
        if t.gated is False:
            return [Check("hf-token", OK, f"no Secret {t.namespace}/{ref.secret}; {gated}, so the download needs none", None, title)]
        return [Check("hf-token", FAIL if t.gated else WARN,
                      f"Secret {t.namespace}/{ref.secret} does not exist and {gated}: the download fails with 401/403 and the pod stays in Init",
                      create, title)]
    data = secret.get("data") or {}
    keys = sorted(data)
    empty = ref.key in data and not data[ref.key]
    del secret, data  # the values are not kept, logged or printed
    if ref.key not in keys:
        return [Check("hf-token", FAIL if t.gated is not False else WARN,
                      f"Secret {t.namespace}/{ref.secret} has keys {keys}, not {ref.key!r}; {gated}",
                      f"kubectl -n {t.namespace} delete secret {ref.secret} && {create}", title, {"keys": keys})]
    if empty:
        return [Check("hf-token", FAIL if t.gated is not False else WARN,
                      f"Secret {t.namespace}/{ref.secret} key {ref.key!r} is empty; {gated}",
                      f"kubectl -n {t.namespace} delete secret {ref.secret} && {create}", title, {"keys": keys})]
    return [Check("hf-token", OK, f"Secret {t.namespace}/{ref.secret} has key {ref.key!r} (value not read out); {gated}", None, title, {"keys": keys})]


# --------------------------------------------------------------------------- api-key


def check_api_key(facts: Facts) -> list[Check]:
    """`--api-key-secret NAME`: vLLM reads VLLM_API_KEY from a Secret key (not optional), so
    without it the kubelet cannot start the container (CreateContainerConfigError)."""
    t = facts.target
    ref = t.api_key_ref()
    if ref is None:
        return []
    title = "the API-key Secret vLLM reads as VLLM_API_KEY exists with its key (the value is never shown)"
    create = (f"kubectl -n {t.namespace} create secret generic {ref.secret} "
              f'--from-literal={ref.key}="$(openssl rand -hex 32)"')
    try:
        secret = facts.cluster.find(f"/api/v1/namespaces/{t.namespace}/secrets/{ref.secret}")
    except ClusterApiError as err:
        return [_forbidden("api-key", title, err, f"Secret {t.namespace}/{ref.secret}")]
    status = WARN if ref.optional else FAIL
    if secret is None:
        return [Check("api-key", status,
                      f"Secret {t.namespace}/{ref.secret} does not exist: the vllm container cannot start "
                      f'(CreateContainerConfigError: secret "{ref.secret}" not found)', create, title)]
    data = secret.get("data") or {}
    keys = sorted(data)
    empty = ref.key in data and not data[ref.key]
    del secret, data  # the values are not kept, logged or printed
    if ref.key not in keys:
        return [Check("api-key", status, f"Secret {t.namespace}/{ref.secret} has keys {keys}, not {ref.key!r}: "
                      "the vllm container cannot start (CreateContainerConfigError)",
                      f"kubectl -n {t.namespace} delete secret {ref.secret} && {create}", title, {"keys": keys})]
    if empty:
        return [Check("api-key", status, f"Secret {t.namespace}/{ref.secret} key {ref.key!r} is empty: vLLM gets no usable API key",
                      f"kubectl -n {t.namespace} delete secret {ref.secret} && {create}", title, {"keys": keys})]
    return [Check("api-key", OK, f"Secret {t.namespace}/{ref.secret} has key {ref.key!r} (value not read out)", None, title, {"keys": keys})]


# --------------------------------------------------------------------------- Prometheus


def service_of(url: str, default_namespace: str) -> tuple[str, str, int] | None:
    """(namespace, service, port) for an in-cluster Service URL, None otherwise."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    if not host or re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", host):
        return None
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc" and (len(parts) == 3 or parts[3:] == ["cluster", "local"]):
        return parts[1], parts[0], port
    if len(parts) == 2:
        return parts[1], parts[0], port
    if len(parts) == 1:
        return default_namespace, parts[0], port
    return None


def check_prometheus(facts: Facts) -> list[Check]:
    out = []
    title = "the Prometheus address of the ScaledObject resolves to a Service"
    for trig in facts.target.prometheus_triggers():
        svc_ref = service_of(trig.server_address, facts.target.namespace)
        if svc_ref is None:
            out.append(Check("prometheus-url", WARN, f"ScaledObject {trig.scaled_object} reads {trig.server_address}, not a cluster Service address; doctor cannot verify it",
                             "make sure KEDA's pods can reach it (it answers /api/v1/query)", title))
            continue
        ns, name, port = svc_ref
        fix = (f"install Prometheus so that Service {ns}/{name} exists (kube-prometheus-stack's Prometheus creates prometheus-operated in its "
               f"namespace), or regenerate the overlay with --prometheus-url http://<service>.<namespace>.svc:<port>")
        try:
            svc = facts.cluster.find(f"/api/v1/namespaces/{ns}/services/{name}")
            if svc is None:
                out.append(Check("prometheus-url", FAIL,
                                 f"ScaledObject {trig.scaled_object} reads {trig.server_address}, but Service {ns}/{name} does not exist: "
                                 "KEDA reads no queue, so the model never scales (with ignoreNullValues=false KEDA falls back)", fix, title))
                continue
            ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
            if port not in ports:
                out.append(Check("prometheus-url", FAIL, f"Service {ns}/{name} exposes ports {ports}, the URL uses {port}",
                                 f"fix the port in --prometheus-url (e.g. :{ports[0] if ports else 9090})", title))
                continue
            slices = facts.cluster.list(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                                        labelSelector=f"kubernetes.io/service-name={name}")
            ready = sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True))
            if not ready and (svc.get("spec") or {}).get("type") != "ExternalName":
                out.append(Check("prometheus-url", WARN, f"Service {ns}/{name}:{port} exists but has no ready endpoint: no Prometheus pod serves it",
                                 f"kubectl -n {ns} get pods,endpointslices -l kubernetes.io/service-name={name}", title))
                continue
            out.append(Check("prometheus-url", OK, f"{trig.server_address} is Service {ns}/{name}:{port} with {ready} ready endpoint(s)", None, title))
        except ClusterApiError as err:
            out.append(_forbidden("prometheus-url", title, err, f"Service {ns}/{name}"))
    return out


# --------------------------------------------------------------------------- network policy


def allowed_namespaces(policy: dict) -> list[str]:
    """The namespaces a NetworkPolicy's ingress names (namespaceSelector on kubernetes.io/metadata.name)."""
    names: list[str] = []
    for rule in (policy.get("spec") or {}).get("ingress") or []:
        for peer in rule.get("from") or []:
            sel = peer.get("namespaceSelector") or {}
            if NAMESPACE_NAME_LABEL in (sel.get("matchLabels") or {}):
                names.append(sel["matchLabels"][NAMESPACE_NAME_LABEL])
            for r in sel.get("matchExpressions") or []:
                if r.get("key") == NAMESPACE_NAME_LABEL and r.get("operator") == "In":
                    names += list(r.get("values") or [])
    return list(dict.fromkeys(names))


def check_network_policy(facts: Facts) -> list[Check]:
    """components/network-policy admits port 8000 only from named namespaces: warn on a name no
    namespace has (a typo, or not created yet), since clients there are the only ones let in."""
    t = facts.target
    policies = t.of_kind("NetworkPolicy")
    if not policies:
        return []
    title = "the namespaces the NetworkPolicy admits exist"
    names = list(dict.fromkeys(n for pol in policies for n in allowed_namespaces(pol)))
    if not names:
        return [Check("network-policy", OK, "the NetworkPolicy names no namespace by name", None, title)]
    try:
        existing = {n["metadata"]["name"] for n in facts._once("namespaces", lambda: facts.cluster.list("/api/v1/namespaces"))}
    except ClusterApiError as err:
        return [_forbidden("network-policy", title, err, "namespaces")]
    missing = [n for n in names if n not in existing and n != t.namespace]
    details = {"allowed_namespaces": names, "missing": missing}
    if missing:
        return [Check("network-policy", WARN,
                      f"the NetworkPolicy admits port 8000 from namespace(s) {', '.join(names)}; "
                      f"{', '.join(missing)} do(es) not exist, so no client there can reach the model yet (a typo?)",
                      f"create the namespace(s) ({' && '.join(f'kubectl create namespace {n}' for n in missing)}), "
                      "or regenerate the overlay with the --allow-from namespaces your clients run in", title, details)]
    return [Check("network-policy", OK, f"the NetworkPolicy admits port 8000 from namespace(s) {', '.join(names)}, all present",
                  None, title, details)]


# --------------------------------------------------------------------------- Prometheus selects the monitors

# Prometheus Operator's API (pkg/apis/monitoring/v1/prometheus_types.go, v0.93.0): podMonitorSelector
# and ruleSelector: "An empty label selector matches all objects. A null label selector matches no
# objects." podMonitorNamespaceSelector and ruleNamespaceSelector: "An empty label selector matches
# all namespaces. A null label selector (default value) matches the current namespace only."
MONITOR_SELECTORS = {
    # kind: (check id, object selector field, namespace selector field, kube-prometheus-stack value prefix)
    "PodMonitor": ("prometheus-podmonitor", "podMonitorSelector", "podMonitorNamespaceSelector", "podMonitorSelector"),
    "PrometheusRule": ("prometheus-rule", "ruleSelector", "ruleNamespaceSelector", "ruleSelector"),
}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _selector_text_of(sel: dict) -> str:
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for r in sel.get("matchExpressions") or []:
        vals = ",".join(r.get("values") or [])
        parts.append(f"{r.get('key')} {r.get('operator')}" + (f" ({vals})" if vals else ""))
    return ", ".join(parts) or "{}"


def selects(selector: dict | None, labels: dict[str, str], *, nil_matches: bool = False) -> bool:
    """A Kubernetes label selector: None is the operator's nil (see MONITOR_SELECTORS), {} matches everything."""
    if selector is None:
        return nil_matches
    return scheduling._selector_matches(selector, labels)


def _unmet(selector: dict, labels: dict[str, str]) -> list[str]:
    """The parts of a selector the labels do not satisfy, as `key=value` or `key Op (values)`."""
    out = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()) if labels.get(k) != v]
    for r in selector.get("matchExpressions") or []:
        if not scheduling.requirement_matches(r, labels):
            out.append(_selector_text_of({"matchExpressions": [r]}))
    return out


def _namespace_labels(facts: Facts, ns: str) -> tuple[dict[str, str], bool]:
    """(labels, exists) of a namespace once the overlay is applied: the live object's labels plus
    those of the overlay's own Namespace (apply adds them); the API server sets
    kubernetes.io/metadata.name on every namespace."""
    live = facts._once(f"ns:{ns}", lambda: facts.cluster.find(f"/api/v1/namespaces/{ns}"))
    labels = dict(((live or {}).get("metadata") or {}).get("labels") or {})
    if ns == facts.target.namespace:
        labels.update(facts.target.namespace_labels())
    labels[NAMESPACE_NAME_LABEL] = ns
    return labels, live is not None


def _why_not_selected(prom: dict, obj: dict, ns_labels: dict[str, str], kind: str) -> tuple[str, str] | None:
    """None when Prometheus `prom` selects `obj`; else (what it lacks, the one fix)."""
    _, sel_field, ns_field, value = MONITOR_SELECTORS[kind]
    spec = prom.get("spec") or {}
    pname = f"{prom['metadata'].get('namespace')}/{prom['metadata']['name']}"
    pns = prom["metadata"].get("namespace")
    meta = obj.get("metadata") or {}
    name, ons, labels = meta.get("name"), meta.get("namespace"), dict(meta.get("labels") or {})
    sel = spec.get(sel_field)
    if sel is None:
        return (f"Prometheus {pname} has no {sel_field} (nil selects no {kind})",
                f"set spec.{sel_field}: {{}} on Prometheus {pname} (or a selector the {kind}'s labels match)")
    if not selects(sel, labels):
        missing = _unmet(sel, labels)
        saw = f"Prometheus {pname} selects {kind}s with {_selector_text_of(sel)}; {kind} {ons}/{name} lacks {', '.join(missing)}"
        release = (sel.get("matchLabels") or {}).get("release")
        if release and set(sel.get("matchLabels") or {}) == {"release"} and not sel.get("matchExpressions"):
            # kube-prometheus-stack's default: {matchLabels: {release: <release>}} while
            # prometheus.prometheusSpec.<x>SelectorNilUsesHelmValues is true (prometheus-community/helm-charts,
            # charts/kube-prometheus-stack/values.yaml: "If true, a nil or {} value for
            # prometheus.prometheusSpec.podMonitorSelector will cause the prometheus resource to be created
            # with selectors based on values in the helm deployment").
            return saw, (f"kube-prometheus-stack: set the Helm value prometheus.prometheusSpec.{value}NilUsesHelmValues=false "
                         f"(selects every {kind}), or label the overlay's {kind} release={release} (a patch in the overlay)")
        return saw, f"label the overlay's {kind} {', '.join(missing)} (a patch in the overlay), or widen spec.{sel_field} of Prometheus {pname}"
    ns_sel = spec.get(ns_field)
    if ns_sel is None:
        if ons == pns:
            return None
        return (f"Prometheus {pname} has no {ns_field} (nil: only its own namespace {pns}); {kind} {name} is in {ons}",
                f"set spec.{ns_field}: {{}} (every namespace) or a selector matching namespace {ons} on Prometheus {pname} "
                f"(kube-prometheus-stack: prometheus.prometheusSpec.{ns_field})")
    if not selects(ns_sel, ns_labels):
        missing = _unmet(ns_sel, ns_labels)
        return (f"Prometheus {pname} reads {kind}s in namespaces with {_selector_text_of(ns_sel)}; namespace {ons} lacks {', '.join(missing)}",
                f"label namespace {ons} {', '.join(missing)} (kubectl label namespace {ons} {' '.join(m for m in missing if '=' in m) or '...'}), "
                f"or widen spec.{ns_field} of Prometheus {pname}")
    return None


def check_prometheus_selects(facts: Facts) -> list[Check]:
    """Does a Prometheus Operator `Prometheus` select the overlay's PodMonitor and PrometheusRule?"""
    t = facts.target
    wanted = [(kind, obj) for kind in MONITOR_SELECTORS for obj in t.of_kind(kind)]
    if not wanted:
        return []
    try:
        doc = facts.served("monitoring.coreos.com/v1")
        if not doc or not any(r.get("kind") == "Prometheus" for r in doc.get("resources") or []):
            return []  # no Prometheus Operator `Prometheus` kind: another agent may read the monitors; prometheus-url checks the address
        proms = facts._once("prometheuses", lambda: facts.cluster.list("/apis/monitoring.coreos.com/v1/prometheuses"))
    except ClusterApiError as err:
        return [_forbidden(MONITOR_SELECTORS[k][0], "", err, "Prometheus objects") for k in dict(wanted)]
    # The Prometheus KEDA reads: those in the namespace of the ScaledObject's Service address, if any.
    read_ns = {ref[0] for trig in t.prometheus_triggers() if (ref := service_of(trig.server_address, t.namespace))}
    relevant = [p for p in proms if p["metadata"].get("namespace") in read_ns] or proms
    out = []
    for kind, obj in wanted:
        check_id = MONITOR_SELECTORS[kind][0]
        meta = obj.get("metadata") or {}
        obj = {**obj, "metadata": {**meta, "namespace": meta.get("namespace") or t.namespace}}
        oname = f"{obj['metadata']['namespace']}/{meta.get('name')}"
        title = f"a Prometheus selects the overlay's {kind} (labels and namespace)"
        impact = ("nothing scrapes vLLM's /metrics: KEDA's query returns nothing and the ScaledObject holds its fallback"
                  if kind == "PodMonitor" else "the overlay's alerts are never evaluated")
        if not proms:
            out.append(Check(check_id, WARN, f"no Prometheus object (monitoring.coreos.com/v1) in any namespace: {impact}",
                             "install Prometheus with the Prometheus Operator (e.g. the kube-prometheus-stack Helm chart), "
                             "or regenerate the overlay with --no-monitoring", title))
            continue
        try:
            ns_labels, ns_exists = _namespace_labels(facts, obj["metadata"]["namespace"])
        except ClusterApiError as err:
            out.append(_forbidden(check_id, title, err, f"namespace {obj['metadata']['namespace']}"))
            continue
        misses = [(p, _why_not_selected(p, obj, ns_labels, kind)) for p in relevant]
        hits = [p for p, why in misses if why is None]
        if hits:
            out.append(Check(check_id, OK, f"{kind} {oname} is selected by Prometheus "
                             + ", ".join(f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in hits),
                             None, title))
            continue
        _, (saw, fix) = misses[0]
        out.append(Check(check_id, FAIL if kind == "PodMonitor" else WARN, f"{saw}: {impact}", fix, title,
                         {"prometheus": [f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in relevant],
                          "namespace_exists": ns_exists}))
    return out


# --------------------------------------------------------------------------- scheduling

CLOUD_LABEL_PREFIXES = (
    ("eks", ("karpenter.sh/", "karpenter.k8s.aws/", "eks.amazonaws.com/")),
    ("gke", ("cloud.google.com/gke-",)),
    ("aks", ("kubernetes.azure.com/",)),
)


def node_cloud(labels: dict[str, str]) -> str | None:
    for cloud, prefixes in CLOUD_LABEL_PREFIXES:
        if any(k.startswith(prefixes) for k in labels):
            return cloud
    if labels.get("node.kubernetes.io/instance-type") == "k3s":
        return "k3s"
    return None


def _label_fix(key: str, values: list[str]) -> str:
    want = f"{key}={values[0]}" if len(values) == 1 else key
    if key == "nvidia.com/gpu.present":
        return ("install NVIDIA GPU feature discovery (or the GPU operator), which labels GPU nodes nvidia.com/gpu.present=true, "
                "or use the cloud component that matches these nodes (components/eks, gke or aks)")
    if key == "karpenter.sh/capacity-type":
        return (f"no {values[0] if values else ''} capacity: allow it in a NodePool (requirement karpenter.sh/capacity-type In "
                f"[{values[0] if values else ''}]) or regenerate the overlay {'without' if values == ['spot'] else 'with'} --spot")
    if key.startswith("karpenter."):
        return (f"Karpenter sets {key} on the nodes it launches: add a NodePool whose instance types have it "
                f"({want}), or regenerate the overlay with the --gpu these nodes have")
    if key == "cloud.google.com/gke-spot":
        return "create a spot GPU node pool (gcloud container node-pools create ... --spot) or regenerate the overlay without --spot"
    if key.startswith("cloud.google.com/gke-accelerator"):
        return (f"create a GKE node pool with that GPU (gcloud container node-pools create ... --accelerator type={values[0] if values else '<type>'}), "
                "or regenerate the overlay with the --gpu these nodes have")
    if key == "kubernetes.azure.com/scalesetpriority":
        return "add a spot GPU node pool (az aks nodepool add --priority Spot ...) or regenerate the overlay without --spot"
    if key.startswith("kubernetes.azure.com/"):
        return "add an AKS GPU node pool (az aks nodepool add --node-vm-size <GPU VM size>), which AKS labels kubernetes.azure.com/accelerator=nvidia"
    if key == "node.kubernetes.io/instance-type":
        return f"add nodes of instance type {values[0] if values else ''}, or regenerate the overlay with the --gpu these nodes have"
    return f"label the nodes (kubectl label node NODE {want}) or change the overlay's placement patch"


def _taint_fix(key: str, verdict: scheduling.Verdict) -> str:
    if key == "sku":
        return "use components/aks, which tolerates sku=gpu:NoSchedule, or add that toleration in a patch"
    if key in ("cloud.google.com/gke-spot", "kubernetes.azure.com/scalesetpriority"):
        return "these are spot nodes: regenerate the overlay with --spot (components/spot tolerates their taint), or add on-demand GPU nodes"
    if key.startswith("node.kubernetes.io/"):
        return f"node {verdict.name} is {key.split('/')[-1]}: check its kubelet and conditions (kubectl describe node {verdict.name})"
    if key in scheduling.GPU_RESOURCES:
        return f"tolerate {key}:NoSchedule (base/vllm does; the API server's ExtendedResourceToleration adds it too)"
    if key == "kubernetes.io/arch":
        return ("these are Arm nodes (GKE taints every Arm node kubernetes.io/arch=arm64:NoSchedule): an overlay for a GPU "
                "on Arm nodes (gb200) tolerates it through components/arm64; otherwise use nodes of the overlay's GPU")
    return f"add a toleration for {key} in a patch, or use nodes without that taint"


def _resource_fix(miss: scheduling.Miss, verdict: scheduling.Verdict, largest: int) -> str:
    res, need = miss.key, miss.data.get("need", 0)
    if res in scheduling.GPU_RESOURCES:
        if miss.data.get("allocatable", 0) == 0:
            return ("the device plugin does not run there: kubectl apply -k base/nvidia-device-plugin "
                    "(k3s, bare metal, EKS AL2023), or the GPU operator")
        if largest < need:
            return (f"no node has {need} {res} (the largest has {largest}) and tensor parallelism needs all {need} on one node: "
                    f"use a node type with {need} or more GPUs, or regenerate with a bigger --gpu so a smaller --tensor-parallel-size fits")
        return f"{need} {res} must be free on one node: scale down the pods that hold them, or add a node"
    if res == "pods":
        return "the node is at its pod limit: add nodes or raise maxPods"
    return ("use a larger node, or lower the request (`compose plan` sizes cpu_request and memory_request_gib; "
            "the download init container asks for its own)")


def _nodepool_fix(miss: scheduling.Miss, pool: str) -> str:
    if miss.reasons and miss.reasons[0].startswith("Insufficient"):
        return f"raise spec.limits.{miss.key} of NodePool {pool}, or free capacity it holds"
    if miss.reasons and "taint" in miss.reasons[0]:
        return f"tolerate the taint of NodePool {pool} (a patch), or remove it from the pool's template"
    values = list((miss.data.get("requirement") or {}).get("values") or [])
    return f"allow it in NodePool {pool} (spec.template.spec.requirements), or " + _label_fix(miss.key, values)


def nearest_miss(placement: scheduling.Placement, cloud: str | None, nodes: Iterable[dict] = ()) -> tuple[str, str]:
    """(what the closest candidate lacks, the one fix) when nothing fits."""
    candidates = placement.nodes + placement.nodepools
    if not candidates:
        return ("the cluster has no nodes and no Karpenter NodePool", "add GPU nodes (or a Karpenter NodePool) to the cluster")
    best = min(candidates, key=lambda v: (len(v.misses), v.kind != "node", v.name))
    same = [v.name for v in candidates if v.kind == best.kind and [(m.filter, m.detail) for m in v.misses] == [(m.filter, m.detail) for m in best.misses]]
    subject = (f"NodePool {best.name}" if best.kind == "nodepool" else
               f"node {best.name}" if len(same) == 1 else f"{len(same)} nodes ({', '.join(same[:3])}{' …' if len(same) > 3 else ''})")
    first = best.misses[0]
    found_cloud = node_cloud(dict(best.labels)) if best.kind == "node" else "eks"
    parts = []
    wants = [m for m in best.misses if m.filter == "NodeAffinity"]
    if wants:
        keys = {(m.data.get("requirement") or {}).get("key") for m in wants}
        want = ", ".join(scheduling._requirement_text(m.data.get("requirement") or {}, {}).split(", has")[0][len("requires "):]
                         for m in wants)
        # What the node has instead: its own value of a required key first, then its GPU labels.
        carry = [f"`{k}={best.labels[k]}`" for k in sorted(k for k in keys if k in best.labels)]
        carry += [f"`{k}={v}`" for k, v in sorted(best.labels.items(), key=lambda kv: (not _gpu_key(kv[0]), kv[0]))
                  if _gpu_label(k, v) and k not in keys]
        carry = carry[:2]
        they = "they carry" if len(same) > 1 else "it carries"
        parts.append(f"{they} {', '.join(carry)}, the overlay requires {want}" if carry
                     else f"the overlay requires {want}, which {'they lack' if len(same) > 1 else 'it lacks'}")
    parts += [m.detail for m in best.misses if m.filter != "NodeAffinity"]
    extra = len(parts) - 3
    parts = parts[:3]
    line = f"nearest: {subject}: " + "; ".join(parts) + (f" (+{extra} more)" if extra > 0 else "")
    if best.kind == "nodepool":
        return line, _nodepool_fix(first, best.name)
    if first.filter == "NodeAffinity" and cloud and found_cloud and found_cloud != cloud:
        return line, (f"these nodes look like {found_cloud}, the overlay is for {cloud}: regenerate it with "
                      f"`compose new-model ... --cloud {found_cloud}`, or run doctor against the {cloud} cluster (--context)")
    if first.filter == "NodeAffinity":
        values = list((first.data.get("requirement") or {}).get("values") or [])
        return line, _label_fix(first.key, values)
    if first.filter == "TaintToleration":
        return line, _taint_fix(first.key, best)
    if first.filter == "NodeUnschedulable":
        return line, f"kubectl uncordon {best.name} (if it was cordoned by mistake), or add nodes"
    if first.filter == "NodeResourcesFit":
        largest = max([scheduling.to_amount(first.key, ((n.get("status") or {}).get("allocatable") or {}).get(first.key, 0))
                       for n in nodes] + [0])
        return line, _resource_fix(first, best, largest)
    if first.filter == "PodTopologySpread":
        return line, f"label the nodes with {first.key}, or add nodes so the replicas can spread"
    return line, "see the scheduler's reasons above"


def check_scheduling(facts: Facts) -> list[Check]:
    title = "a node (or a Karpenter NodePool) satisfies the pod's affinity, tolerations and requests"
    notes = []
    try:
        nodes = facts.nodes()
    except ClusterApiError as err:
        return [_forbidden("scheduling", title, err, "nodes")]
    try:
        pods = facts.pods()
    except ClusterApiError as err:
        pods = []
        notes.append(f"could not list pods ({err}): free capacity is allocatable only")
    try:
        pools = facts.nodepools()
    except ClusterApiError as err:
        pools = []
        notes.append(f"could not list Karpenter NodePools ({err})")
    pod = facts.pod()
    placement = scheduling.evaluate(pod, nodes, pods, pools)
    need = ", ".join(f"{scheduling.quantity.human(k, v)} {k}" for k, v in sorted(pod.requests.items()))
    details = {
        "requests": {k: v for k, v in pod.requests.items()},
        "feasible_nodes": placement.feasible_nodes,
        "feasible_nodepools": placement.feasible_nodepools,
        "message": placement.message(),
        "nodes": {v.name: [m.detail for m in v.misses] for v in placement.nodes},
        "nodepools": {v.name: [m.detail for m in v.misses] for v in placement.nodepools},
    }
    if placement.unmodelled:
        notes.append(f"not modelled: {', '.join(placement.unmodelled)} (the scheduler may still refuse)")
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if placement.feasible_nodes:
        fit = placement.feasible_nodes
        replicas = scheduling.replicas_that_fit(placement, nodes, pods)
        saw = (f"{placement.message()} for a pod requesting {need}: {', '.join(fit[:5])}{' …' if len(fit) > 5 else ''}"
               + (f"; NodePool(s) {', '.join(placement.feasible_nodepools)} can add more" if placement.feasible_nodepools else ""))
        details["replicas_that_fit_now"] = replicas
        if replicas < facts.target.min_replicas and not placement.feasible_nodepools:
            return [Check("scheduling", WARN, saw + f"; only {replicas} replica(s) fit now, minReplicaCount is {facts.target.min_replicas}" + suffix,
                          "add GPU nodes (or a Karpenter NodePool) for the other replicas", title, details)]
        return [Check("scheduling", WARN if notes else OK, saw + suffix, None, title, details)]
    if placement.feasible_nodepools:
        return [Check("scheduling", WARN if notes else OK,
                      f"{placement.message()} now; Karpenter can launch one from NodePool(s) {', '.join(placement.feasible_nodepools)}" + suffix,
                      None, title, details)]
    line, fix = nearest_miss(placement, facts.target.cloud, nodes)
    details["nearest_miss"] = line
    return [Check("scheduling", FAIL, f"{placement.message()} ({need}); {line}" + suffix, fix, title, details)]


# --------------------------------------------------------------------------- the run

CHECKS: list[Callable[..., list[Check]]] = [
    check_server_version, check_crds, check_keda, check_storage, check_runtime_class,
    check_device_plugin, check_hf_token, check_api_key, check_prometheus, check_prometheus_selects, check_network_policy, check_scheduling,
]


def run(cluster: Cluster, target: Target, gitops: str | None = None) -> Report:
    """Every check, every finding; raises only ClusterUnreachable."""
    facts = Facts(cluster, target)
    checks: list[Check] = []
    for fn in CHECKS:
        try:
            checks += fn(facts, gitops) if fn is check_crds else fn(facts)
        except NotFound as err:  # a check that did not expect a 404
            checks.append(Check(fn.__name__.removeprefix("check_").replace("_", "-"), WARN, f"could not check: {err}", None))
        except ClusterApiError as err:
            checks.append(_forbidden(fn.__name__.removeprefix("check_").replace("_", "-"), "", err, "it"))
    version = cluster.version().get("gitVersion", "")
    c = cluster.connection
    return Report(target.name, target.namespace, c.server, c.context, version, checks)


def render_text(report: Report) -> str:
    """Plain text: one line per check, its fix underneath; the CLI colours it on a TTY."""
    lines = [f"doctor {report.overlay} (namespace {report.namespace}) on {report.context or 'in-cluster'} "
             f"({report.server}, Kubernetes {report.version})"]
    width = max((len(c.id) for c in report.checks), default=10)
    for c in report.checks:
        lines.append(f"{c.status.upper():<4}  {c.id:<{width}}  {c.saw}")
        if c.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    n = report.counts()
    lines.append(f"{n[FAIL]} fail, {n[WARN]} warn, {n[OK]} ok")
    return "\n".join(lines)


__all__ = ["Check", "Report", "run", "render_text", "SCHEMA", "Facts", "nearest_miss", "service_of", "node_cloud"]
