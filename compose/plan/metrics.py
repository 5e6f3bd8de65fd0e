"""Every metric name our manifests, alerts and dashboard may use, in one place.

vLLM names are pinned to **vLLM 0.33.0** and were read from the release's own
source: `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger.__init__`, which
registers every engine metric with labels `model_name` and `engine`), bucket
boundaries from `vllm/v1/metrics/buckets.py`, the speculative-decoding counters
from `vllm/v1/spec_decode/metrics.py` and the MFU counters from
`vllm/v1/metrics/perf.py`, all in the `vllm-0.33.0` wheel
(`vllm/_version.py`: `0.33.0`, commit `g4ba787ec9`).

vLLM registers its metrics with `prometheus_client`, so what Prometheus scrapes
(and what a query must name) is the *series* name: a counter `vllm:x` is scraped
as `vllm:x_total` (+ `vllm:x_created`), a histogram as `_bucket`, `_sum`,
`_count` (+ `_created`). `Metric.series` lists them; `find_metric_names` and
`stale_names` police text against them.

The other exporters whose names we use (kube-state-metrics, KEDA, NVIDIA DCGM
exporter) are listed below with their sources. `queue_depth_query` is the single
builder of the KEDA trigger query.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping

VLLM_VERSION = "0.33.0"
_LOGGERS = f"vllm {VLLM_VERSION}: vllm/v1/metrics/loggers.py"
_SPEC = f"vllm {VLLM_VERSION}: vllm/v1/spec_decode/metrics.py"
_PERF = f"vllm {VLLM_VERSION}: vllm/v1/metrics/perf.py"

GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"

# Labels of every per-engine vLLM metric (loggers.py: `labelnames = ["model_name", "engine"]`).
ENGINE_LABELS = ("model_name", "engine")

# ---------------------------------------------------------------------------
# Histogram buckets, vllm/v1/metrics/buckets.py (0.33.0)
# ---------------------------------------------------------------------------
BUCKETS: dict[str, tuple[float, ...]] = {
    "request_latency": (
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
        50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
    ),
    "time_to_first_token": (
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
        2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    ),
    "inter_token_latency": (
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
        2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    ),
    "iteration_tokens": (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    "request_params_n": (1, 2, 5, 10, 20),
    "request_num_preemptions": (1, 2, 3, 4, 5, 10, 20),
    "kv_cache_residency": (
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20,
        30, 60, 120, 300, 600, 1200, 1800,
    ),
}


def request_tokens_buckets(max_model_len: int) -> tuple[int, ...]:
    """The `request_tokens` family: a 1-2-5 series capped at max_model_len (buckets.py)."""
    out: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_model_len:
                return tuple(out)
            out.append(value)
        exponent += 1


def histogram_buckets(family: str, max_model_len: int = 8192) -> tuple[float, ...]:
    """Default upper bounds (without +Inf) of a histogram bucket family."""
    if family == "request_tokens":
        return request_tokens_buckets(max_model_len)
    return BUCKETS[family]


# ---------------------------------------------------------------------------
# vLLM 0.33.0 metrics
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric family as registered with prometheus_client."""

    name: str  # as passed to prometheus_client (counters without `_total`)
    kind: str  # gauge | counter | histogram
    help: str
    labels: tuple[str, ...] = ENGINE_LABELS
    buckets: str | None = None  # histogram bucket family (BUCKETS / request_tokens)
    when: str = "always"  # when vLLM registers it
    source: str = _LOGGERS

    @property
    def sample(self) -> str:
        """The series name a query uses: the gauge, `_total`, or `_bucket`."""
        if self.kind == COUNTER:
            return f"{self.name}_total"
        if self.kind == HISTOGRAM:
            return f"{self.name}_bucket"
        return self.name

    @property
    def series(self) -> tuple[str, ...]:
        """Every series name prometheus_client exposes for this family."""
        if self.kind == COUNTER:
            return (f"{self.name}_total", f"{self.name}_created")
        if self.kind == HISTOGRAM:
            return tuple(f"{self.name}_{s}" for s in ("bucket", "count", "sum", "created"))
        return (self.name,)


def _m(name, kind, help, labels=ENGINE_LABELS, buckets=None, when="always", source=_LOGGERS):
    return Metric(name, kind, help, tuple(labels), buckets, when, source)


