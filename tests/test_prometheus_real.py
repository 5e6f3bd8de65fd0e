"""Every PromQL expression we ship, evaluated by a real Prometheus and by promtool.

The live tests (module fixture `fleet`) run against fake vLLM 0.33 pods, a fake
kube-state-metrics (honorLabels: true), KEDA operator and dcgm-exporter (default
scrape, so their object labels arrive as exported_*). The promtool tests check
and unit-test every rendered PrometheusRule: each alert fires on a synthetic
failure and stays quiet on the healthy or borderline case.

Tests in this module run in file order and share the fleet: the alert test
checks "quiet" before it makes counters move.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml

import prometheus_harness as ph
from compose.plan import metrics as m
from compose.generate import alerts as al
from compose.publish import monitoring as mon
from conftest_prometheus import (  # noqa: F401 - `fleet` is a fixture
    BASELINE_TOTAL,
    BASELINE_WAITING,
    OTHER_MODEL,
    OTHER_NAMESPACE,
    SHADOW_NAMESPACE,
    Target,
    fleet,
    keda_labels,
    no_targets_reason,
    rules,
    set_baseline,
    target_for,
    targets,
)

pytestmark = pytest.mark.prometheus


def _skip_without_targets() -> None:
    if not targets():
        pytest.skip(no_targets_reason())


# --------------------------------------------------------------------------- the KEDA query


def test_keda_query_returns_one_series_equal_to_the_summed_queue(fleet):
    """Every rendered ScaledObject's query, verbatim: one series, the sum over pods and engines."""
    set_baseline(fleet)
    for t in targets():
        expected = fleet.expected_queue(t.served, t.namespace)
        assert expected == BASELINE_TOTAL
        result = fleet.prom.wait_for(t.query, lambda r, e=expected: ph.values(r) == [e])
        assert len(result) == 1, f"{t.source}: KEDA needs exactly one series, got {result}"
        assert result[0]["metric"] == {}, f"{t.source}: sum() must drop every label"


def test_keda_query_follows_the_pods(fleet):
    """When the fake servers change their numbers, the query returns the new sum."""
    for t in targets():
        a, b = fleet.pods_of(t)
        a.set("vllm:num_requests_waiting", 10)
        b.set("vllm:num_requests_waiting", 0, engine=1)
        expected = fleet.expected_queue(t.served, t.namespace)
        assert expected == 10 + BASELINE_WAITING[1][0]
        fleet.prom.wait_for(t.query, lambda r, e=expected: ph.values(r) == [e])
    set_baseline(fleet)
    for t in targets():
        fleet.prom.wait_for(t.query, lambda r: ph.values(r) == [BASELINE_TOTAL])


def test_keda_query_ignores_other_models_and_namespaces(fleet):
    """A query for another model is empty; the same model in another namespace is not counted."""
    t = targets()[0]
    assert fleet.prom.query(m.queue_depth_query(OTHER_MODEL, t.namespace)) == []
    assert fleet.prom.query(m.queue_depth_query("meta-llama/not-served", t.namespace)) == []
    # The decoys exist and are scraped: their own queries see them.
    assert ph.values(fleet.prom.query(m.queue_depth_query(OTHER_MODEL, OTHER_NAMESPACE))) == [100.0]
    assert ph.values(fleet.prom.query(m.queue_depth_query(t.served, SHADOW_NAMESPACE))) == [100.0]
    # `model` is the label production-stack filters on; vLLM has none, so it matches nothing.
    wrong = t.query.replace("model_name=", "model=")
    assert fleet.prom.query(wrong) == []


# --------------------------------------------------------------------------- a first deploy, seen by KEDA


class ScalerError(Exception):
    """What KEDA's Prometheus scaler returns instead of a value."""


def keda_prometheus_value(result: list[dict], ignore_null_values: bool) -> float:
    """KEDA's Prometheus scaler on a query result (kedacore/keda pkg/scalers/prometheus_scaler.go
    @8b4f083c, L264-307): no series, or a series without a value, is 0 with ignoreNullValues
    true and an error ("... target may be lost, the result is empty") with false; more than
    one series is always an error."""
    if len(result) > 1:
        raise ScalerError("prometheus query returned multiple elements")
    if not result or not result[0].get("value"):
        if ignore_null_values:
            return 0.0
        raise ScalerError("prometheus metrics 'prometheus' target may be lost, the result is empty")
    return float(result[0]["value"][1])


