"""Alert rules that judge a canary against its stable overlay (issue 14).

A canary (`compose canary start`) serves the same model name in the same namespace as
its stable overlay; only the pods' own `app.kubernetes.io/instance` label tells them
apart (`<overlay>` and `<overlay>-canary`). The monitoring component's PodMonitor copies
that label onto every series (`podTargetLabels`), as `app_kubernetes_io_instance`.

The rules live in the stable overlay's PrometheusRule (group `vllm-canary`) while its
canary runs: `compose canary set-weight` rewrites them with the new share, `promote`
and `abort` remove them. Each compares the canary with the stable pods over the same
window, and waits for enough canary requests for the comparison to mean something:

| alert | fires when (over 10 min, for 10 min) |
|---|---|
| VLLMCanaryErrorRatioAboveStable | canary 5xx ratio > 2 x stable's + 1 point |
| VLLMCanaryTTFTAboveStable | canary p95 time to first token > 1.2 x stable's |
| VLLMCanaryTPOTAboveStable | canary p95 time per output token > 1.2 x stable's |
| VLLMCanaryQueueAboveStable | waiting requests per canary pod > 1.5 x per stable pod + 1 |
| VLLMCanaryNoTraffic | the canary served nothing while its share should have brought it >= 20 requests |

The factors are ours (no upstream canary-analysis source prescribes them); they are
constants below, one place to change them. Error ratio: vLLM's HTTP counter
`http_requests_total` (status grouped "5xx"; compose/plan/metrics.py) on the OpenAI
routes `/v1/...`; latencies: vLLM's own histograms.
"""

from __future__ import annotations

from dataclasses import dataclass

from compose.generate.alerts import Alert, duration, number
from compose.plan import metrics as m

GROUP = "vllm-canary"
WINDOW_SECONDS = 10 * 60
FOR_SECONDS = 10 * 60
MIN_REQUESTS = 20  # canary requests in the window before a ratio or a quantile is compared
ERROR_RATIO_FACTOR = 2.0
ERROR_RATIO_MARGIN = 0.01
LATENCY_QUANTILE = 0.95
LATENCY_FACTOR = 1.2
QUEUE_FACTOR = 1.5
QUEUE_MARGIN = 1.0
OPENAI_HANDLERS = m.Re("/v1/.+")


@dataclass(frozen=True)
class CanaryFigures:
    served_model_name: str
    namespace: str
    stable: str  # the stable overlay (its pods' instance label)
    canary: str  # the canary overlay
    weight: int  # the canary's share of the route, in percent

    def vllm(self, metric: str, instance: str) -> str:
        return m.model_selector(metric, self.served_model_name, self.namespace, instance)

    def http(self, instance: str, **extra: str) -> str:
        return m.selector(m.HTTP_REQUESTS, {"namespace": self.namespace, m.INSTANCE_LABEL: instance,
                                             "handler": OPENAI_HANDLERS, **extra})


def _w() -> str:
    return duration(WINDOW_SECONDS)


def _labels_note(f: CanaryFigures) -> str:
    return f"canary {f.canary} vs stable {f.stable} in {f.namespace}"


def _enough(f: CanaryFigures) -> str:
    return f"sum(increase({f.http(f.canary)}[{_w()}])) >= {MIN_REQUESTS}"


def _ratio(f: CanaryFigures, instance: str, stable: bool) -> str:
    errors = f"sum(rate({f.http(instance, status='5xx')}[{_w()}]))"
    total = f"sum(rate({f.http(instance)}[{_w()}]))"
    if stable:  # no 5xx series yet, or no stable traffic at all, reads as a ratio of 0
        return f"(((({errors}) or vector(0)) / {total}) or vector(0))"
    return f"({errors} / {total})"


def _error_ratio(f: CanaryFigures) -> Alert:
    expr = (f"{_ratio(f, f.canary, False)}\n> {number(ERROR_RATIO_FACTOR)} * {_ratio(f, f.stable, True)} + "
            f"{number(ERROR_RATIO_MARGIN)}\nand\n{_enough(f)}")
    return Alert(
        "VLLMCanaryErrorRatioAboveStable", expr, FOR_SECONDS, "warning",
        f"{f.served_model_name}: the canary answers more 5xx than stable",
        f"Over {_w()}, the share of 5xx answers of {f.canary} exceeded {number(ERROR_RATIO_FACTOR)} x that of "
        f"{f.stable} plus {number(ERROR_RATIO_MARGIN)} ({_labels_note(f)}, canary weight {f.weight}%).",
        f"Abort: compose canary abort {f.stable} (one reviewed change); then read the canary's pod log "
        f"(kubectl -n {f.namespace} logs deploy/{f.canary}-vllm).",
    )