_E = ENGINE_LABELS
VLLM_METRICS: tuple[Metric, ...] = (
    # Scheduler state
    _m("vllm:num_requests_running", GAUGE, "Number of requests in model execution batches."),
    _m("vllm:num_requests_waiting", GAUGE, "Number of requests waiting to be processed."),
    _m(
        "vllm:num_requests_waiting_by_reason", GAUGE,
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for "
        "scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, "
        "KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
        _E + ("reason",),
    ),
    _m(
        "vllm:num_requests_kv_fetch_by_stage", GAUGE,
        "Number of waiting requests by async KV load stage.", _E + ("stage",),
        when="KV-transfer consumer",
    ),
    _m(
        "vllm:engine_sleep_state", GAUGE,
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is "
        "awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        _E + ("sleep_state",),
    ),
    _m("vllm:kv_cache_usage_perc", GAUGE, "KV-cache usage. 1 means 100 percent usage."),
    _m(
        "vllm:cache_config_info", GAUGE, "Information of the LLMEngine CacheConfig",
        # labels: every CacheConfig field plus `engine`; no model_name (log_metrics_info)
        ("engine", "block_size", "num_gpu_blocks", "kv_cache_size_tokens", "cache_dtype"),
    ),
    _m(
        "vllm:lora_requests_info", GAUGE, "Running stats on lora requests.",
        ("max_lora", "waiting_lora_adapters", "running_lora_adapters"), when="LoRA enabled",
    ),
    # Counters
    _m(
        "vllm:corrupted_requests", COUNTER,
        "Corrupted requests, in terms of total number of requests with NaNs in logits.",
        when="VLLM_COMPUTE_NANS_IN_LOGITS=1",
    ),
    _m(
        "vllm:watermark_requests", COUNTER,
        "Finished requests by watermark status (only with watermark_config).",
        _E + ("status",), when="watermark_config",
    ),
    _m("vllm:prefix_cache_queries", COUNTER, "Prefix cache queries, in terms of number of queried tokens."),
    _m("vllm:prefix_cache_hits", COUNTER, "Prefix cache hits, in terms of number of cached tokens."),
    _m(
        "vllm:external_prefix_cache_queries", COUNTER,
        "External prefix cache queries from KV connector cross-instance cache sharing, "
        "in terms of number of queried tokens.",
    ),
    _m(
        "vllm:external_prefix_cache_hits", COUNTER,
        "External prefix cache hits from KV connector cross-instance cache sharing, "
        "in terms of number of cached tokens.",
    ),
    _m("vllm:mm_cache_queries", COUNTER, "Multi-modal cache queries, in terms of number of queried items."),
    _m("vllm:mm_cache_hits", COUNTER, "Multi-modal cache hits, in terms of number of cached items."),
    _m("vllm:num_preemptions", COUNTER, "Cumulative number of preemption from the engine."),
    _m("vllm:prompt_tokens", COUNTER, "Number of prefill tokens processed."),
    _m("vllm:prompt_tokens_by_source", COUNTER, "Number of prompt tokens by source.", _E + ("source",)),
    _m("vllm:prompt_tokens_cached", COUNTER, "Number of cached prompt tokens (local + external)."),
    _m(
        "vllm:prompt_tokens_cached_by_source", COUNTER,
        "Prefix-cache hit tokens by the cache tier that supplied them.", _E + ("source",),
    ),
    _m("vllm:generation_tokens", COUNTER, "Number of generation tokens processed."),
    _m(
        "vllm:request_success", COUNTER, "Count of successfully processed requests.",
        _E + ("finished_reason",),
    ),
    _m(
        "vllm:admission_rejections", COUNTER,
        "Number of admission attempts rejected by a queue limit, by reason.",
        ("model_name", "reason"),
    ),
    # Histograms of counts
    _m("vllm:request_prompt_tokens", HISTOGRAM, "Number of prefill tokens processed.", buckets="request_tokens"),
    _m(
        "vllm:request_generation_tokens", HISTOGRAM, "Number of generation tokens processed.",
        buckets="request_tokens",
    ),
    # A histogram despite the `_total` suffix.
    _m(
        "vllm:iteration_tokens_total", HISTOGRAM, "Histogram of number of tokens per engine_step.",
        buckets="iteration_tokens",
    ),
    _m(
        "vllm:request_max_num_generation_tokens", HISTOGRAM,
        "Histogram of maximum number of requested generation tokens.", buckets="request_tokens",
    ),
    _m("vllm:request_params_n", HISTOGRAM, "Histogram of the n request parameter.", buckets="request_params_n"),
    _m(
        "vllm:request_params_max_tokens", HISTOGRAM, "Histogram of the max_tokens request parameter.",
        buckets="request_tokens",
    ),
    # Histograms of timing intervals
    _m(
        "vllm:time_to_first_token_seconds", HISTOGRAM, "Histogram of time to first token in seconds.",
        buckets="time_to_first_token",
    ),
    _m(
        "vllm:inter_token_latency_seconds", HISTOGRAM, "Histogram of inter-token latency in seconds.",
        buckets="inter_token_latency",
    ),
    _m(
        "vllm:request_time_per_output_token_seconds", HISTOGRAM,
        "Histogram of time_per_output_token_seconds per request.", buckets="inter_token_latency",
    ),
    _m(
        "vllm:e2e_request_latency_seconds", HISTOGRAM, "Histogram of e2e request latency in seconds.",
        buckets="request_latency",
    ),
    _m(
        "vllm:request_queue_time_seconds", HISTOGRAM,
        "Histogram of time spent in WAITING phase for request.", buckets="request_latency",
    ),
    _m(
        "vllm:request_inference_time_seconds", HISTOGRAM,
        "Histogram of time spent in RUNNING phase for request.", buckets="request_latency",
    ),
    _m(
        "vllm:request_prefill_time_seconds", HISTOGRAM,
        "Histogram of time spent in PREFILL phase for request.", buckets="request_latency",
    ),
    _m(
        "vllm:request_decode_time_seconds", HISTOGRAM,
        "Histogram of time spent in DECODE phase for request.", buckets="request_latency",
    ),
    _m(
        "vllm:request_num_preemptions", HISTOGRAM,
        "Histogram of the number of times a request was preempted.", buckets="request_num_preemptions",
    ),
    _m(
        "vllm:request_prefill_kv_computed_tokens", HISTOGRAM,
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        buckets="request_tokens",
    ),
    # KV-cache residency (only with --kv-cache-metrics)
    *(
        _m(name, HISTOGRAM, doc, buckets="kv_cache_residency", when="--kv-cache-metrics")
        for name, doc in (
            ("vllm:kv_block_lifetime_seconds",
             "Histogram of KV cache block lifetime from allocation to eviction."),
            ("vllm:kv_block_idle_before_evict_seconds",
             "Histogram of idle time before KV cache block eviction."),
            ("vllm:kv_block_reuse_gap_seconds",
             "Histogram of time gaps between consecutive KV cache block accesses."),
        )
    ),
    # Speculative decoding
    *(
        _m(name, COUNTER, doc, when="speculative decoding", source=_SPEC)
        for name, doc in (
            ("vllm:spec_decode_num_drafts", "Number of spec decoding drafts."),
            ("vllm:spec_decode_num_draft_tokens", "Number of draft tokens."),
            ("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens."),
        )
    ),
    _m(
        "vllm:spec_decode_num_accepted_tokens_per_pos", COUNTER, "Accepted tokens per draft position.",
        _E + ("position",), when="speculative decoding", source=_SPEC,
    ),
    # Model FLOPs utilisation (prometheus_client strips the `_total` the code passes)
    *(
        _m(name, COUNTER, doc, when="--enable-mfu-metrics", source=_PERF)
        for name, doc in (
            ("vllm:estimated_flops_per_gpu", "Estimated number of floating point operations per GPU."),
            ("vllm:estimated_read_bytes_per_gpu", "Estimated number of bytes read from memory per GPU."),
            ("vllm:estimated_write_bytes_per_gpu", "Estimated number of bytes written to memory per GPU."),
        )
    ),
)