def keda_fallback_replicas(behavior: str, current: int, fallback_replicas: int) -> int:
    """The replica count KEDA makes the HPA compute once failures exceed failureThreshold
    (kedacore/keda pkg/fallback/fallback.go doFallback, L242-271)."""
    return {
        "static": fallback_replicas,
        "currentReplicas": current,
        "currentReplicasIfHigher": max(current, fallback_replicas),
        "currentReplicasIfLower": min(current, fallback_replicas),
    }[behavior]


def test_before_the_first_scrape_keda_sees_no_series_and_holds_the_minimum(fleet):
    """A first deploy: the pods run, but vLLM serves no /metrics series until its model
    is loaded (minutes for a 70B). Every rendered KEDA query then returns *no series*,
    not 0; with ignoreNullValues "false" KEDA's scaler turns that into an error, and after
    failureThreshold errors the fallback behaviour decides. Rendered: currentReplicasIfHigher
    with replicas = minReplicaCount, so the count stays at the minimum a fresh Deployment was
    scaled to (the old static fallback of maxReplicaCount jumped to the maximum)."""
    _skip_without_targets()
    t0 = targets()[0]
    # A model that was never scraped: nothing at all under its name and namespace.
    never = t0.query.replace(f'namespace="{t0.namespace}"', 'namespace="fresh-deploy-never-scraped"')
    assert fleet.prom.query(never) == []
    try:
        for t in targets():
            for pod in fleet.pods_of(t):
                pod.serving = False  # loading: the scrape succeeds with no vLLM series
        for t in targets():
            result = fleet.prom.wait_for(t.query, lambda r: r == [])  # stale: no series, not 0
            assert result == [], t.source
            assert not t.ignore_null_values, f"{t.source}: an empty result must be an error, not 0"
            with pytest.raises(ScalerError, match="result is empty"):
                keda_prometheus_value(result, t.ignore_null_values)
            # The HPA starts the Deployment at minReplicaCount; the fallback holds it there.
            assert t.fallback_behavior == "currentReplicasIfHigher", t.source
            assert t.fallback_replicas == t.min_replicas, t.source
            held = keda_fallback_replicas(t.fallback_behavior, t.min_replicas, t.fallback_replicas)
            assert held == t.min_replicas, t.source
            # A Prometheus outage at a peak of max replicas holds the peak (never scales down).
            assert keda_fallback_replicas(t.fallback_behavior, t.max_replicas, t.fallback_replicas) == t.max_replicas
            # What the old static fallback (replicas = max) would have done to a fresh deploy:
            assert keda_fallback_replicas("static", t.min_replicas, t.max_replicas) == t.max_replicas
    finally:
        set_baseline(fleet)
    for t in targets():  # loaded: the series return and KEDA scales on the queue again
        result = fleet.prom.wait_for(t.query, lambda r: ph.values(r) == [BASELINE_TOTAL])
        assert keda_prometheus_value(result, t.ignore_null_values) == BASELINE_TOTAL


# --------------------------------------------------------------------------- dashboard


