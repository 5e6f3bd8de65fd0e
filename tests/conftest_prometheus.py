"""Rendered monitoring targets and the live-Prometheus fixtures.

Imported by the monitoring test modules (pytest does not load this file by
itself). `targets()` reads every rendered ScaledObject (the facts the alerts
must agree with); `rules()` every rendered PrometheusRule, plus the component
built on its own. `fleet` starts fake exporters for those targets and a real
Prometheus scraping them; its finalizer stops everything.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

import prometheus_harness as ph
from compose.core import kustomize
from compose.publish import monitoring as mon

REPO = Path(__file__).resolve().parents[1]
COMPONENT = REPO / mon.COMPONENT_DIR


@lru_cache(maxsize=None)
def rendered() -> tuple[tuple[str, tuple[dict, ...]], ...]:
    """(relative dir, docs) for every non-Component kustomization, built once per session."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl not found on PATH: install kubectl >= 1.27 (kustomize v5 embedded)")
    out = []
    for directory in kustomize.discover(REPO):
        out.append((str(directory.relative_to(REPO)), tuple(kustomize.build(directory).docs)))
    return tuple(out)


@lru_cache(maxsize=None)
def component_docs() -> tuple[dict, ...]:
    """components/monitoring built on its own (what an overlay gets before its patches)."""
    return tuple(kustomize.build(COMPONENT).docs)


@dataclass(frozen=True)
class Target:
    """What a rendered ScaledObject says about the model it scales."""

    source: str
    served: str
    namespace: str
    deployment: str
    scaled_object: str
    query: str
    threshold: float
    max_replicas: int
    failure_threshold: int
    polling_interval: int
    min_replicas: int = 0
    fallback_replicas: int | None = None
    fallback_behavior: str = "static"  # KEDA's default
    ignore_null_values: bool = True  # KEDA's default

    def pod_name(self, suffix: str) -> str:
        """A pod name the Deployment's ReplicaSet would create: <deployment>-<hash>-<5 chars>."""
        return f"{self.deployment}-7c9d8f6b5-{suffix}"


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _target(source: str, doc: dict) -> Target:
    spec = doc["spec"]
    trigger = next(t for t in spec["triggers"] if t["type"] == "prometheus")
    query = trigger["metadata"]["query"]
    labels = dict(_LABEL.findall(query))
    return Target(
        source=source,
        served=labels.get("model_name", ""),
        namespace=labels.get("namespace", ""),
        deployment=spec["scaleTargetRef"]["name"],
        scaled_object=doc["metadata"]["name"],
        query=query,
        threshold=float(trigger["metadata"]["threshold"]),
        max_replicas=int(spec["maxReplicaCount"]),
        failure_threshold=int(spec.get("fallback", {}).get("failureThreshold", 3)),
        polling_interval=int(spec.get("pollingInterval", 30)),
        min_replicas=int(spec.get("minReplicaCount", 0)),
        fallback_replicas=spec.get("fallback", {}).get("replicas"),
        fallback_behavior=spec.get("fallback", {}).get("behavior", "static"),
        ignore_null_values=str(trigger["metadata"].get("ignoreNullValues", "true")).lower() in ("1", "true", "yes"),
    )


@lru_cache(maxsize=None)
def targets() -> tuple[Target, ...]:
    """One Target per rendered ScaledObject with a Prometheus trigger."""
    return tuple(
        _target(source, doc)
        for source, docs in rendered()
        for doc in docs
        if doc.get("kind") == "ScaledObject"
        and any(t.get("type") == "prometheus" for t in doc["spec"].get("triggers", []))
    )


@lru_cache(maxsize=None)
def rules() -> tuple[tuple[str, dict], ...]:
    """(source, PrometheusRule) for every rendered rule and the component's own."""
    found = [(source, doc) for source, docs in rendered() for doc in docs if doc.get("kind") == "PrometheusRule"]
    found += [(mon.COMPONENT_DIR, doc) for doc in component_docs() if doc.get("kind") == "PrometheusRule"]
    return tuple(found)