VLLM: dict[str, Metric] = {m.name: m for m in VLLM_METRICS}

# Every series name vLLM 0.33.0 can expose.
VLLM_SERIES: frozenset[str] = frozenset(s for m in VLLM_METRICS for s in m.series)

# The names our queries use, resolved through the table (a typo fails at import).
NUM_REQUESTS_WAITING = VLLM["vllm:num_requests_waiting"].sample
NUM_REQUESTS_RUNNING = VLLM["vllm:num_requests_running"].sample
KV_CACHE_USAGE = VLLM["vllm:kv_cache_usage_perc"].sample
NUM_PREEMPTIONS = VLLM["vllm:num_preemptions"].sample
REQUEST_SUCCESS = VLLM["vllm:request_success"].sample
PROMPT_TOKENS = VLLM["vllm:prompt_tokens"].sample
GENERATION_TOKENS = VLLM["vllm:generation_tokens"].sample
ADMISSION_REJECTIONS = VLLM["vllm:admission_rejections"].sample
TTFT_BUCKET = VLLM["vllm:time_to_first_token_seconds"].sample
ITL_BUCKET = VLLM["vllm:inter_token_latency_seconds"].sample
TPOT_BUCKET = VLLM["vllm:request_time_per_output_token_seconds"].sample
E2E_BUCKET = VLLM["vllm:e2e_request_latency_seconds"].sample