def _quantile(f: CanaryFigures, bucket: str, instance: str) -> str:
    return f"histogram_quantile({LATENCY_QUANTILE}, sum by (le) (rate({f.vllm(bucket, instance)}[{_w()}])))"


def _latency(f: CanaryFigures, name: str, bucket: str, count: str, what: str) -> Alert:
    expr = (f"{_quantile(f, bucket, f.canary)}\n> {number(LATENCY_FACTOR)} * {_quantile(f, bucket, f.stable)}\n"
            f"and on()\nsum(increase({f.vllm(count, f.canary)}[{_w()}])) >= {MIN_REQUESTS}")
    return Alert(
        name, expr, FOR_SECONDS, "warning",
        f"{f.served_model_name}: the canary's p95 {what} is above stable's",
        f"Over {_w()}, p95 {what} of {f.canary} exceeded {number(LATENCY_FACTOR)} x that of {f.stable} "
        f"({_labels_note(f)}, canary weight {f.weight}%). Compare at similar load per pod: the canary's "
        "share divided by its replicas should be close to the stable's per replica.",
        f"If it persists at comparable load, abort: compose canary abort {f.stable}.",
    )


def _queue(f: CanaryFigures) -> Alert:
    def per_pod(instance: str) -> str:
        return f"avg(sum by (pod) ({f.vllm(m.NUM_REQUESTS_WAITING, instance)}))"

    expr = (f"{per_pod(f.canary)}\n> {number(QUEUE_FACTOR)} * ({per_pod(f.stable)} or vector(0)) + "
            f"{number(QUEUE_MARGIN)}")
    return Alert(
        "VLLMCanaryQueueAboveStable", expr, FOR_SECONDS, "warning",
        f"{f.served_model_name}: the canary's queue per pod is above stable's",
        f"Requests waiting per pod of {f.canary} exceeded {number(QUEUE_FACTOR)} x the stable pods' "
        f"plus {number(QUEUE_MARGIN)} for {duration(FOR_SECONDS)} ({_labels_note(f)}, canary weight {f.weight}%): "
        "the canary serves less than its share of the load.",
        f"Lower its share (compose canary set-weight {f.stable} N) or abort (compose canary abort {f.stable}).",
    )


def _no_traffic(f: CanaryFigures) -> Alert:
    # Expected canary requests = stable requests x N / (100 - N); fire only when that is at
    # least MIN_REQUESTS, where receiving none cannot be chance.
    scale = f.weight / (100 - f.weight)
    expr = (f"(sum(increase({f.http(f.canary)}[{_w()}])) or vector(0)) == 0\nand\n"
            f"sum(increase({f.http(f.stable)}[{_w()}])) * {number(round(scale, 6))} >= {MIN_REQUESTS}")
    return Alert(
        "VLLMCanaryNoTraffic", expr, FOR_SECONDS, "warning",
        f"{f.served_model_name}: the canary receives none of its {f.weight}% share",
        f"{f.stable} served requests for {_w()} but {f.canary} served none, although the route gives it "
        f"{f.weight}%: the Gateway does not apply the split (route not accepted, canary backend not resolved) "
        "or the canary pods are not ready.",
        f"kubectl -n {f.namespace} get httproute,virtualservice,inferencepool -o yaml (status.parents conditions); "
        f"kubectl -n {f.namespace} get pods -l app.kubernetes.io/instance={f.canary}.",
    )


def canary_alerts(f: CanaryFigures) -> list[Alert]:
    out = [
        _error_ratio(f),
        _latency(f, "VLLMCanaryTTFTAboveStable", m.TTFT_BUCKET,
                 m.VLLM["vllm:time_to_first_token_seconds"].series[1], "time to first token"),
        _latency(f, "VLLMCanaryTPOTAboveStable", m.TPOT_BUCKET,
                 m.VLLM["vllm:request_time_per_output_token_seconds"].series[1], "time per output token"),
        _queue(f),
    ]
    if 0 < f.weight < 100:
        out.append(_no_traffic(f))
    return out


def rule_group(f: CanaryFigures) -> dict:
    rules = []
    for a in canary_alerts(f):
        rule = a.rule_with_labels({"severity": a.severity, "namespace": f.namespace,
                                   "model_name": f.served_model_name, "canary": f.canary})
        rules.append(rule)
    return {"name": GROUP, "rules": rules}