def target_for(rule: dict) -> Target | None:
    """The ScaledObject a rule watches: its KEDA query appears verbatim in the rule."""
    text = str(rule["spec"])
    for target in targets():
        if target.query in text:
            return target
    return None


def no_targets_reason() -> str:
    return "no rendered ScaledObject with a Prometheus trigger yet (base/vllm or an overlay adds one)"


# --------------------------------------------------------------------------- live fleet

OTHER_MODEL = "Qwen/Qwen2.5-7B-Instruct"
OTHER_NAMESPACE = "decoy-other"
SHADOW_NAMESPACE = "decoy-shadow"


@dataclass
class Fleet:
    """The fakes and the Prometheus scraping them."""

    prom: ph.Prometheus
    pods: dict[tuple[str, str], list[ph.VllmPod]]  # (served, namespace) -> pods
    decoys: list[ph.VllmPod]
    ksm: ph.StaticExporter
    keda: ph.StaticExporter
    dcgm: ph.StaticExporter
    rules: list[tuple[str, dict, Target]]
    closers: list = field(default_factory=list)

    def pods_of(self, target: Target) -> list[ph.VllmPod]:
        return self.pods[(target.served, target.namespace)]

    def expected_queue(self, served: str, namespace: str) -> float:
        """The summed waiting queue of every fake pod of a model in a namespace."""
        pods = [*self.pods.get((served, namespace), []), *self.decoys]
        return sum(p.gauge("vllm:num_requests_waiting") for p in pods if (p.model_name, p.namespace) == (served, namespace))