# ---------------------------------------------------------------------------
# Names that must not appear: removed in or before 0.33.0, or never existed
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Retired:
    """A vLLM metric family that 0.33.0 does not emit, and what to use instead."""

    name: str
    replacement: str
    why: str


_PR29330 = "deprecated in 0.9 (vllm-project/vllm#18354), removed by vllm-project/vllm#29330"
_V0 = "V0-engine metric, hidden by vllm-project/vllm#15458; the V1 engine never emits it"
RETIRED: tuple[Retired, ...] = (
    Retired("vllm:gpu_cache_usage_perc", KV_CACHE_USAGE, _PR29330),
    Retired("vllm:gpu_prefix_cache_queries", VLLM["vllm:prefix_cache_queries"].sample, _PR29330),
    Retired("vllm:gpu_prefix_cache_hits", VLLM["vllm:prefix_cache_hits"].sample, _PR29330),
    Retired(
        "vllm:time_per_output_token_seconds", ITL_BUCKET,
        "deprecated in 0.11, hidden by vllm-project/vllm#29330; absent from 0.33.0",
    ),
    Retired("vllm:num_requests_swapped", NUM_REQUESTS_WAITING, _V0),
    Retired("vllm:cpu_cache_usage_perc", KV_CACHE_USAGE, _V0),
    Retired("vllm:cpu_prefix_cache_hit_rate", VLLM["vllm:prefix_cache_hits"].sample, _V0),
    Retired("vllm:gpu_prefix_cache_hit_rate", VLLM["vllm:prefix_cache_hits"].sample, _V0),
    Retired("vllm:time_in_queue_requests", VLLM["vllm:request_queue_time_seconds"].sample, _V0),
    Retired("vllm:model_forward_time_milliseconds", VLLM["vllm:request_inference_time_seconds"].sample, _V0),
    Retired("vllm:model_execute_time_milliseconds", VLLM["vllm:request_inference_time_seconds"].sample, _V0),
    Retired(
        "vllm:avg_prompt_throughput_toks_per_s", PROMPT_TOKENS,
        "V0 log-derived gauge; absent from 0.33.0 (use rate() of the counter)",
    ),
    Retired(
        "vllm:avg_generation_throughput_toks_per_s", GENERATION_TOKENS,
        "V0 log-derived gauge; absent from 0.33.0 (use rate() of the counter)",
    ),
    # Invented names seen in third-party write-ups; vLLM never had them.
    Retired(
        "vllm_pending_requests_total", NUM_REQUESTS_WAITING,
        "invented: not in any vLLM release (seen in a third-party KEDA write-up)",
    ),
    Retired(
        "vllm_engine_request_count", NUM_REQUESTS_RUNNING,
        "invented: not in any vLLM release (seen in a tutorial page)",
    ),
)
RETIRED_BY_NAME: dict[str, Retired] = {r.name: r for r in RETIRED}

# ---------------------------------------------------------------------------
# Other exporters
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ExternalMetric:
    """A series scraped from another exporter, with where its name comes from."""

    name: str  # series name as scraped
    kind: str
    help: str
    labels: tuple[str, ...]
    source: str


