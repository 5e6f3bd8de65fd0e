"""`compose status`: what an applied overlay is doing, one screen per overlay.

Read-only, like doctor: the Deployment's desired, ready and updated replicas;
each pod and why it is not ready (Pending with the scheduler's last message,
Init with the download's progress, startup-probe failures, OOMKilled,
restarts); the ScaledObject's Ready, Active and Fallback conditions and, when
Prometheus answers, the queue its trigger reads; the claims' phase; the recent
Warning events. `collect()` builds the data (also `to_dict()` for JSON),
`render()` prints it with rich (colours only on a terminal).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from compose.cluster.doctor import service_of
from compose.cluster.kube import MAX_BODY, Cluster, _deadline, _DeadlinePassed
from compose.cluster.target import DOWNLOAD_CONTAINER, Target
from compose.core.errors import ClusterApiError

LOG_TIMEOUT = (3.0, 5.0)
PROMETHEUS_TIMEOUT = 5.0
MAX_EVENTS = 8


@dataclass
class PodRow:
    name: str
    node: str
    phase: str
    ready: str  # "1/1"
    restarts: int
    state: str  # short: Running, Pending, Init:0/1, CrashLoopBackOff, ...
    why: str  # the reason it is not ready, '' when ready
    level: str  # ok | warn | fail


@dataclass
class ScalingRow:
    name: str
    ready: str
    active: str
    fallback: str
    message: str
    queue: str  # the trigger query's current value, or why it is unknown


@dataclass
class ClaimRow:
    name: str
    phase: str
    storage_class: str
    capacity: str
    why: str


@dataclass
class EventRow:
    last_seen: str
    object: str
    reason: str
    message: str
    count: int


@dataclass
class OverlayStatus:
    overlay: str
    namespace: str
    deployment: str
    found: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    condition: str = ""  # the Deployment's Progressing/Available problem, if any
    pods: list[PodRow] = field(default_factory=list)
    scaling: list[ScalingRow] = field(default_factory=list)
    claims: list[ClaimRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # reads that failed (403, ...)

    @property
    def serving(self) -> bool:
        return self.found and self.ready > 0 and self.ready >= self.desired

    def to_dict(self) -> dict:
        d = asdict(self)
        d["serving"] = self.serving
        return d


# --------------------------------------------------------------------------- collecting


def _age(ts: str | None, now: datetime) -> str:
    if not ts:
        return "?"
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    s = max(0, int((now - t).total_seconds()))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"


def _event_time(e: dict) -> str:
    return (e.get("lastTimestamp") or e.get("eventTime") or (e.get("series") or {}).get("lastObservedTime")
            or e.get("firstTimestamp") or (e.get("metadata") or {}).get("creationTimestamp") or "")


def progress_line(log: str) -> str:
    """The last meaningful line of the download log (hf's progress bars redraw with \\r)."""
    lines = [seg.strip() for line in log.splitlines() for seg in line.split("\r") if seg.strip()]
    return lines[-1][:160] if lines else ""


def _pod_row(cluster: Cluster, pod: dict, events: list[dict], now: datetime, logs: bool) -> PodRow:
    meta, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    name = meta["name"]
    containers = st.get("containerStatuses") or []
    inits = st.get("initContainerStatuses") or []
    restarts = sum(c.get("restartCount", 0) for c in containers + inits)
    n_ready = sum(1 for c in containers if c.get("ready"))
    ready = f"{n_ready}/{len(spec.get('containers') or [])}"
    mine = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    mine.sort(key=_event_time)
    phase = st.get("phase", "Unknown")

    def last_event(reason: str, contains: str = "") -> tuple[str, int]:
        hits = [e for e in mine if e.get("reason") == reason and contains in (e.get("message") or "")]
        return ((hits[-1].get("message") or "").strip(), sum(e.get("count") or 1 for e in hits)) if hits else ("", 0)

    oom = []
    for c in containers + inits:
        term = (c.get("lastState") or {}).get("terminated") or {}
        if term.get("reason") == "OOMKilled":
            oom.append(f"{c['name']} OOMKilled {_age(term.get('finishedAt'), now)} ago (exit {term.get('exitCode', 137)})")

    def row(state: str, why: str, level: str) -> PodRow:
        if oom and "OOMKilled" not in why:
            why = "; ".join([why] + oom) if why else "; ".join(oom)
            level = "fail" if level == "fail" else "warn"  # an earlier OOM kill: worth a look, not an outage
        if restarts and why and "restart" not in why:
            why += f"; {restarts} restart(s)"
        return PodRow(name, spec.get("nodeName") or "-", phase, ready, restarts, state, why, level)

    if meta.get("deletionTimestamp"):
        return row("Terminating", "terminating (draining: preStop, then --shutdown-timeout)", "warn")
    if not spec.get("nodeName"):
        cond = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        message = cond.get("message", "") if cond.get("status") == "False" else ""
        if not message:
            message = last_event("FailedScheduling")[0]
        return row("Pending", f"unschedulable: {message}" if message else "waiting for the scheduler", "fail" if message else "warn")
    # Init containers, in order: the first one not done is where the pod is.
    for i, c in enumerate(inits):
        state = c.get("state") or {}
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        total = len(spec.get("initContainers") or [])
        label = f"Init:{i}/{total}"
        if "waiting" in state:
            w = state["waiting"]
            last = (c.get("lastState") or {}).get("terminated") or {}
            extra = f" (last exit {last.get('exitCode')}: {last.get('reason', '')})" if last else ""
            reason = w.get("reason", "Waiting")
            if reason == "PodInitializing":
                return row(label, f"{c['name']}: starting", "warn")
            return row(f"Init:{reason}", f"{c['name']}: {reason}: {w.get('message', '').strip()}{extra}".rstrip(": "), "fail")
        if "running" in state:
            why = f"{c['name']} running for {_age(state['running'].get('startedAt'), now)}"
            if logs and c["name"] == DOWNLOAD_CONTAINER:
                try:
                    text = cluster.text(f"/api/v1/namespaces/{meta['namespace']}/pods/{name}/log", timeout=LOG_TIMEOUT,
                                        container=c["name"], tailLines=20)
                    line = progress_line(text)
                    why += f": {line}" if line else ": no output yet"
                except Exception as err:  # logs are best effort: the kubelet may be unreachable from the API server
                    why += f" (log unavailable: {str(err)[:80]})"
            return row(label, why, "warn")
        if term:
            return row("Init:Error", f"{c['name']} exited {term.get('exitCode')}: {term.get('reason', '')} {term.get('message', '')}".strip(), "fail")
    if phase in ("Failed", "Succeeded"):
        return row(phase, st.get("reason", "") + (": " + st.get("message", "") if st.get("message") else ""), "fail")
    for c in containers:
        state = c.get("state") or {}
        if "waiting" in state:
            w = state["waiting"]
            last = (c.get("lastState") or {}).get("terminated") or {}
            extra = f" (last exit {last.get('exitCode')}: {last.get('reason', '')})" if last else ""
            return row(w.get("reason", "Waiting"), f"{c['name']}: {w.get('reason', '')}: {w.get('message', '').strip()}{extra}".rstrip(": "), "fail")
        if "running" in state and not c.get("ready"):
            if c.get("started") is False:
                msg, n = last_event("Unhealthy", "Startup probe")
                why = f"{c['name']} loading the model (startup probe not passed yet, running for {_age(state['running'].get('startedAt'), now)})"
                if n:
                    why += f"; startup probe failed {n}x: {msg}"
                return row("Starting", why, "warn")
            msg, n = last_event("Unhealthy", "Readiness probe")
            return row("NotReady", f"{c['name']}: readiness probe failing" + (f" {n}x: {msg}" if n else ""), "warn")
        if "terminated" in state:
            t = state["terminated"]
            return row(t.get("reason", "Terminated"), f"{c['name']} exited {t.get('exitCode')}: {t.get('reason', '')}", "fail")
    if containers and all(c.get("ready") for c in containers):
        return row("Running", "", "warn" if oom or restarts else "ok")
    return row(phase, "no container status yet (the kubelet has not reported)", "warn")


def _condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def query_prometheus(cluster: Cluster, server_address: str, query: str, namespace: str,
                     prometheus_url: str | None = None) -> str:
    """The current value of the trigger's query: `prometheus_url` directly when given, else
    through the API server's service proxy (a GET). A string either way."""
    try:
        if prometheus_url:
            url = prometheus_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
            # bounded like every API read: a wall-clock deadline (a trickling server never
            # trips the socket timeout) and at most MAX_BODY bytes
            with _deadline(2 * PROMETHEUS_TIMEOUT), \
                    urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT) as resp:  # noqa: S310 - the user's URL
                raw = resp.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                return f"unknown (Prometheus answered more than {MAX_BODY // 2**20} MiB)"
            body = json.loads(raw)
        else:
            ref = service_of(server_address, namespace)
            if ref is None:
                return f"not queried ({server_address} is not a cluster Service; pass --prometheus-url)"
            ns, svc, port = ref
            scheme = urllib.parse.urlsplit(server_address).scheme or "http"
            body = cluster.get(f"/api/v1/namespaces/{ns}/services/{scheme}:{svc}:{port}/proxy/api/v1/query", query=query)
    except _DeadlinePassed:
        return f"unknown (Prometheus not reachable: no full answer in {2 * PROMETHEUS_TIMEOUT:g}s)"
    except ClusterApiError as err:
        return f"unknown (Prometheus not reachable through the API server: {str(err)[:100]}; pass --prometheus-url)"
    except Exception as err:  # urllib: refused, timeout, bad JSON
        return f"unknown (Prometheus not reachable: {' '.join(str(err).split())[:100]})"
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        return f"unknown (Prometheus: {' '.join(str(error or 'not a Prometheus query answer').split())[:200]})"
    result = data.get("result") or []
    if not isinstance(result, list):
        return "unknown (unexpected answer)"
    if not result:
        return "no data (the query matches no series: is vLLM scraped with these labels?)"
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, ValueError, TypeError):
        return "unknown (unexpected answer)"
    return f"{value:g}"


