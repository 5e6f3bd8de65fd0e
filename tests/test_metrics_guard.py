"""Guard: nothing we ship names a vLLM metric that vLLM 0.33.0 does not expose.

Scans every YAML/JSON file under base/, components/, overlays/, argocd/ and flux/, and
the generated rules, patch and dashboard, against `compose.plan.metrics`. The table
itself is checked against the vLLM source when it is available.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from compose.plan import metrics as m
from compose.generate import alerts as al
from compose.publish import monitoring as mon
from helpers_monitoring import SAMPLE_PLAN

REPO = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("base", "components", "overlays", "argocd", "flux")
SCANNED_SUFFIXES = (".yaml", ".yml", ".json")


def shipped_files() -> list[Path]:
    return sorted(
        p
        for d in SCANNED_DIRS
        if (REPO / d).is_dir()
        for p in (REPO / d).rglob("*")
        if p.is_file() and p.suffix in SCANNED_SUFFIXES
    )


def generated_texts() -> dict[str, str]:
    """Everything the generators emit, for figures that need no planner."""
    figures = al.AlertFigures.from_plan(SAMPLE_PLAN, "prod-70b", "prod-70b-", 4)
    texts = {f"components/monitoring/{k} (sample figures)": v for k, v in mon.component_files(figures).items()}
    texts["patch-alerts.yaml (sample figures)"] = al.alerts_patch(figures)
    texts["dashboard JSON"] = mon.dashboard_json()
    return texts


def _report(where: str, text: str) -> list[str]:
    return [f"{where}: {s}" for s in m.stale_names(text)]


def test_shipped_manifests_use_only_current_vllm_names():
    files = shipped_files()
    assert any(p.is_relative_to(REPO / "base") for p in files), "nothing scanned: base/ is missing"
    problems = [line for p in files for line in _report(str(p.relative_to(REPO)), p.read_text())]
    assert problems == [], "\n".join(problems)


def test_generated_rules_patch_and_dashboard_use_only_current_vllm_names():
    problems = [line for where, text in generated_texts().items() for line in _report(where, text)]
    assert problems == [], "\n".join(problems)


def test_every_query_we_generate_references_only_listed_series():
    figures = al.AlertFigures.from_plan(SAMPLE_PLAN, "prod-70b", "prod-70b-", 4)
    exprs = [a.expr for a in al.alerts(figures)] + mon.dashboard_queries()
    unknown = {e: sorted(m.promql_metric_names(e) - m.KNOWN_SERIES) for e in exprs}
    assert {e: u for e, u in unknown.items() if u} == {}
    used = set().union(*(m.promql_metric_names(e) for e in exprs))
    assert m.NUM_REQUESTS_WAITING in used and "keda_scaler_detail_errors_total" in used


# --------------------------------------------------------------------------- the guard itself

SYNTHETIC = """
# a blog's dashboard, pasted
expr: sum(vllm:gpu_cache_usage_perc{model_name="m"}) by (pod)
query: vllm_pending_requests_total
other: rate(vllm:gpu_prefix_cache_hits_total[5m]) / vllm:gpu_prefix_cache_queries_total
tpot: histogram_quantile(0.9, rate(vllm:time_per_output_token_seconds_bucket[1m]))
v0: vllm:num_requests_swapped + vllm_engine_request_count
family: rate(vllm:num_preemptions[5m]) + vllm:time_to_first_token_seconds
typo: vllm:num_request_waiting
fine: sum(vllm:num_requests_waiting{model_name="m"}) + vllm:kv_cache_usage_perc + vllm:prompt_tokens_total
image: example.com/vllm:v0.33.0 and vllm/vllm-openai:v0.33.0
"""


def test_guard_flags_removed_invented_family_and_typo_names():
    found = {s.name: s for s in m.stale_names(SYNTHETIC)}
    assert set(found) == {
        "vllm:gpu_cache_usage_perc",
        "vllm_pending_requests_total",
        "vllm:gpu_prefix_cache_hits_total",
        "vllm:gpu_prefix_cache_queries_total",
        "vllm:time_per_output_token_seconds_bucket",
        "vllm:num_requests_swapped",
        "vllm_engine_request_count",
        "vllm:num_preemptions",
        "vllm:time_to_first_token_seconds",
        "vllm:num_request_waiting",
    }
    assert found["vllm:gpu_cache_usage_perc"].use == "vllm:kv_cache_usage_perc"
    assert "#29330" in found["vllm:gpu_cache_usage_perc"].reason
    assert found["vllm_pending_requests_total"].use == "vllm:num_requests_waiting"
    assert "invented" in found["vllm_pending_requests_total"].reason
    assert found["vllm:time_per_output_token_seconds_bucket"].use == "vllm:inter_token_latency_seconds_bucket"
    assert found["vllm:num_preemptions"].use.startswith("vllm:num_preemptions_total")
    assert "counter family" in found["vllm:num_preemptions"].reason
    assert "not a vLLM 0.33.0 metric" in found["vllm:num_request_waiting"].reason


def test_guard_finds_names_but_not_images_env_vars_or_keys():
    text = (
        "image: vllm/vllm-openai:v0.33.0\nenv: VLLM_PORT\nref: registry/vllm:latest\nvllm_version: 0.33.0\n"
        "q: vllm:num_requests_running + vllm_requests_in_flight{a=\"b\"} + vllm_queue_seconds"
    )
    assert m.find_metric_names(text) == {"vllm:num_requests_running", "vllm_requests_in_flight", "vllm_queue_seconds"}


def test_promql_metric_names_skips_labels_functions_and_variables():
    expr = (
        'histogram_quantile(0.95, sum by (le, pod) (rate(vllm:time_to_first_token_seconds_bucket'
        '{model_name="$model_name", le=~"1.*"}[$__rate_interval]))) > 1.5 and on() '
        'absent(kube_pod_status_phase{phase="Running"} offset 5m) or label_replace(up, "a", "$1", "b", "(.*)")'
    )
    assert m.promql_metric_names(expr) == {
        "vllm:time_to_first_token_seconds_bucket", "kube_pod_status_phase", "up"
    }


def test_query_names_are_scraped_series():
    for name in (m.NUM_REQUESTS_WAITING, m.NUM_PREEMPTIONS, m.TTFT_BUCKET, m.ADMISSION_REJECTIONS):
        assert name in m.VLLM_SERIES and m.classify(name) is None
    assert m.VLLM["vllm:iteration_tokens_total"].sample == "vllm:iteration_tokens_total_bucket"
    assert m.queue_depth_query("a/b", "ns") == 'sum(vllm:num_requests_waiting{model_name="a/b", namespace="ns"})'


def test_selector_refuses_unlisted_names():
    with pytest.raises(KeyError, match="not a known series"):
        m.selector("vllm:gpu_cache_usage_perc", {"namespace": "x"})


# --------------------------------------------------------------------------- the table vs vLLM's source

VLLM_SOURCE = Path(os.environ.get("VLLM_SOURCE_DIR", "/tmp/vllm/src/vllm"))


def _registered(path: Path) -> dict[str, str]:
    """{name: kind} of every `self._<kind>_cls(name="vllm:...")` call in a vLLM source file."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            kind = {"_gauge_cls": m.GAUGE, "_counter_cls": m.COUNTER, "_histogram_cls": m.HISTOGRAM}.get(node.func.attr)
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            if kind and isinstance(name, ast.Constant) and str(name.value).startswith("vllm:"):
                out[name.value] = kind
    return out


