"""`compose status` on pods the real controllers create.

The Deployment, ReplicaSet and scheduler are real; there is no kubelet, so the
tests patch pod status as a kubelet would (Running/Ready, an init container
running or failing, an OOMKilled last state, restarts) and post the events a
kubelet posts (Unhealthy). A Pending pod carries the real scheduler's
FailedScheduling message.
"""

from __future__ import annotations

import http.server
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

import pytest

import fakenodes as fn
from composer_helpers import run
from compose.cluster import status as lib
from compose.core import kustomize
from conftest_cluster import REPO, apply_rendered, delete_namespace, wait_for, wait_pending_reason

pytestmark = pytest.mark.cluster
SELECTOR = "app.kubernetes.io/name=vllm"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(cp, *args: str):
    return run("status", *args, "--kubeconfig", str(cp.kubeconfig), "--no-logs", repo=REPO)


def status_json(cp, overlay: str, *args: str) -> tuple[int, dict]:
    res = status(cp, overlay, "--format", "json", *args)
    return res.exit_code, json.loads(res.stdout)[0]


def the_pod(cp, ns: str) -> dict:
    return wait_for(f"a vllm pod in {ns}", lambda: cp.api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=SELECTOR)["items"], 30)[0]


def patch_status(cp, pod: dict, status: dict) -> None:
    cp.api.patch(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}/status", {"status": status})


def container(name: str, ready: bool, state: dict, **extra) -> dict:
    return {"name": name, "image": "vllm/vllm-openai:v0.33.0", "imageID": "", "ready": ready,
            "restartCount": extra.pop("restartCount", 0), "state": state, **extra}


def event(cp, pod: dict, reason: str, message: str, count: int = 1, type_: str = "Warning") -> None:
    ns = pod["metadata"]["namespace"]
    cp.api.post(f"/api/v1/namespaces/{ns}/events", {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod['metadata']['name']}.{reason.lower()}.{time.monotonic_ns()}"},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
        "reason": reason, "message": message, "type": type_, "count": count,
        "firstTimestamp": now(), "lastTimestamp": now(), "source": {"component": "kubelet"}})


@pytest.fixture
def applied(control_plane, cluster_crds):
    """apply_rendered for overlays, undone afterwards (namespaces, classes it created)."""
    cp = control_plane
    done = []

    def apply(name: str):
        docs = kustomize.build(REPO / "overlays" / name).docs
        a = apply_rendered(cp, docs)
        done.append(a)
        return a

    yield apply
    for a in done:
        for ns in a.namespaces:
            delete_namespace(cp, ns)
        for sc in a.storage_classes:
            cp.api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{sc}")
        for rc in a.runtime_classes:
            cp.api.delete(f"/apis/node.k8s.io/v1/runtimeclasses/{rc}")


def test_pending_shows_the_schedulers_message(control_plane, applied):
    cp = control_plane
    with fn.node_set(cp, [fn.EKS_G6E_12XLARGE]):
        applied("prod-70b")
        reasons = wait_pending_reason(cp, "prod-70b", SELECTOR)
        (message,) = reasons.values()
        assert "0/1 nodes are available" in message
        code, data = status_json(cp, "prod-70b")
        assert code == 1 and data["found"] and data["ready"] == 0 and not data["serving"]
        (pod,) = data["pods"]
        assert pod["state"] == "Pending" and pod["level"] == "fail"
        assert pod["why"] == f"unschedulable: {message}"
        assert data["claims"] == [{"name": "prod-70b-vllm-models", "phase": "Bound", "storage_class": "efs-sc",
                                   "capacity": "165Gi", "why": ""}]
        assert any(e["reason"] == "FailedScheduling" for e in data["events"]), data["events"]
        res = status(cp, "prod-70b")
        assert res.exit_code == 1 and "unschedulable: 0/1 nodes are available" in res.stdout, res.stdout
        assert "\x1b[" not in res.stdout and "0/1 ready" in res.stdout


