"""components/monitoring: scrape object, reference alerts and the Grafana dashboard.

Everything here is derived, never hand-pasted:

- `dashboard()` / `dashboard_configmap()`: one Grafana dashboard for every
  overlay (template variables `namespace` and `model_name`), shipped as a
  ConfigMap the Grafana sidecar picks up.
- `component_files(figures)`: every file of `components/monitoring/`, exactly,
  with the alerts of the base's reference plan (`compose.generate.alerts`
  builds the rules; each overlay's `patch-alerts.yaml` replaces them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

from compose.core import yamlio
from compose.generate.alerts import (
    ABSENT_MARGIN_SECONDS,
    CONTAINER,
    GENERATED_MARK,
    KV_USAGE_THRESHOLD,
    PREEMPTION_RATIO,
    TTFT_PREFILL_ALLOWANCE_SECONDS,
    AlertFigures,
    alerts,
    duration,
    generated_header,
    number,
    prometheus_rule,
)
from compose.plan import metrics as m

COMPONENT_DIR = "components/monitoring"
INSTANCE_POD_LABEL = "app.kubernetes.io/instance"
DASHBOARD_UID = "vllm-compose"
DASHBOARD_FILE = "vllm-compose-dashboard.json"

# --------------------------------------------------------------------------- dashboard

RATE = "$__rate_interval"
_DASH_NS = "$namespace"
_DASH_MODEL = "$model_name"
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _dvllm(metric: str) -> str:
    return m.model_selector(metric, _DASH_MODEL, _DASH_NS)


def _quantile(q: float, bucket: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({_dvllm(bucket)}[{RATE}])))"


def _p50_p95(bucket: str) -> tuple[tuple[str, str], ...]:
    """Panel targets: the p50 and p95 of a latency histogram, all pods together."""
    return ((_quantile(0.5, bucket), "p50"), (_quantile(0.95, bucket), "p95"))


def _dash_either(metric: str, matchers: dict, wrap: Callable[[str, bool], str]) -> str:
    """A dashboard query over an exporter that reports object labels (both layouts)."""
    return " or ".join(
        wrap(m.exporter_selector(metric, matchers, honor), honor) for honor in (True, False)
    )


_DEPLOYMENTS = m.Re("(.+-)?vllm")


def _replicas_targets() -> list[tuple[str, str]]:
    ns = {"namespace": _DASH_NS}
    return [
        (
            _dash_either(
                "kube_deployment_status_replicas_available", {**ns, "deployment": _DEPLOYMENTS},
                lambda s, h: f"sum({s})",
            ),
            "available replicas",
        ),
        (
            _dash_either(
                "kube_horizontalpodautoscaler_status_desired_replicas",
                {**ns, "horizontalpodautoscaler": m.Re("keda-hpa-(.+-)?vllm")},
                lambda s, h: f"sum({s})",
            ),
            "KEDA desired",
        ),
        (
            _dash_either(
                "kube_horizontalpodautoscaler_spec_max_replicas",
                {**ns, "horizontalpodautoscaler": m.Re("keda-hpa-(.+-)?vllm")},
                lambda s, h: f"sum({s})",
            ),
            "max",
        ),
        (f"count(count by (pod) ({_dvllm(m.NUM_REQUESTS_WAITING)}))", "pods reporting metrics"),
    ]


def _dcgm(metric: str) -> str:
    return _dash_either(
        metric,
        {"namespace": _DASH_NS, "container": CONTAINER},
        lambda s, honor: f"max by ({'pod' if honor else 'exported_pod'}, gpu) ({s})",
    )


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: what it shows (README) and its queries (expr, legend)."""

    title: str
    description: str
    targets: tuple[tuple[str, str], ...]
    unit: str = "short"
    row: str = "vLLM"


