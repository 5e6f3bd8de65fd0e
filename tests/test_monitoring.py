"""components/monitoring: figures -> thresholds, CRD validity, kustomize behaviour, drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compose.core import kustomize, yamlio
from compose.plan import metrics as m
from compose.generate import alerts as al
from compose.publish import monitoring as mon
from compose.core.errors import InvalidInput
from compose.verify.validate import validate_core, validate_custom
from conftest_prometheus import rendered, targets
from helpers_monitoring import SAMPLE_PLAN

REPO = Path(__file__).resolve().parents[1]
COMPONENT = REPO / mon.COMPONENT_DIR

PLAN = {**SAMPLE_PLAN, "tensor_parallel_size": 4}  # extra keys are ignored


@pytest.fixture
def figures() -> al.AlertFigures:
    return al.AlertFigures.from_plan(PLAN, namespace="prod-70b", name_prefix="prod-70b-", max_replicas=4)


def _rules(rule: dict) -> dict[str, dict]:
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


# --------------------------------------------------------------------------- figures -> thresholds


def test_thresholds_derive_from_the_plan(figures):
    rules = _rules(al.prometheus_rule(figures))
    # KEDA AverageValue: at 4 replicas the 16/replica target is exceeded above 64 waiting.
    backlog = rules["VLLMQueueBacklogAtMaxReplicas"]["expr"]
    assert f"{m.queue_depth_query(PLAN['served_model_name'], 'prod-70b')} > 64" in backlog
    assert '>= 4' in backlog and 'deployment="prod-70b-vllm"' in backlog
    # Absent waits the startup budget (900 s) plus the margin.
    assert rules["VLLMMetricsAbsent"]["for"] == al.duration(900 + al.ABSENT_MARGIN_SECONDS) == "20m"
    # TTFT: 16 queued / 2.5 req/s + 1 s prefill allowance.
    assert figures.ttft_p95_slo_seconds == pytest.approx(16 / 2.5 + 1.0)
    assert rules["VLLMTTFTP95OverSLO"]["expr"].endswith("> 7.4")
    assert "derived" in rules["VLLMTTFTP95OverSLO"]["annotations"]["description"]
    # KEDA falls back after failureThreshold (3) + 1 failed polls of 15 s; the alert also
    # waits one start-up (900 s), during which a first deploy fails the query harmlessly.
    assert rules["VLLMKedaFallbackActive"]["for"] == "15m"
    assert ">= 4" in rules["VLLMKedaFallbackActive"]["expr"]
    assert "currentReplicasIfHigher" in rules["VLLMKedaFallbackActive"]["annotations"]["description"]
    assert "--max-num-queued-reqs=512" in rules["VLLMAdmissionRejections"]["annotations"]["description"]


def test_ttft_slo_override_and_keda_settings():
    f = al.AlertFigures.from_plan(PLAN, "ns", "", 2, 3.0, keda_polling_interval_seconds=30, keda_failure_threshold=5)
    rules = _rules(al.prometheus_rule(f))
    assert rules["VLLMTTFTP95OverSLO"]["expr"].endswith("> 3")
    assert "set by the overlay" in rules["VLLMTTFTP95OverSLO"]["annotations"]["description"]
    assert rules["VLLMKedaFallbackActive"]["for"] == "15m"  # max((5 + 1) * 30 s, 900 s start-up)
    assert ">= 6" in rules["VLLMKedaFallbackActive"]["expr"]
    assert "[6m]" in rules["VLLMKedaFallbackActive"]["expr"]  # window: 2 x (5 + 1) polls of 30 s


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replica_throughput_rps": None}, "lacks replica_throughput_rps"),
        ({"keda_queue_threshold": 0}, "keda_queue_threshold=0"),
        ({"replica_throughput_rps": 0}, "replica_throughput_rps must be > 0"),
    ],
)
def test_bad_plans_are_rejected(change, message):
    with pytest.raises(InvalidInput, match=message):
        al.AlertFigures.from_plan({**PLAN, **change}, "ns", "", 2)


def test_every_alert_is_documented(figures):
    for rule in _rules(al.prometheus_rule(figures)).values():
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}
        assert all(len(v) > 20 for v in rule["annotations"].values()), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
    names = {a.name for a in al.alerts(figures)}
    readme = mon.readme(figures)
    assert all(f"`{n}`" in readme and f"**{n}**" in readme for n in names)
    assert all(p.title in readme for p in mon.panels())


def test_every_expression_uses_listed_names(figures):
    for alert in al.alerts(figures):
        assert m.promql_metric_names(alert.expr) <= m.KNOWN_SERIES, alert.name
        assert m.stale_names(alert.expr) == []
    for expr in mon.dashboard_queries():
        assert m.promql_metric_names(expr) and m.promql_metric_names(expr) <= m.KNOWN_SERIES, expr


# --------------------------------------------------------------------------- CRD / schema validation


def test_rule_podmonitor_and_configmap_validate(figures, crds):
    docs = [al.prometheus_rule(figures), mon.podmonitor()]
    assert validate_custom(docs, "generated", crds) == []
    assert validate_core([mon.dashboard_configmap()], "generated") == []


def test_validation_is_strict_for_our_custom_resources(figures, crds):
    broken = al.prometheus_rule(figures)
    broken["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    broken["spec"]["groups"][0]["rules"][1]["annotation"] = {"summary": "typo"}
    monitor = mon.podmonitor()
    monitor["spec"]["podMetricsEndpoints"][0]["prot"] = "http"
    problems = "\n".join(str(f) for f in validate_custom([broken, monitor], "broken", crds))
    assert "ten minutes" in problems and "'annotation' was unexpected" in problems and "'prot' was unexpected" in problems


def test_component_builds_and_validates(crds):
    docs = kustomize.build(COMPONENT).docs
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "PodMonitor", "PrometheusRule"]
    custom = [d for d in docs if d["kind"] != "ConfigMap"]
    assert validate_custom(custom, mon.COMPONENT_DIR, crds) == []
    assert validate_core([d for d in docs if d["kind"] == "ConfigMap"], mon.COMPONENT_DIR) == []


def test_rendered_monitoring_objects_validate(crds):
    for source, docs in rendered():
        ours = [d for d in docs if d["kind"] in ("PodMonitor", "PrometheusRule")]
        assert validate_custom(ours, source, crds) == []


# --------------------------------------------------------------------------- patch and component behaviour


def test_alerts_patch_text(figures):
    text = al.alerts_patch(figures)
    assert text.startswith(al.GENERATED_MARK)
    assert "# Why:" in text and "spec.groups" in text
    patch = yamlio.load(text)
    assert (patch["kind"], patch["metadata"]["name"]) == ("PrometheusRule", "vllm")
    assert patch["spec"] == al.prometheus_rule(figures)["spec"]
    custom = al.alerts_patch(figures, header="# Generated by compose (patch-alerts.yaml) for overlay x.\n")
    assert custom.startswith("# Generated by compose (patch-alerts.yaml) for overlay x.\n# Why:")
    assert al.alerts_patch(figures) == text  # deterministic


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_overlay_patch_replaces_the_component_rule_and_scopes_the_podmonitor(tmp_path, figures, kubectl):
    """The ordering contract: the component first, then the overlay's patch-alerts.yaml wins."""
    reference = al.AlertFigures.from_plan({**PLAN, "served_model_name": "ref/model"}, "vllm", "", 1)
    _write(tmp_path / "components/monitoring", mon.component_files(reference))
    _write(tmp_path / "base", {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                              "resources: [deployment.yaml]\nlabels:\n  - pairs: {app.kubernetes.io/name: vllm}\n"
                              "    includeSelectors: true\n",
        "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: vllm}\nspec:\n"
                           "  selector: {matchLabels: {}}\n  template:\n    metadata: {}\n"
                           "    spec: {containers: [{name: vllm, image: 'vllm/vllm-openai:v0.33.0'}]}\n",
    })
    _write(tmp_path / "overlays/prod-70b", {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                              "namespace: prod-70b\nnamePrefix: prod-70b-\nresources: [../../base]\n"
                              "components: [../../components/monitoring]\nlabels:\n"
                              "  - pairs: {app.kubernetes.io/instance: prod-70b}\n    includeSelectors: true\n"
                              "patches:\n  - path: patch-alerts.yaml\n",
        "patch-alerts.yaml": al.alerts_patch(figures),
    })
    docs = {d["kind"]: d for d in kustomize.build(tmp_path / "overlays/prod-70b").docs}
    rule = docs["PrometheusRule"]
    assert rule["metadata"] == {"name": "prod-70b-vllm", "namespace": "prod-70b",
                                "labels": {"app.kubernetes.io/instance": "prod-70b"}}
    assert rule["spec"] == al.prometheus_rule(figures)["spec"]
    assert "ref/model" not in json.dumps(rule)
    selector = docs["PodMonitor"]["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "prod-70b"}
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert docs["ConfigMap"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    # Without the patch the rule keeps the reference thresholds: nothing else owns it.
    (tmp_path / "overlays/prod-70b/kustomization.yaml").write_text(
        (tmp_path / "overlays/prod-70b/kustomization.yaml").read_text().split("patches:")[0]
    )
    bare = {d["kind"]: d for d in kustomize.build(tmp_path / "overlays/prod-70b").docs}
    assert bare["PrometheusRule"]["spec"] == al.prometheus_rule(reference)["spec"]
    assert bare["Deployment"] == docs["Deployment"]


def test_rendered_rules_agree_with_their_scaled_objects():
    """In every build with both, the rule's thresholds are the ScaledObject's."""
    checked = 0
    for source, docs in rendered():
        rule = next((d for d in docs if d["kind"] == "PrometheusRule"), None)
        scaled = [t for t in targets() if t.source == source]
        if rule is None or not scaled:
            continue
        (t,) = scaled
        alerts = _rules(rule)
        limit = al.number(t.threshold * t.max_replicas)
        assert f"{t.query} > {limit}" in alerts["VLLMQueueBacklogAtMaxReplicas"]["expr"], source
        assert f'deployment="{t.deployment}"' in alerts["VLLMQueueBacklogAtMaxReplicas"]["expr"], source
        assert f">= {t.max_replicas}" in alerts["VLLMQueueBacklogAtMaxReplicas"]["expr"], source
        budget = _seconds(alerts["VLLMMetricsAbsent"]["for"]) - al.ABSENT_MARGIN_SECONDS
        assert _seconds(alerts["VLLMKedaFallbackActive"]["for"]) == max((t.failure_threshold + 1) * t.polling_interval,
                                                                        budget), source
        assert f'scaledObject="{t.scaled_object}"' in alerts["VLLMKedaFallbackActive"]["expr"], source
        checked += 1
    if not checked:
        pytest.skip("no rendered overlay has both a ScaledObject and a PrometheusRule yet")


def test_rendered_keda_queries_come_from_the_single_builder():
    if not targets():
        pytest.skip("no rendered ScaledObject yet")
    for source, docs in rendered():
        for doc in docs:
            if doc["kind"] != "ScaledObject":
                continue
            (t,) = [t for t in targets() if t.source == source and t.scaled_object == doc["metadata"]["name"]]
            assert t.query == m.queue_depth_query(t.served, t.namespace), source
            assert t.namespace == doc["metadata"]["namespace"], f"{source}: query filters another namespace"


# --------------------------------------------------------------------------- dashboard


def test_dashboard_serves_every_overlay():
    dash = mon.dashboard()
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"namespace", "model_name"} <= variables
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for p in panels:
        assert p["targets"] and p["description"]
        for target in p["targets"]:
            if m.VLLM_SERIES & m.promql_metric_names(target["expr"]):
                assert 'model_name="$model_name"' in target["expr"] and 'namespace="$namespace"' in target["expr"]
            else:  # other exporters: the object's namespace under either label layout
                assert 'namespace="$namespace"' in target["expr"] and 'exported_namespace="$namespace"' in target["expr"]
    titles = {p["title"] for p in panels}
    assert {"Waiting queue", "Running requests", "KV cache usage", "Time to first token", "Inter-token latency",
            "End-to-end latency", "Tokens per second", "Replicas vs KEDA desired", "Preemptions",
            "GPU utilization", "GPU memory used"} <= titles
    # Panels never overlap on the grid.
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))