def collect(cluster: Cluster, target: Target, *, prometheus_url: str | None = None, logs: bool = True,
            max_events: int = MAX_EVENTS) -> OverlayStatus:
    ns, dep_name = target.namespace, target.deployment_name
    out = OverlayStatus(target.name, ns, dep_name, found=False)
    now = datetime.now(timezone.utc)
    try:
        dep = cluster.find(f"/apis/apps/v1/namespaces/{ns}/deployments/{dep_name}")
    except ClusterApiError as err:
        out.problems.append(f"Deployment {ns}/{dep_name}: {err}")
        dep = None
    if dep is not None:
        st = dep.get("status") or {}
        out.found = True
        out.desired = int((dep.get("spec") or {}).get("replicas", 1))
        out.ready, out.updated, out.available = (int(st.get(k, 0) or 0) for k in ("readyReplicas", "updatedReplicas", "availableReplicas"))
        prog = _condition(dep, "Progressing")
        if prog.get("status") == "False" or prog.get("reason") == "ProgressDeadlineExceeded":
            out.condition = f"{prog.get('reason')}: {prog.get('message', '')}"
    try:
        events = cluster.list(f"/api/v1/namespaces/{ns}/events")
    except ClusterApiError as err:
        out.problems.append(f"events: {err}")
        events = []
    selector = ",".join(f"{k}={v}" for k, v in target.selector.items())
    try:
        pods = cluster.list(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)
        pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
        out.pods = [_pod_row(cluster, p, events, now, logs) for p in pods]
    except ClusterApiError as err:
        out.problems.append(f"pods: {err}")
    triggers = {t.scaled_object: t for t in target.prometheus_triggers()}
    for so_doc in target.scaled_objects:
        name = so_doc["metadata"]["name"]
        try:
            so = cluster.find(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}")
        except ClusterApiError as err:
            out.problems.append(f"ScaledObject {name}: {err}")
            continue
        if so is None:
            out.scaling.append(ScalingRow(name, "-", "-", "-", "not applied (or KEDA's CRD is missing: compose doctor)", "-"))
            continue
        trig = triggers.get(name)
        queue = query_prometheus(cluster, trig.server_address, trig.query, ns, prometheus_url) if trig else "-"
        conds = {k: _condition(so, k) for k in ("Ready", "Active", "Fallback")}
        bad = [f"{k}: {c.get('message') or c.get('reason')}" for k, c in conds.items()
               if (k == "Ready" and c.get("status") != "True") or (k == "Fallback" and c.get("status") == "True")]
        out.scaling.append(ScalingRow(name, conds["Ready"].get("status", "?"), conds["Active"].get("status", "?"),
                                      conds["Fallback"].get("status", "?"), "; ".join(bad), queue))
    for claim in target.claims:
        name = claim["metadata"]["name"]
        try:
            pvc = cluster.find(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
        except ClusterApiError as err:
            out.problems.append(f"claim {name}: {err}")
            continue
        if pvc is None:
            out.claims.append(ClaimRow(name, "missing", (claim.get("spec") or {}).get("storageClassName") or "-", "-", "not applied"))
            continue
        phase = (pvc.get("status") or {}).get("phase", "?")
        why = ""
        if phase != "Bound":
            evs = sorted((e for e in events if (e.get("involvedObject") or {}).get("kind") == "PersistentVolumeClaim"
                          and (e.get("involvedObject") or {}).get("name") == name), key=_event_time)
            why = (evs[-1].get("message") or "").strip() if evs else "waiting for a volume"
        out.claims.append(ClaimRow(name, phase, (pvc.get("spec") or {}).get("storageClassName") or "-",
                                   ((pvc.get("status") or {}).get("capacity") or {}).get("storage", "-"), why))
    warnings: dict[tuple[str, str], EventRow] = {}
    for e in sorted((e for e in events if e.get("type") == "Warning"), key=_event_time):
        obj = e.get("involvedObject") or {}
        key = (f"{obj.get('kind', '')}/{obj.get('name', '')}", e.get("reason", ""))
        prev = warnings.get(key)
        warnings[key] = EventRow(_age(_event_time(e), now), key[0], key[1], " ".join((e.get("message") or "").split()),
                                 (prev.count if prev else 0) + (e.get("count") or 1))
    out.events = list(reversed(list(warnings.values())))[:max_events]
    return out


# --------------------------------------------------------------------------- rendering

LEVEL_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def render(status: OverlayStatus, console) -> None:
    """One screen for one overlay, with rich (colour only when the console is a terminal)."""
    from rich.table import Table
    from rich.text import Text

    head = Text()
    head.append(f"{status.overlay}", style="bold")
    head.append(f"  namespace {status.namespace}  Deployment {status.deployment}: ")
    if not status.found:
        head.append(f"not applied (compose doctor {status.overlay}, then kubectl apply -k)", style="red")
    else:
        head.append(f"{status.ready}/{status.desired} ready", style="green" if status.serving else "red")
        head.append(f", {status.updated} updated, {status.available} available")
    console.rule(head, align="left")
    if status.condition:
        console.print(Text(status.condition, style="red"))
    if status.pods:
        t = Table(show_edge=False, pad_edge=False, expand=False)
        for col in ("POD", "NODE", "STATUS", "READY", "RESTARTS", "WHY"):
            t.add_column(col, overflow="fold")
        for p in status.pods:
            style = LEVEL_STYLE[p.level]
            t.add_row(p.name, p.node, Text(p.state, style=style), p.ready, str(p.restarts), Text(p.why, style=style if p.why else ""))
        console.print(t)
    elif status.found:
        console.print(Text("no pods", style="yellow"))
    if status.scaling:
        t = Table(show_edge=False, pad_edge=False, title=None)
        for col in ("SCALEDOBJECT", "READY", "ACTIVE", "FALLBACK", "QUEUE", "MESSAGE"):
            t.add_column(col, overflow="fold")
        for s in status.scaling:
            t.add_row(s.name, Text(s.ready, style="green" if s.ready == "True" else "red"), s.active,
                      Text(s.fallback, style="red" if s.fallback == "True" else ""), s.queue, s.message)
        console.print(t)
    if status.claims:
        t = Table(show_edge=False, pad_edge=False)
        for col in ("CLAIM", "PHASE", "CLASS", "CAPACITY", "WHY"):
            t.add_column(col, overflow="fold")
        for c in status.claims:
            t.add_row(c.name, Text(c.phase, style="green" if c.phase == "Bound" else "red"), c.storage_class, c.capacity, c.why)
        console.print(t)
    if status.events:
        t = Table(show_edge=False, pad_edge=False)
        for col in ("LAST SEEN", "OBJECT", "REASON", "COUNT", "MESSAGE"):
            t.add_column(col, overflow="fold")
        for e in status.events:
            t.add_row(e.last_seen, e.object, Text(e.reason, style="yellow"), str(e.count), e.message)
        console.print(Text("recent Warning events", style="bold"))
        console.print(t)
    for p in status.problems:
        console.print(Text(f"could not read {p}", style="yellow"))


__all__ = ["OverlayStatus", "PodRow", "collect", "render", "progress_line", "query_prometheus"]