@pytest.mark.skipif(not (VLLM_SOURCE / "v1/metrics/loggers.py").is_file(),
                    reason=f"vLLM 0.33.0 source not at {VLLM_SOURCE} (set VLLM_SOURCE_DIR to an unpacked wheel's vllm/)")
def test_table_matches_vllm_source():
    version = (VLLM_SOURCE / "_version.py").read_text()
    assert f"'{m.VLLM_VERSION}'" in version
    source = _registered(VLLM_SOURCE / "v1/metrics/loggers.py")
    source["vllm:cache_config_info"] = m.GAUGE  # registered through a variable (log_metrics_info)
    listed = {x.name: x.kind for x in m.VLLM_METRICS if x.source.endswith("loggers.py")}
    assert listed == source
    perf = _registered(VLLM_SOURCE / "v1/metrics/perf.py")
    # prometheus_client strips `_total` from counter names; we list the stripped family.
    assert {n.removesuffix("_total"): k for n, k in perf.items()} == {
        x.name: x.kind for x in m.VLLM_METRICS if x.source.endswith("perf.py")
    }
    tree = ast.parse((VLLM_SOURCE / "v1/metrics/buckets.py").read_text())
    constants = {
        t.target.id: ast.literal_eval(t.value)
        for t in tree.body
        if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name) and t.target.id.endswith("_BUCKETS")
    }
    for family, bounds in m.BUCKETS.items():
        assert tuple(constants[f"{family.upper()}_BUCKETS"]) == bounds, family