def panels() -> list[Panel]:
    """Every panel, in display order."""
    pod = "{{pod}}"
    return [
        Panel(
            "Waiting queue",
            f"Requests waiting to be scheduled ({m.NUM_REQUESTS_WAITING}). The total is the exact KEDA trigger "
            "query; KEDA adds replicas when total / replicas exceeds the overlay's threshold.",
            (
                (m.queue_depth_query(_DASH_MODEL, _DASH_NS), "total (KEDA query)"),
                (f"sum by (pod) ({_dvllm(m.NUM_REQUESTS_WAITING)})", pod),
            ),
        ),
        Panel(
            "Running requests",
            "Requests in the running batch per pod (capped by --max-num-seqs and by KV capacity).",
            ((f"sum by (pod) ({_dvllm(m.NUM_REQUESTS_RUNNING)})", pod),),
        ),
        Panel(
            "KV cache usage",
            f"Fraction of each pod's KV cache in use ({m.KV_CACHE_USAGE}, 0-1). Above {KV_USAGE_THRESHOLD} requests "
            "queue for blocks and get preempted.",
            ((f"max by (pod) ({_dvllm(m.KV_CACHE_USAGE)})", pod),),
            unit="percentunit",
        ),
        Panel(
            "Time to first token",
            f"p50 and p95 TTFT from the {m.TTFT_BUCKET} histogram, all pods together.",
            _p50_p95(m.TTFT_BUCKET),
            unit="s",
        ),
        Panel(
            "Inter-token latency",
            f"p50 and p95 time between output tokens ({m.ITL_BUCKET}).",
            _p50_p95(m.ITL_BUCKET),
            unit="s",
        ),
        Panel(
            "End-to-end latency",
            f"p50 and p95 request latency from arrival to last token ({m.E2E_BUCKET}).",
            _p50_p95(m.E2E_BUCKET),
            unit="s",
        ),
        Panel(
            "Tokens per second",
            "Prompt (prefill) and generated tokens processed per second, all pods.",
            (
                (f"sum(rate({_dvllm(m.PROMPT_TOKENS)}[{RATE}]))", "prompt"),
                (f"sum(rate({_dvllm(m.GENERATION_TOKENS)}[{RATE}]))", "generation"),
            ),
        ),
        Panel(
            "Finished requests",
            "Requests finished per second by reason (stop, length, abort, error, repetition).",
            ((f"sum by (finished_reason) (rate({_dvllm(m.REQUEST_SUCCESS)}[{RATE}]))", "{{finished_reason}}"),),
            unit="reqps",
        ),
        Panel(
            "Replicas vs KEDA desired",
            "Available replicas of the vllm Deployment, what KEDA's HPA wants, its maximum "
            "(kube-state-metrics), and how many pods Prometheus scrapes. Desired above max means demand "
            "exceeds the overlay's replica bound; pods reporting below available means a scrape gap.",
            tuple(_replicas_targets()),
        ),
        Panel(
            "Preemptions",
            f"Requests preempted per second ({m.NUM_PREEMPTIONS}): KV cache overcommitted.",
            ((f"sum(rate({_dvllm(m.NUM_PREEMPTIONS)}[{RATE}]))", "preemptions/s"),),
        ),
        Panel(
            "Admission rejections",
            f"Requests rejected because a pod's queue hit --max-num-queued-reqs ({m.ADMISSION_REJECTIONS}).",
            ((f"sum by (reason) (rate({_dvllm(m.ADMISSION_REJECTIONS)}[{RATE}]))", "{{reason}}"),),
            unit="reqps",
        ),
        Panel(
            "GPU utilization",
            "DCGM_FI_DEV_GPU_UTIL per GPU of the vllm containers (percent). Empty unless NVIDIA's "
            "dcgm-exporter runs with its Kubernetes pod mapping.",
            ((_dcgm("DCGM_FI_DEV_GPU_UTIL"), "{{pod}}{{exported_pod}} GPU {{gpu}}"),),
            unit="percent",
            row="GPU (DCGM exporter)",
        ),
        Panel(
            "GPU memory used",
            "DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_FREE per GPU (MiB); vLLM pre-allocates "
            "--gpu-memory-utilization of it at start, so used is flat by design.",
            (
                (_dcgm("DCGM_FI_DEV_FB_USED"), "used {{pod}}{{exported_pod}} GPU {{gpu}}"),
                (_dcgm("DCGM_FI_DEV_FB_FREE"), "free {{pod}}{{exported_pod}} GPU {{gpu}}"),
            ),
            unit="decmbytes",
            row="GPU (DCGM exporter)",
        ),
    ]


