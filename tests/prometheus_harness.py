"""A real Prometheus on loopback, scraping fake exporters whose numbers tests control.

- `VllmPod`: one fake vLLM 0.33 server. Its `/metrics` is the exposition
  `prometheus_client` produces for vLLM's `PrometheusStatLogger`: every family
  vLLM always registers (names, types and help from `compose.plan.metrics`), labels
  `model_name` and `engine` (one per data-parallel engine), the real histogram
  buckets, `_total`/`_created` for counters, `_bucket`/`_count`/`_sum`/`_created`
  for histograms, sorted label names and Go-style floats.
- `StaticExporter`: kube-state-metrics, KEDA's operator and dcgm-exporter, each
  serving the families tests set.
- `Prometheus`: a real `prometheus` process with a generated config (scrape
  every second, the static `namespace`/`pod` labels a PodMonitor would add),
  temp storage, a free loopback port, and `query()` over the HTTP API.
- `promtool_check_rules` / `promtool_test_rules`.

Everything listens on 127.0.0.1 and is stopped by `close()`/`stop()`; fixtures
call those in finalizers.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable

import yaml

from compose.plan import metrics as m

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_SECONDS = 1
START_TIMEOUT = 30.0

# Label values vLLM 0.33.0 pre-creates (vllm/v1/metrics/loggers.py and the enums it uses).
LABEL_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm:num_requests_waiting_by_reason": {"reason": ("capacity", "deferred")},
    "vllm:engine_sleep_state": {"sleep_state": ("awake", "weights_offloaded", "discard_all")},
    "vllm:prompt_tokens_by_source": {"source": ("local_compute", "local_cache_hit", "external_kv_transfer")},
    "vllm:prompt_tokens_cached_by_source": {"source": ("device", "host", "p2p", "disk", "external_unspecified")},
    "vllm:request_success": {"finished_reason": ("stop", "length", "abort", "error", "repetition")},
    "vllm:admission_rejections": {"reason": ("max_num_queued_reqs", "max_num_queued_tokens")},
}


def missing_binaries() -> str | None:
    """Why the Prometheus tests cannot run here, or None."""
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not on PATH; install Debian's `prometheus` package "
            "(apt-get install -y prometheus), as .ci/run does"
        )
    return None


# --------------------------------------------------------------------------- exposition format


def go_float(value: float) -> str:
    """Format like prometheus_client's floatToGoString."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6 and "e" not in text:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_text(name: str, kind: str, help_: str, samples: Iterable[tuple[str, dict, float]]) -> str:
    """One metric family: HELP, TYPE and its samples (`(series name, labels, value)`)."""
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f"{series}{_labels(labels)} {go_float(value)}" for series, labels, value in samples]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- fake HTTP exporters


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `render()` at /metrics."""

    def __init__(self, render: Callable[[], str]):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = outer.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.render = render
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class _Engine:
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[tuple[str, tuple], float] = field(default_factory=dict)
    histograms: dict[str, list[float]] = field(default_factory=dict)  # observations


class VllmPod:
    """A fake vLLM pod: the full always-on series set of vLLM 0.33.0, values set by tests."""

    def __init__(self, model_name: str, namespace: str, pod: str, engines: int = 1, max_model_len: int = 8192,
                 pod_labels: dict[str, str] | None = None):
        self.model_name = model_name
        self.namespace = namespace
        self.pod = pod
        # Pod labels the PodMonitor copies onto every series (podTargetLabels), already
        # sanitized: {"app_kubernetes_io_instance": "<overlay>"}.
        self.pod_labels = dict(pod_labels or {})
        # vLLM's HTTP counter (prometheus-fastapi-instrumentator): {(handler, method, status): count};
        # a series appears with its first request, as the instrumentator creates it.
        self.http: dict[tuple[str, str, str], float] = {}
        self.max_model_len = max_model_len
        self.engines = [_Engine() for _ in range(engines)]
        self.admission_rejections: dict[str, float] = {}
        self.serving = True  # False: /metrics answers without any vLLM series
        self.created = 1.7e9
        self._lock = threading.Lock()
        self.server = _Server(self.render)

    # -- state, all thread-safe
    def set(self, gauge: str, value: float, engine: int = 0) -> None:
        with self._lock:
            self.engines[engine].gauges[gauge] = float(value)

    def inc(self, counter: str, by: float, engine: int = 0, **labels: str) -> None:
        key = (counter, tuple(sorted(labels.items())))
        with self._lock:
            if counter == "vllm:admission_rejections":
                reason = labels["reason"]
                self.admission_rejections[reason] = self.admission_rejections.get(reason, 0.0) + by
            else:
                eng = self.engines[engine]
                eng.counters[key] = eng.counters.get(key, 0.0) + by

    def observe(self, histogram: str, value: float, count: int = 1, engine: int = 0) -> None:
        with self._lock:
            self.engines[engine].histograms.setdefault(histogram, []).extend([float(value)] * count)

    def request(self, status: str = "2xx", count: float = 1, handler: str = "/v1/chat/completions",
                method: str = "POST") -> None:
        """Count `count` answered API requests (status grouped as the instrumentator does: 2xx, 5xx)."""
        with self._lock:
            key = (handler, method, status)
            self.http[key] = self.http.get(key, 0.0) + count

    def gauge(self, gauge: str) -> float:
        with self._lock:
            return sum(e.gauges.get(gauge, 0.0) for e in self.engines)

    # -- exposition
    def render(self) -> str:
        with self._lock:
            if not self.serving:
                return ""
            return "".join(self._family(metric) for metric in m.VLLM_METRICS if metric.when == "always") + self._http()

    def _http(self) -> str:
        if not self.http:
            return ""
        rows = [(m.HTTP_REQUESTS, {"handler": h, "method": meth, "status": st}, v)
                for (h, meth, st), v in sorted(self.http.items())]
        return family_text(m.HTTP_REQUESTS, "counter", m.EXTERNAL[m.HTTP_REQUESTS].help, rows)

    def _label_sets(self, metric: m.Metric, engine: int) -> list[dict]:
        base = {"model_name": self.model_name, "engine": str(engine)}
        extra = LABEL_VALUES.get(metric.name, {})
        if not extra:
            return [base]
        (label, values), = extra.items()
        return [{**base, label: v} for v in values]

    def _family(self, metric: m.Metric) -> str:
        if metric.name == "vllm:admission_rejections":  # labels model_name, reason (no engine)
            rows = [
                {"model_name": self.model_name, "reason": r} for r in LABEL_VALUES[metric.name]["reason"]
            ]
            totals = [("vllm:admission_rejections_total", r, self.admission_rejections.get(r["reason"], 0.0)) for r in rows]
            created = [("vllm:admission_rejections_created", r, self.created) for r in rows]
            return family_text(f"{metric.name}_total", "counter", metric.help, totals) + family_text(
                f"{metric.name}_created", "gauge", metric.help, created
            )
        if metric.name == "vllm:cache_config_info":
            rows = [
                ("vllm:cache_config_info",
                 {"engine": str(i), "block_size": "16", "cache_dtype": "auto", "enable_prefix_caching": "True",
                  "gpu_memory_utilization": "0.9", "num_gpu_blocks": "8192", "kv_cache_size_tokens": "131072"},
                 1.0)
                for i in range(len(self.engines))
            ]
            return family_text(metric.name, "gauge", metric.help, rows)
        if metric.kind == m.GAUGE:
            rows = [
                (metric.name, labels, eng.gauges.get(metric.name, 1.0 if labels.get("sleep_state") == "awake" else 0.0))
                for i, eng in enumerate(self.engines)
                for labels in self._label_sets(metric, i)
            ]
            return family_text(metric.name, "gauge", metric.help, rows)
        if metric.kind == m.COUNTER:
            totals, created = [], []
            for i, eng in enumerate(self.engines):
                for labels in self._label_sets(metric, i):
                    extra = tuple(sorted((k, v) for k, v in labels.items() if k not in ("model_name", "engine")))
                    totals.append((f"{metric.name}_total", labels, eng.counters.get((metric.name, extra), 0.0)))
                    created.append((f"{metric.name}_created", labels, self.created))
            return family_text(f"{metric.name}_total", "counter", metric.help, totals) + family_text(
                f"{metric.name}_created", "gauge", metric.help, created
            )
        return self._histogram(metric)

    def _histogram(self, metric: m.Metric) -> str:
        bounds = [*m.histogram_buckets(metric.buckets, self.max_model_len), math.inf]
        rows, created = [], []
        for i, eng in enumerate(self.engines):
            labels = {"model_name": self.model_name, "engine": str(i)}
            observed = eng.histograms.get(metric.name, [])
            for bound in bounds:
                rows.append((f"{metric.name}_bucket", {**labels, "le": go_float(bound)}, sum(v <= bound for v in observed)))
            rows.append((f"{metric.name}_count", labels, len(observed)))
            rows.append((f"{metric.name}_sum", labels, sum(observed)))
            created.append((f"{metric.name}_created", labels, self.created))
        return family_text(metric.name, "histogram", metric.help, rows) + family_text(
            f"{metric.name}_created", "gauge", metric.help, created
        )

    def close(self) -> None:
        self.server.close()


class StaticExporter:
    """An exporter serving families whose samples tests set: {(name, labels): value}."""

    def __init__(self, job: str, honor_labels: bool, target_labels: dict[str, str]):
        self.job = job
        self.honor_labels = honor_labels
        self.target_labels = target_labels
        self.samples: dict[tuple[str, tuple], float] = {}
        self._lock = threading.Lock()
        self.server = _Server(self.render)

    def set(self, name: str, labels: dict[str, str], value: float) -> None:
        if name not in m.EXTERNAL:
            raise KeyError(f"{name} is not listed in compose.plan.metrics")
        with self._lock:
            self.samples[(name, tuple(sorted(labels.items())))] = float(value)

    def inc(self, name: str, labels: dict[str, str], by: float) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.samples[key] = self.samples.get(key, 0.0) + by

    def render(self) -> str:
        with self._lock:
            names = sorted({n for n, _ in self.samples})
            return "".join(
                family_text(
                    name, m.EXTERNAL[name].kind, m.EXTERNAL[name].help,
                    [(name, dict(lbl), v) for (n, lbl), v in sorted(self.samples.items()) if n == name],
                )
                for name in names
            )

    def close(self) -> None:
        self.server.close()


# --------------------------------------------------------------------------- Prometheus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """A real Prometheus scraping the fakes every second; stop() always cleans up."""

    def __init__(self, workdir: Path, pods: list[VllmPod], exporters: list[StaticExporter], rule_files: list[Path]):
        self.workdir = Path(workdir)
        self.pods = pods
        self.exporters = exporters
        self.rule_files = rule_files
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def config(self) -> dict:
        """Scrape configs: each vLLM pod gets the labels a PodMonitor target has."""
        vllm = {
            "job_name": "vllm",
            "static_configs": [
                {"targets": [p.server.address],
                 "labels": {"namespace": p.namespace, "pod": p.pod, "container": "vllm", **p.pod_labels}}
                for p in self.pods
            ],
        }
        others = [
            {
                "job_name": e.job,
                "honor_labels": e.honor_labels,
                "static_configs": [{"targets": [e.server.address], "labels": e.target_labels}],
            }
            for e in self.exporters
        ]
        return {
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s",
                       "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "rule_files": [str(f) for f in self.rule_files],
            "scrape_configs": [vllm, *others],
        }

    def start(self) -> "Prometheus":
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=True))
        args = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait(lambda: self._get("/-/ready", raw=True) is not None, "ready")
            expected = len(self.pods) + len(self.exporters)
            self._wait(lambda: self._up_targets() >= expected, f"{expected} targets up")
        except BaseException:
            self.stop()
            raise
        return self

    def _up_targets(self) -> int:
        data = self._get("/api/v1/targets")
        if not data:
            return 0
        return sum(t["health"] == "up" for t in data["data"]["activeTargets"])

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.proc.returncode}): {self.log_tail()}")
            if predicate():
                return
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not {what} after {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _get(self, path: str, raw: bool = False):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                body = resp.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return body if raw else json.loads(body)

    def api(self, path: str, **params: str) -> dict:
        """GET an API path; raises PrometheusError with Prometheus' message on errors."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = json.loads(err.read() or b"{}")
            raise PrometheusError(f"{path} {params}: {detail.get('errorType')}: {detail.get('error')}") from None
        if data.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {data}")
        return data["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector (a scalar result becomes one label-less sample)."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_for(self, expr: str, predicate: Callable[[list[dict]], bool], timeout: float = 15.0) -> list[dict]:
        """Poll `expr` until `predicate(result)`; raise with the last result otherwise."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.2)
        raise AssertionError(f"after {timeout} s, {expr} returned {result}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def values(result: list[dict]) -> list[float]:
    """The sample values of an instant-query result."""
    return [float(r["value"][1]) for r in result]


# --------------------------------------------------------------------------- promtool


def rule_file_text(prometheus_rule: dict) -> str:
    """A Prometheus rule file from a PrometheusRule object's spec."""
    return yaml.safe_dump({"groups": prometheus_rule["spec"]["groups"]}, sort_keys=True)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("promtool") or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def promtool_check_rules(rules: Path) -> subprocess.CompletedProcess:
    return _promtool("check", "rules", str(rules), cwd=rules.parent)


def promtool_test_rules(tests: Path) -> subprocess.CompletedProcess:
    return _promtool("test", "rules", str(tests), cwd=tests.parent)