def test_ready_init_oom_and_probes(control_plane, applied):
    cp = control_plane
    with fn.node_set(cp, [fn.K3S_1GPU]) as nodes:
        applied("dev-8b")
        ns = "dev-8b"
        pod = wait_for("pod bound", lambda: (p := the_pod(cp, ns))["spec"].get("nodeName") and p, 30)
        assert pod["spec"]["nodeName"] == nodes.names[0]
        # The download waits for the forgotten Secret.
        patch_status(cp, pod, {"phase": "Pending", "initContainerStatuses": [container("download-weights", False, {
            "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}})]})
        _, data = status_json(cp, ns)
        assert data["pods"][0]["state"] == "Init:CreateContainerConfigError"
        assert data["pods"][0]["why"] == 'download-weights: CreateContainerConfigError: secret "hf-token" not found'
        # Downloading.
        patch_status(cp, pod, {"initContainerStatuses": [container("download-weights", False, {"running": {"startedAt": now()}})]})
        _, data = status_json(cp, ns)
        assert data["pods"][0]["state"] == "Init:0/1" and data["pods"][0]["why"].startswith("download-weights running for ")
        # Loading: the startup probe has not passed; the kubelet reported failures.
        done = container("download-weights", False, {"terminated": {"exitCode": 0, "reason": "Completed"}})
        patch_status(cp, pod, {"phase": "Running", "initContainerStatuses": [done], "containerStatuses": [
            container("vllm", False, {"running": {"startedAt": now()}}, started=False)]})
        event(cp, pod, "Unhealthy", 'Startup probe failed: Get "http://10.0.0.5:8000/health": dial tcp 10.0.0.5:8000: connect: connection refused', 4)
        _, data = status_json(cp, ns)
        assert data["pods"][0]["state"] == "Starting"
        assert "startup probe failed 4x: Startup probe failed: Get" in data["pods"][0]["why"], data["pods"][0]
        # OOMKilled, restarted, crash-looping.
        patch_status(cp, pod, {"containerStatuses": [container("vllm", False, {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                                                               restartCount=3, lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": now()}})]})
        _, data = status_json(cp, ns)
        p = data["pods"][0]
        assert p["state"] == "CrashLoopBackOff" and p["restarts"] == 3 and p["level"] == "fail"
        assert "(last exit 137: OOMKilled)" in p["why"] and "3 restart(s)" in p["why"], p
        # Ready, as a kubelet reports it; the Deployment controller counts it.
        patch_status(cp, pod, {"phase": "Running", "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now()} for t in ("Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [container("vllm", True, {"running": {"startedAt": now()}}, started=True, restartCount=3,
                                            lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": now()}})]})
        wait_for("Deployment ready", lambda: cp.api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/dev-8b-vllm")
                 .get("status", {}).get("readyReplicas") == 1, 30)
        cp.api.patch(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/dev-8b-vllm/status", {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": "ScaledObject is defined correctly and is ready for scaling"},
            {"type": "Active", "status": "False", "reason": "ScalerNotActive", "message": "Scaling is not performed because triggers are not active"},
            {"type": "Fallback", "status": "False", "reason": "NoFallbackFound", "message": "No fallbacks are active on this scaled object"}]}})
        code, data = status_json(cp, ns)
        assert code == 0 and data["serving"] and (data["ready"], data["desired"], data["updated"]) == (1, 1, 1)
        p = data["pods"][0]
        assert p["state"] == "Running" and p["ready"] == "1/1" and p["level"] == "warn" and "OOMKilled" in p["why"]
        (so,) = data["scaling"]
        assert (so["ready"], so["active"], so["fallback"], so["message"]) == ("True", "False", "False", "")
        assert so["queue"].startswith("unknown (Prometheus not reachable through the API server")
        assert any(e["reason"] == "Unhealthy" and e["count"] == 4 for e in data["events"]), data["events"]
        # The queue, from a Prometheus that answers (here a stand-in on loopback).
        with fake_prometheus(value="7") as (url, seen):
            code, data = status_json(cp, ns, "--prometheus-url", url)
        assert data["scaling"][0]["queue"] == "7"
        assert seen == ['sum(vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct", namespace="dev-8b"})']
        # Text on a terminal has colours; piped it has none.
        out = on_a_tty([sys.executable, "-m", "compose", "status", ns, "--kubeconfig", str(cp.kubeconfig), "--no-logs"])
        assert "\x1b[" in out and "dev-8b-vllm" in out
        piped = status(cp, ns).stdout
        assert "\x1b[" not in piped and "1/1 ready" in piped and "recent Warning events" in piped
        # --watch refreshes until Ctrl-C, which exits 0.
        proc = subprocess.Popen([sys.executable, "-m", "compose", "status", ns, "--kubeconfig", str(cp.kubeconfig),
                                 "--no-logs", "--watch", "--interval", "0.3"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            seen_frames = 0
            deadline = time.monotonic() + 60
            while seen_frames < 2 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                seen_frames += "Ctrl-C to stop" in line
            assert seen_frames >= 2
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0 and "Traceback" not in err, err


def test_all_and_bad_input(control_plane):
    res = status(control_plane, "--all", "--format", "json")
    data = json.loads(res.stdout)
    assert sorted(d["overlay"] for d in data) == ["dev-8b", "prod-70b"] and res.exit_code in (0, 1)
    res = status(control_plane, "prod-70b", "--all")
    assert res.exit_code == 2 and "name one overlay or pass --all" in res.stderr
    res = status(control_plane, "prod-70b", "--watch", "--format", "json")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1


def test_download_progress_from_the_log():
    """The download's last log line (hf redraws its progress bar with \\r). The
    test control plane has no kubelet to serve logs, so the read is stubbed."""
    log = ("downloading meta-llama/Llama-3.1-8B-Instruct@0e9e into /models/x\n"
           "Fetching 4 files:   0%|          | 0/4\rFetching 4 files:  50%|#####     | 2/4 [00:41<00:41]\r")

    class Logs:
        def text(self, path, timeout=None, **query):
            assert path.endswith("/pods/p/log") and query == {"container": "download-weights", "tailLines": 20}
            return log

    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "x", "containers": [{"name": "vllm"}],
                                                              "initContainers": [{"name": "download-weights"}]},
           "status": {"phase": "Pending", "initContainerStatuses": [{"name": "download-weights", "state": {"running": {"startedAt": now()}}}]}}
    row = lib._pod_row(Logs(), pod, [], datetime.now(timezone.utc), logs=True)  # type: ignore[arg-type]
    assert row.state == "Init:0/1" and row.why.endswith(": Fetching 4 files:  50%|#####     | 2/4 [00:41<00:41]"), row
    assert lib.progress_line("weights for x already in /models; skipping download\n") == "weights for x already in /models; skipping download"


# --------------------------------------------------------------------------- helpers


class fake_prometheus:
    """A loopback HTTP server answering /api/v1/query with one sample; records the queries."""

    def __init__(self, value: str):
        self.value = value
        self.seen: list[str] = []

    def __enter__(self):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                outer.seen += q.get("query", [])
                body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                                 "result": [{"metric": {}, "value": [time.time(), outer.value]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}", self.seen

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def on_a_tty(argv: list[str], timeout: float = 60) -> str:
    """Run argv with a pseudo-terminal as stdout; return what it printed."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(timeout=30)
    return out.decode(errors="replace")