def _template_variables() -> list[dict]:
    def query_var(name: str, label: str, query: str) -> dict:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": _DATASOURCE,
            "query": {"query": query, "refId": f"{name}-var"},
            "definition": query,
            "refresh": 2,
            "sort": 1,
            "includeAll": False,
            "multi": False,
        }

    return [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
        query_var("namespace", "Namespace", f"label_values({m.NUM_REQUESTS_WAITING}, namespace)"),
        query_var(
            "model_name",
            "Model",
            f"label_values({m.selector(m.NUM_REQUESTS_WAITING, {'namespace': _DASH_NS})}, model_name)",
        ),
    ]


PANEL_HEIGHT, PANEL_WIDTH, GRID_WIDTH = 8, 12, 24


def _timeseries(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def _layout() -> list[dict]:
    """Rows in first-seen order, each a full-width row header then panels two per line."""
    rows: dict[str, list[Panel]] = {}
    for panel in panels():
        rows.setdefault(panel.row, []).append(panel)
    out: list[dict] = []
    y = 0
    for title, members in rows.items():
        out.append({"id": len(out) + 1, "type": "row", "title": title, "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        y += 1
        per_line = GRID_WIDTH // PANEL_WIDTH
        for i, panel in enumerate(members):
            out.append(_timeseries(panel, len(out) + 1, (i % per_line) * PANEL_WIDTH, y + (i // per_line) * PANEL_HEIGHT))
        y += math.ceil(len(members) / per_line) * PANEL_HEIGHT
    return out


def dashboard() -> dict:
    """The Grafana dashboard JSON model (one dashboard for every overlay)."""
    return {
        "uid": DASHBOARD_UID,
        "title": "vLLM (vllm-compose)",
        "description": "Generated by compose (compose/publish/monitoring.py); one dashboard for every overlay.",
        "tags": ["vllm", "vllm-compose"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": _template_variables()},
        "annotations": {"list": []},
        "panels": _layout(),
    }


def dashboard_json() -> str:
    """The dashboard as deterministic JSON text (sorted keys)."""
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard (panel targets), in order."""
    return [expr for panel in panels() for expr, _ in panel.targets]


def dashboard_configmap() -> dict:
    """ConfigMap with the Grafana sidecar label; the sidecar loads the JSON into Grafana."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "vllm-dashboard", "labels": {"grafana_dashboard": "1"}},
        "data": {DASHBOARD_FILE: dashboard_json()},
    }


# --------------------------------------------------------------------------- component files


def podmonitor() -> dict:
    """Scrape /metrics on the `http` port of every vLLM pod of the overlay."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "vllm"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
            # The pods' own instance label on every series (app_kubernetes_io_instance): a
            # canary shares its stable overlay's namespace and model name, and this label is
            # how queries and the canary alerts tell the two apart.
            "podTargetLabels": [INSTANCE_POD_LABEL],
            "podMetricsEndpoints": [
                {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
            ],
        },
    }


def _kustomizeconfig() -> dict:
    return {
        "commonLabels": [
            {"kind": "PodMonitor", "group": "monitoring.coreos.com", "path": "spec/selector/matchLabels", "create": True}
        ]
    }


def _kustomization() -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["podmonitor.yaml", "prometheusrule.yaml", "dashboard-configmap.yaml"],
        "configurations": ["kustomizeconfig.yaml"],
    }


_KUSTOMIZATION_DOC = """\
# components/monitoring: Prometheus Operator scrape object, alerts and Grafana dashboard for vLLM.
#
# Adds (all named from the base role name `vllm`, so the overlay's namePrefix applies):
# - PodMonitor `vllm`: scrapes /metrics on port `http` of pods labelled
#   app.kubernetes.io/name=vllm in the overlay's namespace; Prometheus adds the
#   `namespace` and `pod` labels the KEDA query filters on.
# - PrometheusRule `vllm`: the alerts, with the base reference model's thresholds.
# - ConfigMap `vllm-dashboard` (label grafana_dashboard: "1"): one dashboard for every model.
# - kustomizeconfig.yaml: lets the overlay's selector labels reach the PodMonitor's selector.
#
# Ordering contract: kustomize applies components before the overlay's own patches.
# The overlay's patch-alerts.yaml (written by `compose new-model`) therefore replaces
# this PrometheusRule's spec with its own plan's thresholds; without it the alerts
# watch the reference model. This component patches nothing else: it owns no field
# of the Deployment, Service or ScaledObject.
"""


def component_files(figures: AlertFigures | None = None) -> dict[str, str]:
    """Every file of components/monitoring/ (relative path -> exact text)."""
    figures = figures if figures is not None else reference_figures()
    files = {
        "kustomization.yaml": generated_header("kustomization.yaml") + _KUSTOMIZATION_DOC + yamlio.dump(_kustomization()),
        "kustomizeconfig.yaml": generated_header("kustomizeconfig.yaml")
        + "# Kustomize does not know PodMonitor's selector; this lets `labels: includeSelectors: true`\n"
        "# in an overlay add app.kubernetes.io/instance to it, as it does for the Deployment.\n"
        + yamlio.dump(_kustomizeconfig()),
        "podmonitor.yaml": generated_header("podmonitor.yaml")
        + "# Scrapes the overlay's vLLM pods (the overlay's app.kubernetes.io/instance selector label is\n"
        "# added through kustomizeconfig.yaml, so overlays sharing a namespace never scrape each other's\n"
        "# pods and double the KEDA sum) every 15 s, KEDA's polling interval in the base. Each series\n"
        "# carries the pod's app.kubernetes.io/instance as app_kubernetes_io_instance (podTargetLabels).\n"
        + yamlio.dump(podmonitor()),
        "prometheusrule.yaml": generated_header("prometheusrule.yaml")
        + f"# Thresholds of the base's reference plan ({figures.served_model_name} in namespace "
        f"{figures.namespace}).\n# Overlays replace the spec with patch-alerts.yaml.\n"
        + yamlio.dump(prometheus_rule(figures)),
        "dashboard-configmap.yaml": generated_header("dashboard-configmap.yaml")
        + yamlio.dump(dashboard_configmap()),
        "README.md": readme(figures),
    }
    return dict(sorted(files.items()))


def reference_figures() -> AlertFigures:
    """Figures of the base's reference model: the one place the component's defaults come from."""
    from compose.generate import overlay

    ref = overlay.BASE_REFERENCE
    plan, _ = overlay.make_plan(ref)
    _, max_replicas, _ = overlay.replica_bounds(ref, plan)
    return AlertFigures.from_plan(plan, namespace=ref.namespace, name_prefix="", max_replicas=max_replicas)


# --------------------------------------------------------------------------- README


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def readme(figures: AlertFigures) -> str:
    """components/monitoring/README.md, with the alert and panel tables generated."""
    alert_rows = [
        (f"`{a.name}`", a.severity, duration(a.for_seconds) if a.for_seconds else "immediately", a.summary, a.description)
        for a in alerts(figures)
    ]
    runbook = "\n".join(f"- **{a.name}**: {a.runbook}" for a in alerts(figures))
    panel_rows = [(p.row, p.title, p.description) for p in panels()]
    return f"""<!-- {GENERATED_MARK.lstrip('# ')} (compose/publish/monitoring.py, README.md); do not edit, run `compose regen --all`. -->
# components/monitoring

Prometheus Operator scrape object, alerts and a Grafana dashboard for the vLLM server.
Every metric name comes from `compose/plan/metrics.py` (vLLM 0.33.0, read from the release's
`vllm/v1/metrics/loggers.py`); every alert threshold comes from the planner's figures.

## When to use it

In every overlay that runs on a cluster with the Prometheus Operator (kube-prometheus-stack)
and KEDA. `compose new-model` includes it by default (`--no-monitoring` leaves it out) and
writes the overlay's `patch-alerts.yaml`. Without a PodMonitor, the KEDA trigger query has
no series: with `ignoreNullValues: "false"` KEDA errors and falls back, otherwise it would
read 0 and never scale.

## What it changes

| file | object | what |
|---|---|---|
| `podmonitor.yaml` | PodMonitor `vllm` | scrapes `/metrics` on port `http` every 15 s from pods labelled `app.kubernetes.io/name: vllm` (plus the overlay's `app.kubernetes.io/instance`, through `kustomizeconfig.yaml`); copies the pod's `app.kubernetes.io/instance` onto every series as `{m.INSTANCE_LABEL}` (`podTargetLabels`), which tells a canary's series from its stable overlay's |
| `prometheusrule.yaml` | PrometheusRule `vllm` | the alerts below, with the reference plan's thresholds ({figures.served_model_name} in `{figures.namespace}`); each overlay's `patch-alerts.yaml` replaces its spec |
| `dashboard-configmap.yaml` | ConfigMap `vllm-dashboard` | the Grafana dashboard, label `grafana_dashboard: "1"` for the Grafana sidecar |
| `kustomizeconfig.yaml` | (kustomize config) | adds the overlay's selector labels to the PodMonitor selector |

Nothing of the Deployment, Service or ScaledObject is touched. Kustomize applies components
before the overlay's patches, so the overlay's `patch-alerts.yaml` wins.

Cluster assumptions:
- Prometheus selects PodMonitors and PrometheusRules in the model's namespace (for
  kube-prometheus-stack: `podMonitorSelectorNilUsesHelmValues: false`,
  `ruleSelectorNilUsesHelmValues: false`, or add your release label in the overlay).
- kube-state-metrics and KEDA's operator metrics are scraped. Queries on them match the
  object's namespace both as `namespace` (honorLabels: true) and as `exported_namespace`
  (the default), so either scrape setup works.
- The Grafana sidecar watches ConfigMaps labelled `grafana_dashboard: "1"` in the model
  namespaces (`sidecar.dashboards.searchNamespace: ALL`). Every overlay ships the same
  dashboard under the same file name and uid (`{DASHBOARD_UID}`), so Grafana shows one.
- The GPU row needs NVIDIA's dcgm-exporter with its Kubernetes pod mapping; otherwise it is empty.
- A scrape config of your own (instead of this PodMonitor) must keep the pod label
  `app.kubernetes.io/instance` as `{m.INSTANCE_LABEL}` while a canary runs: the stable and canary
  overlays' KEDA queries and alerts select their own pods by it (`compose canary`).

## Alerts

{_table(("alert", "severity", "for", "summary", "description (reference thresholds)"), alert_rows)}

How the thresholds are derived (`compose.generate.alerts.AlertFigures`):
- Queue backlog: KEDA's `AverageValue` target is `keda_queue_threshold` per replica, so at
  `maxReplicaCount` the target is exceeded when the summed queue exceeds threshold x max.
- Metrics absent: waits the plan's `startup_budget_seconds` plus {ABSENT_MARGIN_SECONDS} s, because vLLM
  serves no `/metrics` while it loads.
- TTFT SLO: `keda_queue_threshold / replica_throughput_rps + {number(TTFT_PREFILL_ALLOWANCE_SECONDS)} s` (the wait of the
  last queued request at the KEDA target, plus prefill) unless the overlay sets one.
- KEDA fallback: KEDA falls back after more than `fallback.failureThreshold` consecutive failed
  polls; the alert needs that many + 1 errors, sustained for as many polling intervals and at
  least the plan's `startup_budget_seconds` (a first deploy fails the query until a pod has
  loaded; `fallback.behavior: currentReplicasIfHigher` then holds max(current, minimum)).
- Fixed: KV usage > {KV_USAGE_THRESHOLD}; preemptions > {PREEMPTION_RATIO} per finished request.

### Runbook

{runbook}

## Dashboard panels

Template variables: `namespace` and `model_name` (from `vllm:num_requests_waiting`), so one
dashboard serves every overlay.

{_table(("row", "panel", "shows"), panel_rows)}

## How to verify

```sh
kubectl kustomize overlays/<name> | grep -A3 'kind: PodMonitor'
kubectl -n <namespace> get podmonitor,prometheusrule,configmap -l app.kubernetes.io/instance=<name>
# In Prometheus: Status > Targets lists podMonitor/<namespace>/<name>-vllm, and this returns one series:
#   sum(vllm:num_requests_waiting{{model_name="<served model>", namespace="<namespace>"}})
```

The test suite proves the queries against a real Prometheus: `pytest -m prometheus` starts
fake vLLM `/metrics` servers and a Prometheus on loopback, evaluates the KEDA query of every
rendered overlay, every alert and every dashboard query, and runs `promtool check rules` and
`promtool test rules` (alerts firing and not firing) on every rendered PrometheusRule.
"""