_KSM = "kubernetes/kube-state-metrics docs/metrics/workload/{}-metrics.md"
KUBE_STATE_METRICS: tuple[ExternalMetric, ...] = (
    ExternalMetric(
        "kube_pod_status_phase", GAUGE, "The pods current phase",
        ("namespace", "pod", "phase", "uid"), _KSM.format("pod"),
    ),
    ExternalMetric(
        "kube_pod_container_status_restarts_total", COUNTER,
        "The number of container restarts per container",
        ("namespace", "pod", "container", "uid"), _KSM.format("pod"),
    ),
    ExternalMetric(
        "kube_pod_container_status_last_terminated_reason", GAUGE,
        "Describes the last reason the container was in terminated state",
        ("namespace", "pod", "container", "reason", "uid"), _KSM.format("pod"),
    ),
    ExternalMetric(
        "kube_deployment_spec_replicas", GAUGE, "Number of desired pods for a deployment.",
        ("namespace", "deployment"), _KSM.format("deployment"),
    ),
    ExternalMetric(
        "kube_deployment_status_replicas_available", GAUGE,
        "The number of available replicas per deployment.",
        ("namespace", "deployment"), _KSM.format("deployment"),
    ),
    ExternalMetric(
        "kube_horizontalpodautoscaler_status_desired_replicas", GAUGE,
        "Desired number of replicas of pods managed by this autoscaler.",
        ("namespace", "horizontalpodautoscaler"), _KSM.format("horizontalpodautoscaler"),
    ),
    ExternalMetric(
        "kube_horizontalpodautoscaler_spec_max_replicas", GAUGE,
        "Upper limit for the number of pods that can be set by the autoscaler.",
        ("namespace", "horizontalpodautoscaler"), _KSM.format("horizontalpodautoscaler"),
    ),
)

_KEDA_SRC = "kedacore/keda pkg/metricscollector/prommetrics.go (v2.x, commit d642098)"
_KEDA_LABELS = ("namespace", "metric", "scaledObject", "scaler", "triggerIndex", "type")
KEDA_METRICS: tuple[ExternalMetric, ...] = (
    ExternalMetric(
        "keda_scaler_detail_errors_total", COUNTER,
        "The total number of errors encountered for each scaler.", _KEDA_LABELS, _KEDA_SRC,
    ),
    ExternalMetric(
        "keda_scaler_metrics_value", GAUGE,
        "The current value for each scaler's metric that would be used by the HPA in "
        "computing the target average.", _KEDA_LABELS, _KEDA_SRC,
    ),
    ExternalMetric(
        "keda_scaler_active", GAUGE, "Indicates whether a scaler is active (1), or not (0).",
        _KEDA_LABELS, _KEDA_SRC,
    ),
)

_DCGM_SRC = "NVIDIA/dcgm-exporter etc/default-counters.csv"
# dcgm-exporter's Kubernetes pod mapping adds `namespace`, `pod`, `container` to each GPU's series
# (NVIDIA/dcgm-exporter internal/pkg/transformation/const.go: podAttribute, namespaceAttribute,
# containerAttribute; the pre-3.x names pod_name/pod_namespace only with --use-old-namespace).
_DCGM_LABELS = ("gpu", "UUID", "modelName", "Hostname", "namespace", "pod", "container")
DCGM_METRICS: tuple[ExternalMetric, ...] = (
    ExternalMetric("DCGM_FI_DEV_GPU_UTIL", GAUGE, "GPU utilization (in %).", _DCGM_LABELS, _DCGM_SRC),
    ExternalMetric("DCGM_FI_DEV_FB_USED", GAUGE, "Framebuffer memory used (in MiB).", _DCGM_LABELS, _DCGM_SRC),
    ExternalMetric("DCGM_FI_DEV_FB_FREE", GAUGE, "Framebuffer memory free (in MiB).", _DCGM_LABELS, _DCGM_SRC),
)