def _grafana(expr: str, t: Target) -> str:
    """Substitute the dashboard's template variables as Grafana would for one overlay."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$namespace", t.namespace)
        .replace("$model_name", t.served)
    )


def test_dashboard_variables_list_the_fleet(fleet):
    """The namespace and model_name variables resolve through the label-values API."""
    variables = {v["name"]: v for v in mon.dashboard()["templating"]["list"]}
    pattern = re.compile(r"^label_values\((.+), (\w+)\)$")
    ns_match, ns_label = pattern.match(variables["namespace"]["query"]["query"]).groups()
    namespaces = fleet.prom.api(f"/api/v1/label/{ns_label}/values", **{"match[]": ns_match})
    for t in targets():
        assert t.namespace in namespaces
        selector, label = pattern.match(variables["model_name"]["query"]["query"]).groups()
        models = fleet.prom.api(f"/api/v1/label/{label}/values", **{"match[]": _grafana(selector, t)})
        assert models == [t.served]


def test_every_dashboard_query_executes_and_gauges_are_right(fleet):
    set_baseline(fleet)
    by_title = {p.title: p for p in mon.panels()}
    for t in targets():
        fleet.prom.wait_for(t.query, lambda r: ph.values(r) == [BASELINE_TOTAL])
        for panel in mon.panels():
            for expr, _ in panel.targets:
                fleet.prom.query(_grafana(expr, t))  # raises on a parse/execution error
        waiting_total, per_pod = (_grafana(e, t) for e, _ in by_title["Waiting queue"].targets)
        assert ph.values(fleet.prom.query(waiting_total)) == [BASELINE_TOTAL]
        assert sorted(ph.values(fleet.prom.query(per_pod))) == sorted(sum(e) for e in BASELINE_WAITING)
        (kv, _), = by_title["KV cache usage"].targets
        assert ph.values(fleet.prom.query(_grafana(kv, t))) == [0.5, 0.5]
        available, desired, maximum, reporting = (_grafana(e, t) for e, _ in by_title["Replicas vs KEDA desired"].targets)
        assert ph.values(fleet.prom.query(available)) == [2.0]
        assert ph.values(fleet.prom.query(desired)) == [2.0]
        assert ph.values(fleet.prom.query(maximum)) == [float(t.max_replicas)]
        assert ph.values(fleet.prom.query(reporting)) == [2.0]
        # dcgm-exporter scraped without honorLabels: the exported_pod branch answers.
        (util, _), = by_title["GPU utilization"].targets
        result = fleet.prom.query(_grafana(util, t))
        assert ph.values(result) == [87.0, 87.0, 87.0]
        assert {r["metric"].get("exported_pod") for r in result} == {p.pod for p in fleet.pods_of(t)}


# --------------------------------------------------------------------------- alerts, live


def _alerts_of(rule: dict) -> dict[str, dict]:
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def test_every_rendered_rule_watches_a_scaled_model():
    """Each PrometheusRule's queries name a rendered ScaledObject's model and namespace."""
    _skip_without_targets()
    assert rules(), "no PrometheusRule rendered (components/monitoring or an overlay adds one)"
    for source, rule in rules():
        assert target_for(rule) is not None, (
            f"{source}: the PrometheusRule contains no rendered KEDA query; an overlay with the monitoring "
            "component needs its patch-alerts.yaml (compose new-model writes it)"
        )


def _trouble(fleet, t: Target) -> None:
    """Break everything the alerts watch for one target."""
    a, b = fleet.pods_of(t)
    b.set("vllm:num_requests_waiting", 0, 0)
    b.set("vllm:num_requests_waiting", 0, 1)
    a.set("vllm:num_requests_waiting", t.threshold * t.max_replicas + 1)
    a.set("vllm:kv_cache_usage_perc", 0.95)
    a.inc("vllm:num_preemptions", 50)
    a.inc("vllm:request_success", 10, finished_reason="stop")
    a.observe("vllm:time_to_first_token_seconds", 1000.0, count=100)
    a.inc("vllm:admission_rejections", 3, reason="max_num_queued_reqs")
    fleet.ksm.set("kube_deployment_spec_replicas", {"namespace": t.namespace, "deployment": t.deployment}, t.max_replicas)
    pod = {"namespace": t.namespace, "pod": a.pod, "uid": f"uid-{a.pod}", "container": "vllm"}
    fleet.ksm.inc("kube_pod_container_status_restarts_total", pod, 1)
    fleet.ksm.set("kube_pod_container_status_last_terminated_reason", {**pod, "reason": "OOMKilled"}, 1)
    fleet.keda.inc("keda_scaler_detail_errors_total", keda_labels(t), 5 * (t.failure_threshold + 1))


def test_alert_expressions_quiet_when_healthy_then_fire(fleet):
    """Every alert expr of every rendered rule: empty on a healthy fleet, a result on trouble."""
    assert fleet.rules, "no rendered PrometheusRule pairs with a ScaledObject"
    set_baseline(fleet)
    for _, _, t in fleet.rules:
        fleet.prom.wait_for(t.query, lambda r: ph.values(r) == [BASELINE_TOTAL])
    for source, rule, _ in fleet.rules:
        for name, r in _alerts_of(rule).items():
            assert fleet.prom.query(r["expr"]) == [], f"{source}: {name} fires on a healthy fleet"

    for _, _, t in fleet.rules:
        _trouble(fleet, t)
    for source, rule, t in fleet.rules:
        for name, r in _alerts_of(rule).items():
            if name == "VLLMMetricsAbsent":
                continue
            result = fleet.prom.wait_for(r["expr"], bool)
            if name == "VLLMKVCacheNearlyFull":
                assert [x["metric"] for x in result] == [{"pod": fleet.pods_of(t)[0].pod}], source
    set_baseline(fleet)


def test_absent_alert_fires_when_running_pods_have_no_series(fleet):
    for source, rule, t in fleet.rules:
        expr = _alerts_of(rule)["VLLMMetricsAbsent"]["expr"]
        assert fleet.prom.query(expr) == [], f"{source}: series are present"
        for pod in fleet.pods_of(t):
            pod.serving = False  # the scrape succeeds with no vLLM series: they go stale
        result = fleet.prom.wait_for(expr, bool)
        assert result[0]["metric"] == {"model_name": t.served, "namespace": t.namespace}
        for pod in fleet.pods_of(t):
            pod.serving = True
        fleet.prom.wait_for(expr, lambda r: r == [])


def test_rendered_rules_load_and_evaluate_in_prometheus(fleet):
    """Prometheus loaded every rendered rule file and evaluates each rule without error."""

    def loaded(_):
        groups = fleet.prom.api("/api/v1/rules")["groups"]
        return len(groups) == len(fleet.rules) and all(
            r["health"] == "ok" for g in groups for r in g["rules"]
        )

    fleet.prom.wait_for("vector(1)", loaded)
    for g in fleet.prom.api("/api/v1/rules")["groups"]:
        assert all(not r.get("lastError") for r in g["rules"]), g


# --------------------------------------------------------------------------- promtool


def _rule_params():
    return [pytest.param(rule, id=source) for source, rule in rules()] or [
        pytest.param(None, marks=pytest.mark.skip(reason="no PrometheusRule rendered yet"))
    ]


@pytest.fixture
def promtool():
    reason = ph.missing_binaries()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("rule", _rule_params())
def test_promtool_check_rules(rule, promtool, tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(ph.rule_file_text(rule))
    proc = ph.promtool_check_rules(rules_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alerts_of(rule))} rules found" in proc.stdout


def _seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    total = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))
    return int(total)


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    return f"{name}{{{inner}}}"


class Cases:
    """Synthetic series for one rule's alerts, from the ScaledObject it watches.

    Thresholds come from the ScaledObject (KEDA target, max replicas, failure
    threshold), not from the rule, so a rule that disagrees with its
    ScaledObject fails these cases.
    """

    def __init__(self, t: Target, rule_alerts: dict[str, dict]):
        self.t = t
        self.alerts = rule_alerts
        self.pod = t.pod_name("aaaa1")

    def minutes(self, name: str, extra: int = 6) -> int:
        return math.ceil(_seconds(self.alerts[name]["for"]) / 60) + extra

    def vllm(self, **extra: str) -> dict:
        """Labels of a vLLM series as scraped through the PodMonitor."""
        return {"model_name": self.t.served, "engine": "0", "namespace": self.t.namespace, "pod": self.pod,
                "container": "vllm", **extra}

    def exporter(self, honor: bool, **labels: str) -> dict:
        """Labels of an exporter's series scraped with or without honorLabels."""
        if honor:
            return labels
        renamed = {(f"exported_{k}" if k in m.TARGET_LABELS else k): v for k, v in labels.items()}
        return {**renamed, "namespace": "monitoring", "pod": "kube-state-metrics-6b7c8d9f0-ksm01"}

    @staticmethod
    def const(value: float, n: int) -> str:
        return f"{value}x{n}"

    @staticmethod
    def ramp(step: float, n: int) -> str:
        return f"0+{step}x{n}"

    @staticmethod
    def step_at(before: float, after: float, at: int, n: int) -> str:
        return " ".join(str(before if i < at else after) for i in range(n + 1))

    # Each returns {case name: (input series, expected extra labels or None for "quiet")}.
    def backlog(self):
        n = self.minutes("VLLMQueueBacklogAtMaxReplicas")
        limit = self.t.threshold * self.t.max_replicas

        def q(value):
            return m.NUM_REQUESTS_WAITING, self.vllm(), self.const(value, n)

        def rep(value, honor=True):
            labels = self.exporter(honor, namespace=self.t.namespace, deployment=self.t.deployment)
            return "kube_deployment_spec_replicas", labels, self.const(value, n)

        return {
            "fires above threshold x max at max replicas": ([q(limit + 1), rep(self.t.max_replicas)], {}),
            "fires with exported_namespace labels": ([q(limit + 1), rep(self.t.max_replicas, False)], {}),
            "quiet at exactly threshold x max": ([q(limit), rep(self.t.max_replicas)], None),
            "quiet below max replicas": ([q(limit + 1), rep(self.t.max_replicas - 1)], None),
        }

    def kv(self):
        n = self.minutes("VLLMKVCacheNearlyFull")

        def usage(value):
            return m.KV_CACHE_USAGE, self.vllm(), self.const(value, n)

        return {
            "fires above 0.9": ([usage(0.95)], {"pod": self.pod}),
            "quiet at 0.9": ([usage(al.KV_USAGE_THRESHOLD)], None),
        }

    def preemptions(self):
        n = self.minutes("VLLMPreemptionsRising")
        done = (m.REQUEST_SUCCESS, self.vllm(finished_reason="stop"), self.ramp(100, n))

        def pre(ratio):
            return m.NUM_PREEMPTIONS, self.vllm(), self.ramp(100 * ratio, n)

        return {
            "fires at twice the ratio": ([done, pre(2 * al.PREEMPTION_RATIO)], {}),
            "quiet at half the ratio": ([done, pre(al.PREEMPTION_RATIO / 2)], None),
        }

    def absent(self):
        n = self.minutes("VLLMMetricsAbsent")

        def phase(value, honor=True, name="Running"):
            labels = self.exporter(honor, namespace=self.t.namespace, pod=self.pod, phase=name, uid="u1")
            return "kube_pod_status_phase", labels, self.const(value, n)

        present = (m.NUM_REQUESTS_WAITING, self.vllm(), self.const(0, n))
        labels = {"model_name": self.t.served, "namespace": self.t.namespace}
        other_pod = ("kube_pod_status_phase",
                     {"namespace": self.t.namespace, "pod": f"other-{self.pod}", "phase": "Running", "uid": "u2"},
                     self.const(1, n))
        return {
            "fires when a pod runs without series": ([phase(1)], labels),
            "fires with exported_pod labels": ([phase(1, False)], labels),
            "quiet while series exist": ([phase(1), present], None),
            "quiet when no pod of the Deployment runs": ([phase(0), phase(1, name="Pending"), other_pod], None),
        }

    def _restarts(self, container: str, value: str, honor: bool = True):
        labels = self.exporter(honor, namespace=self.t.namespace, pod=self.pod, container=container, uid="u1")
        return "kube_pod_container_status_restarts_total", labels, value

    def restarts(self):
        n = 16
        jump = self.step_at(3, 4, 10, n)
        return {
            "fires after a restart": ([self._restarts("vllm", jump)], {}),
            "fires with exported labels": ([self._restarts("vllm", jump, False)], {}),
            "quiet with old restarts only": ([self._restarts("vllm", self.const(3, n))], None),
            "quiet when another container restarts": ([self._restarts("sidecar", jump)], None),
        }

    def oom(self):
        n = 16
        jump = self.step_at(0, 1, 10, n)

        def reason(why: str, honor: bool = True):
            return ("kube_pod_container_status_last_terminated_reason",
                    self.exporter(honor, namespace=self.t.namespace, pod=self.pod, container="vllm", reason=why,
                                  uid="u1"),
                    self.step_at(0, 1, 10, n))

        return {
            "fires after an OOM kill": ([self._restarts("vllm", jump), reason("OOMKilled")], {}),
            "fires with exported labels": ([self._restarts("vllm", jump, False), reason("OOMKilled", False)], {}),
            "quiet after a non-OOM restart": ([self._restarts("vllm", jump), reason("Error")], None),
        }

    def ttft(self):
        n = self.minutes("VLLMTTFTP95OverSLO")
        bounds = [*m.BUCKETS["time_to_first_token"], math.inf]

        def histogram(first_bucket_with_observations: int) -> list:
            out = []
            for i, bound in enumerate(bounds):
                rate = 60 if i >= first_bucket_with_observations else 0
                le = ph.go_float(bound)
                out.append((m.TTFT_BUCKET, self.vllm(le=le), self.ramp(rate, n)))
            return out

        return {
            # Every request in the top finite bucket (640 s, 2560 s]: p95 is above any sane SLO.
            "fires when every request is slow": (histogram(len(bounds) - 2), {}),
            # Every request within 1 ms.
            "quiet when every request is fast": (histogram(0), None),
        }

    def admission(self):
        n = self.minutes("VLLMAdmissionRejections")
        labels = {"model_name": self.t.served, "reason": "max_num_queued_reqs", "namespace": self.t.namespace,
                  "pod": self.pod}
        return {
            "fires on rejections": ([(m.ADMISSION_REJECTIONS, labels, self.ramp(5, n))], {}),
            "quiet without": ([(m.ADMISSION_REJECTIONS, labels, self.const(0, n))], None),
        }

    def _keda(self, value: str, honor: bool = True, scaled_object: str | None = None):
        labels = {**keda_labels(self.t), **({"scaledObject": scaled_object} if scaled_object else {})}
        return "keda_scaler_detail_errors_total", self.exporter(honor, **labels), value

    def keda_errors(self):
        n = self.minutes("VLLMKedaScalerErrors")
        return {
            "fires on errors": ([self._keda(self.ramp(4, n))], {}),
            "fires with exported_namespace labels": ([self._keda(self.ramp(4, n), False)], {}),
            "quiet without errors": ([self._keda(self.const(0, n))], None),
            "quiet on another ScaledObject's errors": ([self._keda(self.ramp(4, n), scaled_object="other-vllm")], None),
        }

    def keda_fallback(self):
        n = self.minutes("VLLMKedaFallbackActive")
        per_minute = 4 * (self.t.failure_threshold + 1)  # every poll and every HPA read fails
        cases = {"fires on sustained errors": ([self._keda(self.ramp(per_minute, n))], {})}
        if self.t.failure_threshold >= 2:  # one error can read as two after extrapolation
            cases["quiet after a single error"] = ([self._keda(self.step_at(0, 1, 3, n))], None)
        return cases

    BUILDERS = {
        "VLLMQueueBacklogAtMaxReplicas": backlog,
        "VLLMKVCacheNearlyFull": kv,
        "VLLMPreemptionsRising": preemptions,
        "VLLMMetricsAbsent": absent,
        "VLLMPodRestarting": restarts,
        "VLLMOOMKilled": oom,
        "VLLMTTFTP95OverSLO": ttft,
        "VLLMAdmissionRejections": admission,
        "VLLMKedaScalerErrors": keda_errors,
        "VLLMKedaFallbackActive": keda_fallback,
    }

    def groups(self) -> list[dict]:
        """promtool test groups: per alert, per case, the expected alerts at eval time."""
        missing = sorted(set(self.alerts) - set(self.BUILDERS))
        assert not missing, f"alerts without promtool cases: {missing}"
        out = []
        for name, build in self.BUILDERS.items():
            rule = self.alerts[name]
            for case, (series, extra) in build(self).items():
                length = max(len(v.split()) if " " in v else int(v.rsplit("x", 1)[1]) for _, _, v in series)
                expected = [] if extra is None else [
                    {"exp_labels": {**extra, **rule["labels"]}, "exp_annotations": rule["annotations"]}
                ]
                out.append({
                    "name": f"{name}: {case}",
                    "interval": "1m",
                    "input_series": [{"series": _series(s, labels), "values": v} for s, labels, v in series],
                    "alert_rule_test": [{"eval_time": f"{length - 1}m", "alertname": name, "exp_alerts": expected}],
                })
        return out


@pytest.mark.parametrize("rule", _rule_params())
def test_promtool_unit_tests_fire_and_stay_quiet(rule, promtool, tmp_path):
    target = target_for(rule)
    if target is None:
        pytest.fail("the rule watches no rendered ScaledObject (see test_every_rendered_rule_watches_a_scaled_model)")
    cases = Cases(target, _alerts_of(rule))
    (tmp_path / "rules.yaml").write_text(ph.rule_file_text(rule))
    groups = cases.groups()
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": groups}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False, width=4096))
    proc = ph.promtool_test_rules(tmp_path / "tests.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fired = [g for g in groups if g["alert_rule_test"][0]["exp_alerts"]]
    assert {g["alert_rule_test"][0]["alertname"] for g in fired} == set(_alerts_of(rule))
    assert len(groups) > len(fired), "every alert also needs a case where it stays quiet"
