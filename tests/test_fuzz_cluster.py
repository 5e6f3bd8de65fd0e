"""`compose doctor` and `compose status` against an API server whose answers are mutated
(a seeded fuzzer with a fixed budget).

The answers are real: the session's control plane, with prod-70b applied over two fake
p5 nodes, is asked once by doctor and once by status, and every GET is recorded
(`kube.Cluster._get`, the one place bytes come in). Each example then replays those
answers with one value somewhere in one answer replaced by a value of another type
(null, a number, a bool, a string, a list, an object, a bidi control) or deleted, and
runs doctor or status on the replay. What must hold, whatever the server says:
exit 0 or 1 (a finding), or 2 with one line; never "internal error" (exit 3) or a
traceback. Its first run found three crashes in the API discovery documents doctor
reads (/apis/<group>/<version>: a resource entry that was not an object, a name that
was not a string); kube.malformed() now holds those, like every other answer, to the
kubernetes client's models before any check reads them.

VLLM_COMPOSE_API_FUZZ_EXAMPLES sets the budget (default 40, about 20 s) and
VLLM_COMPOSE_API_FUZZ_SEED the seed (fixed by default, so a failure names the example
that reproduces it; 900 examples over two seeds passed when it was written).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

import fakenodes as fn
from composer_helpers import run
from compose.cluster import kube
from compose.core import kustomize
from compose.core.errors import ClusterApiError
from conftest_cluster import REPO, apply_rendered, delete_namespace, wait_pods_scheduled

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("VLLM_COMPOSE_API_FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("VLLM_COMPOSE_API_FUZZ_SEED", "20261201"))
OVERLAY = "prod-70b"
SELECTOR = "app.kubernetes.io/name=vllm"
DELETE = object()
REPLACEMENTS: list[Any] = [None, 0, -1, 7.5, True, "", "x", "\u202e\x1b[2J", [], [1, "a"], {}, {"k": 1}, DELETE,
                           "2024-01-01T00:00:00", "9" * 5000, "Infinity", "1e999999999", "v1." + "9" * 5000]


def _key(path: str, query: dict) -> str:
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()) if v is not None)


@pytest.fixture(scope="module")
def recorded(control_plane, cluster_crds):
    """{request: answer bytes or the ClusterApiError it raised}, for doctor and status."""
    cp = control_plane
    answers: dict[str, bytes | ClusterApiError] = {}
    real_get = kube.Cluster._get

    def record(self, path, query, *args, **kwargs):
        try:
            data = real_get(self, path, query, *args, **kwargs)
        except ClusterApiError as err:
            answers[_key(path, query)] = err
            raise
        answers[_key(path, query)] = data
        return data

    # another test's prod-70b may still be terminating: the overlay's namespace is the same
    delete_namespace(cp, OVERLAY, wait=True)
    with fn.node_set(cp, [fn.in_zone(fn.EKS_P5_48XLARGE, 0), fn.in_zone(fn.EKS_P5_48XLARGE, 1)]):
        applied = apply_rendered(cp, kustomize.build(REPO / "overlays" / OVERLAY).docs)
        try:
            wait_pods_scheduled(cp, OVERLAY, SELECTOR, 1)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(kube.Cluster, "_get", record)
                for command in ("doctor", "status"):
                    res = run(command, OVERLAY, "--kubeconfig", str(cp.kubeconfig), *_extra(command), repo=REPO)
                    assert res.exit_code in (0, 1) and "internal error" not in res.output, res.output
        finally:
            for ns in applied.namespaces:
                delete_namespace(cp, ns, wait=True)
            for sc in applied.storage_classes:
                cp.api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{sc}")
    json_answers = [k for k, v in answers.items() if isinstance(v, bytes) and v[:1] == b"{"]
    assert len(json_answers) >= 15, sorted(answers)  # doctor and status read that much of a cluster
    return answers


def _extra(command: str) -> tuple[str, ...]:
    return ("--no-logs",) if command == "status" else ()


def _places(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON document, iteratively."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            out.append((node, k))
            stack.append(v)
    return out


def _mutate(answers: dict, rng: random.Random) -> tuple[dict, str]:
    keys = sorted(k for k, v in answers.items() if isinstance(v, bytes) and v[:1] == b"{")
    key = rng.choice(keys)
    doc = json.loads(answers[key])
    places = _places(doc)
    container, where = rng.choice(places)
    new = rng.choice(REPLACEMENTS)
    if new is DELETE:
        if isinstance(container, dict):
            del container[where]
        else:
            container.pop(where)
        what = f"deleted [{where!r}]"
    else:
        container[where] = new
        what = f"[{where!r}] = {new!r}"
    return {**answers, key: json.dumps(doc).encode()}, f"{key}: {what}"


def _replay(monkeypatch, answers: dict) -> None:
    def replay(self, path, query, *args, **kwargs):
        self.requests.append(("GET", path))
        got = answers.get(_key(path, query))
        if got is None:  # a request the recorded run did not make
            raise kube.NotFound(f"GET {path}: not found (not recorded)", 404, path)
        if isinstance(got, ClusterApiError):
            raise type(got)(str(got), got.status, got.path)
        return got

    monkeypatch.setattr(kube.Cluster, "_get", replay)


def _survived(cp, command: str) -> tuple[bool, Any]:
    res = run(command, OVERLAY, "--kubeconfig", str(cp.kubeconfig), *_extra(command), repo=REPO)
    bad = ("internal error" in res.output or "Traceback" in res.output or res.exit_code not in (0, 1, 2)
           or (res.exit_code == 2 and len(res.stderr.strip().splitlines()) != 1))
    return not bad, res


def test_doctor_and_status_survive_every_mutated_answer(control_plane, recorded, monkeypatch):
    rng = random.Random(SEED)
    failures = []
    for example in range(EXAMPLES):
        answers, what = _mutate(recorded, rng)
        _replay(monkeypatch, answers)
        command = ("doctor", "status")[example % 2]
        ok, res = _survived(control_plane, command)
        if not ok:
            failures.append(f"example {example} ({command}, {what}): exit {res.exit_code}: {res.output[-300:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("fragment, mutate", [
    # custom resources: only their metadata has a client model; the rest follows API conventions
    ("/scaledobjects", lambda d: d.setdefault("status", {}).update(conditions="Ready")),
    ("/scaledobjects", lambda d: d.setdefault("status", {}).update(conditions=[1, None, {"type": 5}])),
    ("/scaledobjects", lambda d: d.update(status=[])),
    ("/scaledobjects", lambda d: d.update(spec={"triggers": "prometheus", "minReplicaCount": "2"})),
    ("/scaledobjects", lambda d: d.setdefault("status", {}).update(conditions=[{"type": "Ready", "status": True}])),
])
def test_custom_resources_of_the_wrong_shape(control_plane, recorded, monkeypatch, fragment,
                                     mutate):
    """A ScaledObject whose status.conditions is a string killed `status` (exit 3)."""
    keys = [k for k, v in recorded.items() if fragment in k and isinstance(v, bytes) and v[:1] == b"{"]
    assert keys, f"doctor/status did not read {fragment}"
    answers = dict(recorded)
    for key in keys:
        doc = json.loads(answers[key])
        mutate(doc)
        answers[key] = json.dumps(doc).encode()
    _replay(monkeypatch, answers)
    for command in ("doctor", "status"):
        ok, res = _survived(control_plane, command)
        assert ok, (command, res.exit_code, res.output[-400:])