def _start_fleet(workdir: Path) -> Fleet:
    pods: dict[tuple[str, str], list[ph.VllmPod]] = {}
    closers: list = []
    try:
        for t in targets():
            key = (t.served, t.namespace)
            if key in pods:
                continue
            # One single-engine pod and one with two data-parallel engines: the
            # KEDA sum must cover pods and engines.
            a = ph.VllmPod(t.served, t.namespace, t.pod_name("aaaa1"), engines=1)
            b = ph.VllmPod(t.served, t.namespace, t.pod_name("bbbb2"), engines=2)
            pods[key] = [a, b]
            closers += [a, b]
        decoys = []
        if targets():
            first = targets()[0]
            decoys = [
                ph.VllmPod(OTHER_MODEL, OTHER_NAMESPACE, "qwen-vllm-5f6d7c8b9-ccc33"),
                ph.VllmPod(first.served, SHADOW_NAMESPACE, "shadow-vllm-5f6d7c8b9-ddd44"),
            ]
            closers += decoys
        # kube-state-metrics scraped with honorLabels: true (kube-prometheus-stack's
        # setting); KEDA and dcgm-exporter with the default, so their object labels
        # arrive as exported_namespace / exported_pod.
        ksm = ph.StaticExporter("kube-state-metrics", True, {"namespace": "monitoring", "pod": "kube-state-metrics-6b7c8d9f0-ksm01", "container": "kube-state-metrics"})
        keda = ph.StaticExporter("keda-operator", False, {"namespace": "keda", "pod": "keda-operator-6b7c8d9f0-keda1", "container": "keda-operator"})
        dcgm = ph.StaticExporter("dcgm-exporter", False, {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-gpu01", "container": "nvidia-dcgm-exporter"})
        closers += [ksm, keda, dcgm]

        paired = []
        rule_files = []
        for i, (source, rule) in enumerate(rules()):
            target = target_for(rule)
            if target is None:
                continue
            path = workdir / f"rules-{i}.yaml"
            path.write_text(ph.rule_file_text(rule))
            rule_files.append(path)
            paired.append((source, rule, target))

        all_pods = [p for group in pods.values() for p in group] + decoys
        prom = ph.Prometheus(workdir, all_pods, [ksm, keda, dcgm], rule_files)
        fleet = Fleet(prom, pods, decoys, ksm, keda, dcgm, paired, closers)
        set_baseline(fleet)
        for group in pods.values():
            for pod in group:  # history from before Prometheus started: never in a rate()
                pod.observe("vllm:time_to_first_token_seconds", 0.05, count=100)
        for p in decoys:
            p.set("vllm:num_requests_waiting", 100)
        prom.start()
        return fleet
    except BaseException:
        for c in closers:
            c.close()
        raise


BASELINE_WAITING = ((3.0,), (4.0, 5.0))  # pod a engine 0; pod b engines 0 and 1
BASELINE_TOTAL = sum(sum(engines) for engines in BASELINE_WAITING)


def set_baseline(fleet: Fleet) -> None:
    """A healthy state: small queues, KV at half, nothing at max replicas, no errors."""
    for (served, ns), (a, b) in fleet.pods.items():
        for pod, waiting in zip((a, b), BASELINE_WAITING):
            pod.serving = True
            for engine, value in enumerate(waiting):
                pod.set("vllm:num_requests_waiting", value, engine)
                pod.set("vllm:num_requests_running", 2 * value, engine)
                pod.set("vllm:kv_cache_usage_perc", 0.5, engine)
    for t in targets():
        if (t.served, t.namespace) not in fleet.pods:
            continue
        deploy = {"namespace": t.namespace, "deployment": t.deployment}
        hpa = {"namespace": t.namespace, "horizontalpodautoscaler": f"keda-hpa-{t.scaled_object}"}
        fleet.ksm.set("kube_deployment_spec_replicas", deploy, 0)
        fleet.ksm.set("kube_deployment_status_replicas_available", deploy, 2)
        fleet.ksm.set("kube_horizontalpodautoscaler_status_desired_replicas", hpa, 2)
        fleet.ksm.set("kube_horizontalpodautoscaler_spec_max_replicas", hpa, t.max_replicas)
        for pod in fleet.pods_of(t):
            labels = {"namespace": t.namespace, "pod": pod.pod, "uid": f"uid-{pod.pod}"}
            fleet.ksm.set("kube_pod_status_phase", {**labels, "phase": "Running"}, 1)
            fleet.ksm.set("kube_pod_status_phase", {**labels, "phase": "Pending"}, 0)
            fleet.ksm.inc("kube_pod_container_status_restarts_total", {**labels, "container": "vllm"}, 0)
            for gpu in range(len(pod.engines)):
                fleet.dcgm.set(
                    "DCGM_FI_DEV_GPU_UTIL",
                    {"gpu": str(gpu), "UUID": f"GPU-{pod.pod}-{gpu}", "modelName": "NVIDIA L4", "Hostname": "gpu-node-1",
                     "namespace": t.namespace, "pod": pod.pod, "container": "vllm"},
                    87,
                )
        keda = keda_labels(t)
        fleet.keda.inc("keda_scaler_detail_errors_total", keda, 0)
        fleet.keda.set("keda_scaler_active", keda, 1)


def keda_labels(t: Target) -> dict[str, str]:
    """The label set KEDA's operator exports for the ScaledObject's first trigger."""
    return {"namespace": t.namespace, "scaledObject": t.scaled_object, "scaler": "prometheusScaler",
            "triggerIndex": "0", "metric": "s0-prometheus", "type": "scaledobject"}


@pytest.fixture(scope="module")
def fleet():
    """Fake exporters for every rendered target and a real Prometheus scraping them."""
    reason = ph.missing_binaries()
    if reason:
        pytest.skip(reason)
    if not targets():
        pytest.skip(no_targets_reason())
    workdir = Path(tempfile.mkdtemp(prefix="vllm-compose-prom-"))
    started = _start_fleet(workdir)
    try:
        yield started
    finally:
        started.prom.stop()
        for closer in started.closers:
            closer.close()
        shutil.rmtree(workdir, ignore_errors=True)
