"""The canary-vs-stable alert rules (compose/generate/canaryalerts.py), checked by promtool
(each alert fires on a synthetic regression and stays quiet on a healthy or borderline one)
and by a real Prometheus scraping fake stable and canary vLLM pods that carry the pods'
instance label, as the monitoring component's PodMonitor adds it (podTargetLabels)."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import prometheus_harness as ph
from compose.generate import canaryalerts as ca
from compose.generate import overlay
from compose.plan import metrics as m
from routing_helpers import GATEWAY, QWEN

pytestmark = pytest.mark.prometheus

STABLE = "dev-qwen2-5-7b"
CANARY = "dev-qwen2-5-7b-canary"
WEIGHT = 10


@pytest.fixture(scope="module")
def generated() -> overlay.Generated:
    """The stable overlay's files while its canary runs at 10 %."""
    return overlay.generate(overlay.Options(**QWEN, gateway=GATEWAY, canary_weight=WEIGHT))


@pytest.fixture(scope="module")
def rule(generated) -> dict:
    (patch,) = yaml.safe_load_all(generated.files["patch-alerts.yaml"])
    return patch


def _canary_rules(rule: dict) -> dict[str, dict]:
    (group,) = [g for g in rule["spec"]["groups"] if g["name"] == ca.GROUP]
    return {r["alert"]: r for r in group["rules"]}


@pytest.fixture
def promtool():
    reason = ph.missing_binaries()
    if reason:
        pytest.skip(reason)


def test_the_group_names_both_tracks_by_the_pods_instance_label(rule, generated):
    rules = _canary_rules(rule)
    assert list(rules) == ["VLLMCanaryErrorRatioAboveStable", "VLLMCanaryTTFTAboveStable",
                           "VLLMCanaryTPOTAboveStable", "VLLMCanaryQueueAboveStable", "VLLMCanaryNoTraffic"]
    for name, r in rules.items():
        assert f'{m.INSTANCE_LABEL}="{CANARY}"' in r["expr"] and f'{m.INSTANCE_LABEL}="{STABLE}"' in r["expr"], name
        assert r["labels"] == {"severity": "warning", "namespace": STABLE, "canary": CANARY,
                               "model_name": generated.plan["served_model_name"]}
        assert "compose canary" in r["annotations"]["runbook"] or "kubectl" in r["annotations"]["runbook"]
        assert m.stale_names(r["expr"]) == []
    # The stable overlay's own alerts and KEDA query see its own pods only.
    vllm_rules = [r for g in rule["spec"]["groups"] if g["name"] == "vllm" for r in g["rules"]]
    assert all(f'{m.INSTANCE_LABEL}="{STABLE}"' in r["expr"] for r in vllm_rules if "vllm:" in r["expr"])


def test_weight_bounds_drop_the_no_traffic_alert():
    for w in (0, 100):
        f = ca.CanaryFigures("m", "ns", "s", "s-canary", w)
        assert "VLLMCanaryNoTraffic" not in [a.name for a in ca.canary_alerts(f)]