# vLLM's OpenAI server also instruments its HTTP routes: vllm 0.33.0
# vllm/entrypoints/serve/instrumentator/metrics.py calls prometheus-fastapi-instrumentator's
# `Instrumentator(excluded_handlers=["/metrics", "/health", ...]).add()`, whose default
# metrics (`metrics.default()`, instrumentator 7.1.0) include this counter, with the status
# grouped as "2xx" ... "5xx" (`should_group_status_codes=True`). It is the only per-pod
# count of failed API requests (the engine's request_success counts finished requests).
_PFI_SRC = ("vllm 0.33.0 vllm/entrypoints/serve/instrumentator/metrics.py + "
            "prometheus-fastapi-instrumentator 7.1.0 metrics.py default()")
VLLM_HTTP_METRICS: tuple[ExternalMetric, ...] = (
    ExternalMetric(
        "http_requests_total", COUNTER, "Total number of requests by method, status and handler.",
        ("handler", "method", "status"), _PFI_SRC,
    ),
)
HTTP_REQUESTS = "http_requests_total"

EXTERNAL: dict[str, ExternalMetric] = {
    m.name: m for m in (*KUBE_STATE_METRICS, *KEDA_METRICS, *DCGM_METRICS, *VLLM_HTTP_METRICS)
}

# Every series name a query we ship may reference.
KNOWN_SERIES: frozenset[str] = VLLM_SERIES | frozenset(EXTERNAL)

# ---------------------------------------------------------------------------
# Selectors and the KEDA query
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Re:
    """A regular-expression label matcher (`=~`)."""

    pattern: str


# Labels a Prometheus Operator scrape sets on every target. An exporter that
# reports one of them itself (kube-state-metrics, KEDA, dcgm-exporter report the
# *object's* namespace/pod) keeps it only when scraped with honorLabels: true;
# otherwise Prometheus renames it to exported_<label>.
TARGET_LABELS = ("namespace", "pod", "container")


def _quote(value: str) -> str:
    """A PromQL double-quoted string literal (JSON escaping is valid PromQL)."""
    return json.dumps(value)


def selector(metric: str, matchers: Mapping[str, str | Re] | None = None) -> str:
    """`metric{a="x", b=~"y"}` with matchers in the given order; names are checked."""
    if metric not in KNOWN_SERIES:
        raise KeyError(f"{metric} is not a known series; add it to compose/plan/metrics.py with a source")
    if not matchers:
        return metric
    parts = []
    for label, value in matchers.items():
        op, text = ("=~", value.pattern) if isinstance(value, Re) else ("=", value)
        parts.append(f"{label}{op}{_quote(text)}")
    return f"{metric}{{{', '.join(parts)}}}"


def exporter_selector(metric: str, matchers: Mapping[str, str | Re], honor_labels: bool) -> str:
    """Selector for an exporter that reports object labels (see TARGET_LABELS).

    With honor_labels=False the object's `namespace`/`pod`/`container` are
    matched as `exported_namespace`/... , which is what a default (not
    honoring) ServiceMonitor/PodMonitor produces.
    """
    if honor_labels:
        return selector(metric, matchers)
    renamed = {(f"exported_{k}" if k in TARGET_LABELS else k): v for k, v in matchers.items()}
    return selector(metric, renamed)


# The pod label `app.kubernetes.io/instance` (the overlay's name) as a series label: the
# monitoring component's PodMonitor lists it in `podTargetLabels`, and the Prometheus Operator
# names the target label with sanitizeLabelName (non-alphanumerics -> `_`, promcfg.go).
INSTANCE_LABEL = "app_kubernetes_io_instance"


def model_selector(metric: str, served_model_name: str, namespace: str, instance: str | None = None) -> str:
    """A vLLM series of one model in one namespace (labels: vLLM's + the PodMonitor's).

    `instance` narrows it to one overlay's pods: a canary serves the same model name in
    the same namespace as its stable overlay, and only the pods' own instance label
    tells them apart.
    """
    matchers: dict[str, str | Re] = {"model_name": served_model_name, "namespace": namespace}
    if instance is not None:
        matchers[INSTANCE_LABEL] = instance
    return selector(metric, matchers)


def queue_depth_query(served_model_name: str, namespace: str, instance: str | None = None) -> str:
    """The KEDA trigger query: the model's total waiting queue, one series.

    `sum()` because KEDA's Prometheus scaler fails on multi-series results and
    AverageValue divides the sum by the replica count; `model_name` because that
    is vLLM's label (`model` matches nothing and KEDA reads the empty result as
    0); `namespace` because the PodMonitor adds it and a model may be served in
    several namespaces; `instance` (only while a canary shares the namespace) so
    the stable and the canary each scale on their own queue.
    """
    return f"sum({model_selector(NUM_REQUESTS_WAITING, served_model_name, namespace, instance)})"