def test_dashboard_configmap_carries_the_generated_json():
    cm = mon.dashboard_configmap()
    assert cm["metadata"]["labels"] == {"grafana_dashboard": "1"}
    (text,) = cm["data"].values()
    assert json.loads(text) == mon.dashboard()
    assert text == mon.dashboard_json() == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- committed files


def test_component_files_are_deterministic_and_headed(figures):
    files = mon.component_files(figures)
    assert files == mon.component_files(figures)
    assert list(files) == sorted(files)
    for rel, text in files.items():
        first = text.splitlines()[0]
        assert "Generated by compose" in first and "compose regen --all" in first, rel
        if rel.endswith(".yaml"):
            data = yamlio.load(text, rel)
            assert yamlio.dump(data) in text, f"{rel}: not the project's fixed YAML style"
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["kind"] == "Component"
    assert set(kustomization["resources"]) | set(kustomization["configurations"]) | {"kustomization.yaml", "README.md"} == set(files)
    assert "Ordering contract" in files["kustomization.yaml"]


def test_committed_component_matches_the_generator():
    """Drift: components/monitoring is exactly what `compose regen --all` writes."""
    try:
        expected = mon.component_files()
    except ImportError as err:
        pytest.fail(f"compose.publish.monitoring.reference_figures() needs the planner: {err}")
    on_disk = {str(p.relative_to(COMPONENT)): p.read_text() for p in sorted(COMPONENT.rglob("*")) if p.is_file()}
    assert sorted(on_disk) == sorted(expected), "files differ; run `compose regen --all`"
    stale = [rel for rel in expected if on_disk[rel] != expected[rel]]
    assert stale == [], f"out of date: {stale}; run `compose regen --all` and commit the result"


def test_component_defaults_match_the_base():
    """The committed rule watches the base's model, namespace and replica bound."""
    base = [t for t in targets() if t.source == "base/vllm"]
    if not base:
        pytest.skip("base/vllm has no ScaledObject yet")
    (t,) = base
    rule = next(d for d in kustomize.build(COMPONENT).docs if d["kind"] == "PrometheusRule")
    backlog = _rules(rule)["VLLMQueueBacklogAtMaxReplicas"]["expr"]
    assert t.query in backlog, "components/monitoring's rule does not watch base/vllm's model and namespace"
    assert f"> {al.number(t.threshold * t.max_replicas)}" in backlog, (
        f"base/vllm's ScaledObject (threshold {t.threshold} x max {t.max_replicas}) disagrees with the planner's "
        "reference plan the component is generated from: re-plan the base or run `compose regen --all`"
    )
    ref = mon.reference_figures()
    assert (t.namespace, t.max_replicas) == (ref.namespace, ref.max_replicas)


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    import re

    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))