def test_promtool_check_rules(rule, promtool, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(ph.rule_file_text(rule))
    proc = ph.promtool_check_rules(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = sum(len(g["rules"]) for g in rule["spec"]["groups"])
    assert f"SUCCESS: {total} rules found" in proc.stdout


# --------------------------------------------------------------------------- promtool unit tests

MINUTES = 40


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _http(instance: str, status: str, per_minute: float) -> dict:
    labels = {"namespace": STABLE, m.INSTANCE_LABEL: instance, "pod": f"{instance}-vllm-7c9d8f6b5-aaaa1",
              "handler": "/v1/chat/completions", "method": "POST", "status": status}
    return {"series": _series(m.HTTP_REQUESTS, labels), "values": f"0+{per_minute}x{MINUTES}"}


def _vllm(served: str, instance: str, name: str, values: str, **extra: str) -> dict:
    labels = {"model_name": served, "engine": "0", "namespace": STABLE, m.INSTANCE_LABEL: instance,
              "pod": f"{instance}-vllm-7c9d8f6b5-aaaa1", **extra}
    return {"series": _series(name, labels), "values": values}


def _histogram(served: str, instance: str, family: str, bucket: str, observed_at: float, per_minute: float) -> list:
    """A histogram whose every observation falls in the bucket holding `observed_at`."""
    bounds = [*m.BUCKETS[family], math.inf]
    out = []
    for bound in bounds:
        rate = per_minute if bound >= observed_at else 0
        out.append(_vllm(served, instance, bucket, f"0+{rate}x{MINUTES}", le=ph.go_float(bound)))
    count = m.VLLM[bucket.removesuffix("_bucket")].series[1]
    out.append(_vllm(served, instance, count, f"0+{per_minute}x{MINUTES}"))
    return out


def _cases(served: str) -> dict[str, dict[str, tuple[list, bool]]]:
    ttft, tpot = "time_to_first_token", "inter_token_latency"
    return {
        "VLLMCanaryErrorRatioAboveStable": {
            "fires at 10 % errors against none": (
                [_http(CANARY, "2xx", 90), _http(CANARY, "5xx", 10), _http(STABLE, "2xx", 900)], True),
            "fires when the stable pods have errors too, but far fewer": (
                [_http(CANARY, "2xx", 80), _http(CANARY, "5xx", 20), _http(STABLE, "2xx", 990),
                 _http(STABLE, "5xx", 10)], True),
            "quiet at the stable ratio": (
                [_http(CANARY, "2xx", 90), _http(CANARY, "5xx", 10), _http(STABLE, "2xx", 900),
                 _http(STABLE, "5xx", 100)], False),
            "quiet below the minimum request count": (
                [_http(CANARY, "5xx", 1), _http(STABLE, "2xx", 900)], False),
        },
        "VLLMCanaryTTFTAboveStable": {
            "fires when the canary is ten times slower": (
                _histogram(served, CANARY, ttft, m.TTFT_BUCKET, 5.0, 60)
                + _histogram(served, STABLE, ttft, m.TTFT_BUCKET, 0.5, 600), True),
            "quiet at the same latency": (
                _histogram(served, CANARY, ttft, m.TTFT_BUCKET, 0.5, 60)
                + _histogram(served, STABLE, ttft, m.TTFT_BUCKET, 0.5, 600), False),
            "quiet below the minimum request count": (
                _histogram(served, CANARY, ttft, m.TTFT_BUCKET, 5.0, 1)
                + _histogram(served, STABLE, ttft, m.TTFT_BUCKET, 0.5, 600), False),
        },
        "VLLMCanaryTPOTAboveStable": {
            "fires when each token takes four times longer": (
                _histogram(served, CANARY, tpot, m.TPOT_BUCKET, 0.2, 60)
                + _histogram(served, STABLE, tpot, m.TPOT_BUCKET, 0.05, 600), True),
            "quiet at the same speed": (
                _histogram(served, CANARY, tpot, m.TPOT_BUCKET, 0.05, 60)
                + _histogram(served, STABLE, tpot, m.TPOT_BUCKET, 0.05, 600), False),
        },
        "VLLMCanaryQueueAboveStable": {
            "fires at 10 waiting per canary pod against 1": (
                [_vllm(served, CANARY, m.NUM_REQUESTS_WAITING, f"10x{MINUTES}"),
                 _vllm(served, STABLE, m.NUM_REQUESTS_WAITING, f"1x{MINUTES}")], True),
            "quiet at 1.5 x stable + 1": (
                [_vllm(served, CANARY, m.NUM_REQUESTS_WAITING, f"2.5x{MINUTES}"),
                 _vllm(served, STABLE, m.NUM_REQUESTS_WAITING, f"1x{MINUTES}")], False),
        },
        "VLLMCanaryNoTraffic": {
            "fires when the canary gets nothing of a busy route": ([_http(STABLE, "2xx", 900)], True),
            "quiet when the canary gets its share": ([_http(STABLE, "2xx", 900), _http(CANARY, "2xx", 100)], False),
            "quiet when the route is too quiet to tell": ([_http(STABLE, "2xx", 0.1)], False),
        },
    }


def test_promtool_unit_tests_fire_and_stay_quiet(rule, generated, promtool, tmp_path):
    rules = _canary_rules(rule)
    (tmp_path / "rules.yaml").write_text(ph.rule_file_text({"spec": {"groups": [
        g for g in rule["spec"]["groups"] if g["name"] == ca.GROUP]}}))
    cases = _cases(generated.plan["served_model_name"])
    assert set(cases) == set(rules), "every canary alert needs promtool cases"
    tests = []
    for alert, by_case in cases.items():
        assert any(fires for _, fires in by_case.values()) and not all(fires for _, fires in by_case.values())
        for case, (series, fires) in by_case.items():
            r = rules[alert]
            expected = [{"exp_labels": r["labels"], "exp_annotations": r["annotations"]}] if fires else []
            tests.append({"name": f"{alert}: {case}", "interval": "1m", "input_series": series,
                          "alert_rule_test": [{"eval_time": f"{MINUTES - 1}m", "alertname": alert,
                                               "exp_alerts": expected}]})
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False, width=4096))
    proc = ph.promtool_test_rules(tmp_path / "tests.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- a real Prometheus


@pytest.fixture(scope="module")
def live(generated, rule):
    reason = ph.missing_binaries()
    if reason:
        pytest.skip(reason)
    served = generated.plan["served_model_name"]
    workdir = Path(tempfile.mkdtemp(prefix="vllm-compose-canary-prom-"))
    stable = [ph.VllmPod(served, STABLE, f"{STABLE}-vllm-7c9d8f6b5-aaa{i}", pod_labels={m.INSTANCE_LABEL: STABLE})
              for i in (1, 2)]
    canary = ph.VllmPod(served, STABLE, f"{CANARY}-vllm-5b6c7d8e9-ccc1", pod_labels={m.INSTANCE_LABEL: CANARY})
    pods = [*stable, canary]
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(ph.rule_file_text(rule))
    prom = ph.Prometheus(workdir, pods, [], [rules_file])
    try:
        for p in pods:
            p.set("vllm:num_requests_waiting", 1)
        prom.start()
        yield prom, stable, canary
    finally:
        prom.stop()
        for p in pods:
            p.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_live_queries_tell_the_canary_from_the_stable_pods(live, generated, rule):
    prom, stable, canary = live
    scaling = yaml.safe_load_all(generated.files["patch-scaling.yaml"])
    query = next(d for d in scaling if d["kind"] == "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    canary.set("vllm:num_requests_waiting", 50)
    # The stable overlay's KEDA query sums its own two pods, not the canary's 50.
    prom.wait_for(query, lambda r: ph.values(r) == [2.0])
    rules = _canary_rules(rule)
    queue = rules["VLLMCanaryQueueAboveStable"]["expr"]
    prom.wait_for(queue, lambda r: ph.values(r) == [50.0])
    canary.set("vllm:num_requests_waiting", 1)
    prom.wait_for(queue, lambda r: r == [])


def test_live_error_ratio_fires_on_canary_errors_only(live, rule):
    prom, stable, canary = live
    expr = _canary_rules(rule)["VLLMCanaryErrorRatioAboveStable"]["expr"]
    assert prom.query(expr) == []
    for _ in range(6):  # counters move over a few scrapes, so rate() sees them
        for p in stable:
            p.request("2xx", 100)
        canary.request("2xx", 20)
        canary.request("5xx", 10)
        time.sleep(1.2)
    result = prom.wait_for(expr, bool, timeout=20)
    assert 0.2 < ph.values(result)[0] < 0.5  # a third of the canary's answers are 5xx