# ---------------------------------------------------------------------------
# Finding metric names in text
# ---------------------------------------------------------------------------
# `vllm:` names (colon form), not preceded by a path/word character, so an
# image such as `example/vllm:v1` is not read as a metric.
_VLLM_NAME = re.compile(r"(?<![\w/.\-:])vllm:[A-Za-z_][A-Za-z0-9_:]*")
# The lowercase `vllm_` form only invented names use. It is also an ordinary
# identifier prefix (a `vllm_version:` key), so it counts as a metric name only
# when it is a known invented name, ends like a metric, or is followed by a
# selector or range.
_VLLM_UNDERSCORE = re.compile(r"(?<![\w/.\-:])(vllm_[a-z0-9_]+)(\s*[{\[])?")
_METRIC_ENDINGS = ("_total", "_count", "_sum", "_bucket", "_created", "_seconds", "_perc", "_info", "_bytes", "_tokens")
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum")


def find_metric_names(text: str) -> set[str]:
    """Every vLLM metric name in `text`: `vllm:...`, and metric-like lowercase `vllm_...`."""
    names = set(_VLLM_NAME.findall(text))
    for name, selector in _VLLM_UNDERSCORE.findall(text):
        if selector or name in RETIRED_BY_NAME or name.endswith(_METRIC_ENDINGS):
            names.add(name)
    return names


@dataclass(frozen=True, order=True)
class StaleName:
    """A metric name that the pinned vLLM does not expose, with the fix."""

    name: str
    reason: str
    use: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}; use {self.use}"


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in VLLM:
            return name[: -len(suffix)]
    return name


def _retired(name: str) -> Retired | None:
    if name in RETIRED_BY_NAME:
        return RETIRED_BY_NAME[name]
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in RETIRED_BY_NAME:
            return RETIRED_BY_NAME[name[: -len(suffix)]]
    return None


def classify(name: str) -> StaleName | None:
    """None if `name` is a vLLM 0.33.0 series; otherwise why it is wrong and what to use."""
    if name in VLLM_SERIES:
        return None
    retired = _retired(name)
    if retired is not None:
        return StaleName(name, f"not emitted by vLLM {VLLM_VERSION} ({retired.why})", retired.replacement)
    family = VLLM.get(_family(name))
    if family is not None:
        return StaleName(
            name,
            f"a {family.kind} family name, not a scraped series",
            " / ".join(family.series),
        )
    return StaleName(name, f"not a vLLM {VLLM_VERSION} metric (compose/plan/metrics.py)", "a listed name")


def stale_names(text: str) -> list[StaleName]:
    """Every vLLM metric name in `text` that is not a 0.33.0 series, sorted."""
    found = (classify(n) for n in find_metric_names(text))
    return sorted(s for s in found if s is not None)


# ---------------------------------------------------------------------------
# Metric names referenced by a PromQL expression
# ---------------------------------------------------------------------------
_PROMQL_WORDS = frozenset(
    """
    sum avg min max count count_values stddev stdvar topk bottomk quantile group
    and or unless atan2 bool offset by without on ignoring group_left group_right
    inf nan
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_quantile
    histogram_count histogram_sum histogram_fraction holt_winters hour idelta increase
    irate label_join label_replace ln log2 log10 minute month predict_linear rate resets
    round scalar sgn sort sort_desc sqrt time timestamp vector year avg_over_time
    min_over_time max_over_time sum_over_time count_over_time quantile_over_time
    stddev_over_time stdvar_over_time last_over_time present_over_time acos acosh asin
    asinh atan atanh cos cosh sin sinh tan tanh deg rad pi
    """.split()
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (also Grafana-templated ones).

    Strips strings, label matchers, ranges, grouping clauses, numbers/durations
    and PromQL keywords/functions; what is left are metric names.
    """
    text = _STRINGS.sub(" ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)
    return {t for t in _IDENT.findall(text) if t not in _PROMQL_WORDS}
