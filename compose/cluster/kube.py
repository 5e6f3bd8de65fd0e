"""Read-only access to a live cluster through the official `kubernetes` client.

`connect()` resolves the kubeconfig the way kubectl does: `--kubeconfig FILE`,
else `$KUBECONFIG` (a `:`-separated list, merged), else `~/.kube/config`, else
the in-cluster service account. It returns a `Cluster` that can only GET:
there is no method that sends anything else, every request carries a
timeout, and every request is recorded in `Cluster.requests` (the tests audit
it). Objects come back as the API's own JSON (dicts with camelCase keys), which
is what the scheduling filters in `scheduling.py` read.

Errors: a cluster that does not answer (refused, timeout, TLS, 401) raises
`ClusterUnreachable` (exit 2 at the CLI edge); an error status on one read raises
`NotFound` (404), `Forbidden` (403) or `ClusterApiError`, which the checks turn
into findings. An answer that breaks the JSON types of the kubernetes client's
model of the resource (a pod without metadata, labels as a list, conditions as a
string) is a `ClusterApiError` too (`malformed()`), so no check ever reads a field
of the wrong type.

The `kubernetes` package is an optional extra (`pip install 'vllm-compose[cluster]'`);
it is imported here, inside `connect()`, and nowhere else, so the offline commands
never load it.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from compose.core.errors import (
    ClientMissing,
    ClusterApiError,
    ClusterUnreachable,
    Forbidden,
    InvalidInput,
    NotFound,
)

# (connect, read) seconds for every request.
DEFAULT_TIMEOUT = (5.0, 30.0)
PAGE_SIZE = 500
MAX_PAGES = 2000  # 1,000,000 objects per collection; a server that keeps paging past that is broken
MAX_KUBECONFIG = 1024 * 1024  # bytes of one kubeconfig file; real ones are kilobytes
MAX_ENTRIES = 1000  # clusters, contexts or users in one kubeconfig
MAX_BODY = 128 * 1024 * 1024  # bytes of one answer; more is not an API server talking
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
INSTALL_HINT = "the Kubernetes client is not installed: pip install 'vllm-compose[cluster]' (or pip install kubernetes)"


# Built-in resources by the collection name in a request path, and the kubernetes client's
# model of each: its `openapi_types` are the JSON types the API server gives every field.
_MODELS = {
    "pods": "V1Pod", "nodes": "V1Node", "namespaces": "V1Namespace", "events": "CoreV1Event",
    "persistentvolumeclaims": "V1PersistentVolumeClaim", "persistentvolumes": "V1PersistentVolume",
    "secrets": "V1Secret", "services": "V1Service", "configmaps": "V1ConfigMap",
    "storageclasses": "V1StorageClass", "runtimeclasses": "V1RuntimeClass", "daemonsets": "V1DaemonSet",
    "deployments": "V1Deployment", "replicasets": "V1ReplicaSet", "poddisruptionbudgets": "V1PodDisruptionBudget",
    "networkpolicies": "V1NetworkPolicy", "customresourcedefinitions": "V1CustomResourceDefinition",
}
# Large and never read: CRD schemas, managedFields, a node's list of cached images.
_NOT_WALKED = frozenset({"V1CustomResourceValidation", "V1ManagedFieldsEntry", "V1ContainerImage"})
_MAX_VALUES = 5_000_000  # JSON values walked in one answer (128 MiB holds fewer)
_PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "datetime": (str,),
               "date": (str,), "bytes": (str,)}  # bytes travel base64-encoded


def _model_for(path: str) -> str | None:
    """The client model of the objects at a request path (/api/v1/namespaces/x/pods -> V1Pod)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    discovery = {("version",): "VersionInfo", ("api",): "V1APIVersions", ("apis",): "V1APIGroupList"}
    if tuple(parts) in discovery:
        return discovery[tuple(parts)]
    if parts[:1] == ["api"] and len(parts) == 2 or parts[:1] == ["apis"] and len(parts) == 3:
        return "V1APIResourceList"  # /api/v1, /apis/<group>/<version>
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest or len(rest) > 2:  # not a collection or an object (discovery, a subresource)
        return None
    if rest[0] == "events" and parts[1:2] == ["events.k8s.io"]:
        return "EventsV1Event"
    return _MODELS.get(rest[0])


@functools.lru_cache(maxsize=None)
def _json_fields(cls: type) -> dict[str, str]:
    """A client model's fields by their JSON name, with the type each holds."""
    return {json_name: cls.openapi_types[attr] for attr, json_name in cls.attribute_map.items()}


def malformed(doc: dict, path: str = "") -> str | None:
    """The first place where `doc` breaks the JSON types Kubernetes gives its fields, or None.

    A list's items and a single object are checked against the client's model of the
    resource at `path` (built-in kinds), or only their metadata (custom resources); a
    real API server never fails this, a broken or hostile one gets one finding line
    instead of an AttributeError deep inside a check. Iterative: an answer nested as
    deep as json.loads allows cannot overflow the stack."""
    import kubernetes.client as models

    model = _model_for(path) or "_Custom"
    stack: list[tuple[str, Any, str]] = (
        [("items", doc["items"], f"List[{model}]")] if "items" in doc else [("", doc, model)])
    walked = 0
    while stack:
        where, value, typ = stack.pop()
        walked += 1
        if walked > _MAX_VALUES:
            return "more values than an API answer holds"
        if value is None or typ == "object" or typ in _NOT_WALKED:
            continue
        if typ in _PRIMITIVES:
            if not isinstance(value, _PRIMITIVES[typ]) or (typ != "bool" and isinstance(value, bool)):
                what = "a string" if _PRIMITIVES[typ] == (str,) else "an integer" if typ == "int" else f"a {typ}"
                return f"{where} is not {what}"
            continue
        if typ[:5] in ("List[", "list["):
            if not isinstance(value, list):
                return f"{where} is not a list"
            stack.extend((f"{where}[{i}]", v, typ[5:-1]) for i, v in enumerate(value))
            continue
        if typ[:5] in ("Dict[", "dict("):
            if not isinstance(value, dict):
                return f"{where} is not an object"
            inner = typ[typ.index(",") + 1:-1].strip()
            stack.extend((f"{where}.{k}", v, inner) for k, v in value.items())
            continue
        cls = None if typ == "_Custom" else getattr(models, typ, None)
        if cls is None and typ != "_Custom":
            continue  # a type this client does not model: nothing to hold it to
        if not isinstance(value, dict):
            return f"{where or 'the answer'} is not an object"
        if cls is None:  # a custom resource: standard metadata; spec, status and conditions by API convention
            prefix = f"{where}." if where else ""
            stack.append((f"{prefix}metadata", value.get("metadata"), "V1ObjectMeta"))
            stack.append((f"{prefix}spec", value.get("spec"), "Dict[str, object]"))
            status = value.get("status")
            stack.append((f"{prefix}status", status, "Dict[str, object]"))
            if isinstance(status, dict):
                stack.append((f"{prefix}status.conditions", status.get("conditions"), "List[V1Condition]"))
            continue
        fields = _json_fields(cls)
        for key, v in value.items():
            if key in fields:
                stack.append((f"{where}.{key}" if where else key, v, fields[key]))
    return None


@dataclass(frozen=True)
class Connection:
    """Where the requests go, for the report header."""

    server: str
    context: str | None  # None in-cluster
    source: str  # "kubeconfig /path[:/path]" or "in-cluster service account"


@dataclass
class Cluster:
    """A read-only view of one cluster. Every method is a GET."""

    api: Any  # kubernetes.client.ApiClient
    connection: Connection
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), for audits
    _version: dict | None = None

    # ------------------------------------------------------------------ reads

    def get(self, path: str, **query: Any) -> dict:
        """The JSON object at `path`; NotFound, Forbidden, ClusterApiError or ClusterUnreachable."""
        body = self._get(path, query)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise ClusterApiError(f"GET {path}: the API server answered something that is not JSON", 200, path) from None
        if not isinstance(doc, dict):
            raise ClusterApiError(f"GET {path}: the API server answered JSON that is not an object", 200, path)
        problem = malformed(doc, path)
        if problem:
            raise ClusterApiError(f"GET {path}: the API server answered a malformed object ({problem})", 200, path)
        return doc

    def find(self, path: str, **query: Any) -> dict | None:
        """Like get(), but None when the object does not exist."""
        try:
            return self.get(path, **query)
        except NotFound:
            return None

    def list(self, path: str, **query: Any) -> list[dict]:
        """Every item of a collection, following `continue` tokens."""
        return list(self.iter(path, **query))

    def iter(self, path: str, **query: Any) -> Iterator[dict]:
        token, seen = None, set()
        for _ in range(MAX_PAGES):
            page = self.get(path, limit=PAGE_SIZE, **query, **({"continue": token} if token else {}))
            items = page.get("items") or []
            for item in items:  # malformed() has checked the types a client model knows
                if not isinstance(item, dict) or not isinstance((item.get("metadata") or {}).get("name"), str):
                    raise ClusterApiError(f"GET {path}: the API server answered a malformed object (an item "
                                          "without metadata.name)", 200, path)
                yield item
            meta = page.get("metadata")
            token = meta.get("continue") if isinstance(meta, dict) else None
            if not token:
                return
            if not isinstance(token, str) or token in seen:
                raise ClusterApiError(f"GET {path}: the API server repeated a continue token; the list never ends", 200, path)
            seen.add(token)
        raise ClusterApiError(f"GET {path}: more than {MAX_PAGES} pages of {PAGE_SIZE}; the list never ends", 200, path)

    def text(self, path: str, timeout: tuple[float, float] | None = None, **query: Any) -> str:
        """A plain-text GET (container logs)."""
        return self._get(path, query, accept="text/plain", timeout=timeout).decode("utf-8", "replace")

    def version(self) -> dict:
        if self._version is None:
            self._version = self.get("/version")
        return self._version

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # pragma: no cover - best effort
            pass

    # ------------------------------------------------------------------ transport

    def _get(self, path: str, query: dict, accept: str = "application/json",
             timeout: tuple[float, float] | None = None) -> bytes:
        params = [(k, v) for k, v in query.items() if v is not None]
        self.requests.append(("GET", path))
        timeout = timeout or self.timeout
        try:
            with _deadline(sum(timeout)):  # a server that trickles bytes never resets it
                serialized = self.api.param_serialize(
                    method="GET", resource_path=path, query_params=params,
                    header_params={"Accept": accept}, auth_settings=["BearerToken"],
                )
                resp = self.api.call_api(*serialized, _request_timeout=timeout)
                data = _read_bounded(resp.response, path)
        except _DeadlinePassed:
            raise ClusterUnreachable(self._unreachable(TimeoutError(f"timed out: no full answer in {sum(timeout):g}s"))) from None
        except ClusterApiError:
            raise
        except (TypeError, AttributeError, KeyError, NameError):  # our bugs stay bugs
            raise
        except Exception as err:  # urllib3 / ssl / exec-plugin failures: nothing answered
            raise ClusterUnreachable(self._unreachable(err)) from None
        status = resp.status
        if 200 <= status < 300:
            return data
        message = _status_message(data) or f"HTTP {status}"
        if status == 401:
            raise ClusterUnreachable(
                f"the cluster at {redact_url(self.connection.server)} rejected the credentials of {self._where()} (401 {message}); "
                "log in again (e.g. aws eks update-kubeconfig, gcloud container clusters get-credentials, az aks get-credentials)"
            )
        if status == 404:
            raise NotFound(f"GET {path}: not found ({message})", status, path)
        if status == 403:
            raise Forbidden(f"GET {path}: forbidden: {message}", status, path)
        raise ClusterApiError(f"GET {path}: HTTP {status}: {message}", status, path)

    def _where(self) -> str:
        c = self.connection
        return f"context {c.context}" if c.context else c.source

    def _unreachable(self, err: Exception) -> str:
        reason = getattr(err, "reason", None) or err
        text = redact_url(" ".join(str(reason).split()))
        for needle, short in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                              ("Name or service not known", "host name not found"),
                              ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted")):
            if needle in text:
                text = short
                break
        return (f"cannot reach the cluster at {redact_url(self.connection.server)} ({self._where()}): {text[:200]}; "
                "check --context/--kubeconfig, the VPN or the API server's address")


class _DeadlinePassed(BaseException):
    """Raised by SIGALRM inside a request; BaseException so no library code swallows it."""


@contextmanager
def _deadline(seconds: float):
    """Bound one whole request (connect, headers, body) in wall-clock time. Per-socket
    timeouts alone do not: a server that sends a byte every few seconds never trips them.
    Only the main thread can take SIGALRM; elsewhere the socket timeouts are all there is."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum, frame):
        raise _DeadlinePassed()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _read_bounded(raw: Any, path: str) -> bytes:
    """The body of a urllib3 response, at most MAX_BODY bytes."""
    chunks, total = [], 0
    for chunk in raw.stream(1024 * 1024):
        total += len(chunk)
        if total > MAX_BODY:
            raw.release_conn()
            raise ClusterApiError(f"GET {path}: the API server answered more than {MAX_BODY // 2**20} MiB; "
                                  "check the server address in the kubeconfig", 200, path)
        chunks.append(chunk)
    return b"".join(chunks)


def _quiet_client_logs() -> None:
    """The client's exec-plugin code logs with logging.error(), which configures the root
    logger onto stderr, and urllib3 then logs every retry there too: the one-line promise
    needs the root logger to have a handler that prints nothing."""
    import logging

    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def redact_url(url: str) -> str:
    """`url` without a user:password@ part, which a kubeconfig's server may carry."""
    import re

    return re.sub(r"(?<=//)[^/@\s]*@", "***@", str(url), count=1)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status_message(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return " ".join(data.decode("utf-8", "replace").split())[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or "")
    return ""


# --------------------------------------------------------------------------- connecting


def kubeconfig_paths(kubeconfig: str | Path | None) -> tuple[list[Path], str]:
    """The kubeconfig files to merge, and where the list came from (kubectl's order)."""
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise InvalidInput(f"--kubeconfig {_short(str(kubeconfig))}: no such file; pass an existing kubeconfig "
                               "or set KUBECONFIG")
        return [path], "--kubeconfig"
    env = os.environ.get("KUBECONFIG")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        return [p for p in paths if p.is_file()], "$KUBECONFIG"
    default = Path("~/.kube/config").expanduser()
    return ([default] if default.is_file() else []), "~/.kube/config"


def first_current_context(paths: list[Path]) -> str | None:
    """kubectl's rule: the first file of the list that sets current-context wins
    (the Python client's merger would take the last)."""
    from compose.core import yamlio

    for path in paths:
        try:
            docs = yamlio.load_all(path.read_text(), f"kubeconfig {path}")
        except (OSError, UnicodeDecodeError, InvalidInput):
            continue
        doc = docs[0] if docs else None
        if isinstance(doc, dict) and doc.get("current-context"):
            return str(doc["current-context"])
    return None


def check_kubeconfigs(paths: list[Path]) -> None:
    """Each kubeconfig is at most MAX_KUBECONFIG bytes of YAML that is neither nested too
    deeply nor an alias bomb, checked with the C parser before the client's pure-Python
    loader sees it (a 5 MB file took 44 s per load; 5,000 nested brackets were exit 3)."""
    from compose.core import yamlio

    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as err:
            raise InvalidInput(f"kubeconfig {path}: cannot read it ({err.strerror or err})") from None
        if size > MAX_KUBECONFIG:
            raise InvalidInput(f"kubeconfig {path}: {size:,} bytes, more than {MAX_KUBECONFIG // 2**20} MiB; "
                               "pass a smaller file with --kubeconfig (kubectl config view --minify --flatten)")
        docs = yamlio.load_all(yamlio.read_text(path, f"kubeconfig {path}"), f"kubeconfig {path}")
        doc = docs[0] if docs else None
        for key in ("clusters", "contexts", "users"):
            entries = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
                # the client looks entries up by a linear scan each: 18,000 contexts took minutes
                raise InvalidInput(f"kubeconfig {path}: {len(entries):,} {key}, more than {MAX_ENTRIES}; pass a "
                                   "smaller file with --kubeconfig (kubectl config view --minify --flatten)")


def connect(kubeconfig: str | Path | None = None, context: str | None = None,
            timeout: tuple[float, float] = DEFAULT_TIMEOUT, check: bool = True) -> Cluster:
    """A read-only Cluster for the resolved kubeconfig and context. With `check`,
    GET /version first, so an unreachable cluster is one ClusterUnreachable."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ClientMissing(INSTALL_HINT) from None

    _quiet_client_logs()
    cfg = client.Configuration()
    paths, origin = kubeconfig_paths(kubeconfig)
    check_kubeconfigs(paths)
    joined = os.pathsep.join(str(p) for p in paths)
    try:
        if paths:
            contexts, _ = config.list_kube_config_contexts(config_file=joined)
            names = [c["name"] for c in contexts or []]
            chosen = context or first_current_context(paths)
            if context and context not in names:
                raise InvalidInput(f"--context {_short(context)}: no such context in {joined} "
                                   f"(have: {_short(', '.join(names) or 'none', 200)})")
            if not chosen:
                raise InvalidInput(f"{joined} sets no current-context: pass --context (have: {', '.join(names) or 'none'})")
            config.load_kube_config(config_file=joined, context=chosen, client_configuration=cfg, persist_config=False)
            source = f"kubeconfig {joined}"
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file():
            if context:
                raise InvalidInput("--context needs a kubeconfig; none found (running in-cluster)")
            config.load_incluster_config(client_configuration=cfg)
            chosen, source = None, "in-cluster service account"
        else:
            where = "the file given" if origin == "--kubeconfig" else (
                f"$KUBECONFIG={os.environ.get('KUBECONFIG')}" if origin == "$KUBECONFIG" else "~/.kube/config")
            raise InvalidInput(f"no kubeconfig found ({where}) and not running in a cluster: "
                               "pass --kubeconfig FILE or set KUBECONFIG")
    except ConfigException as err:
        raise InvalidInput(f"kubeconfig {joined or '(in-cluster)'}: {' '.join(str(err).split())}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:  # unreadable or malformed
        raise InvalidInput(f"kubeconfig {joined or '(in-cluster)'}: cannot load it: {_short(str(err), 300)}") from None
    except Exception as err:
        import yaml

        if not isinstance(err, yaml.YAMLError):
            raise
        raise InvalidInput(f"kubeconfig {joined}: malformed YAML ({_short(' '.join(str(err).split()), 300)})") from None
    server = str(cfg.host or "")
    from urllib.parse import urlsplit

    try:
        host_ok = urlsplit(server).scheme in ("http", "https") and bool(urlsplit(server).hostname)
    except ValueError:
        host_ok = False
    if not host_ok:
        raise InvalidInput(f"kubeconfig {joined or '(in-cluster)'}: the cluster server {_short(redact_url(server))!r} "
                           "is not an https:// URL; fix clusters[].cluster.server")
    cfg.retries = 1  # one retry on a dropped connection; no long back-off when nothing listens
    api = client.ApiClient(cfg)
    api.user_agent = "vllm-compose (read-only)"
    cluster = Cluster(api, Connection(cfg.host, chosen, source), timeout)
    if check:
        cluster.version()
    return cluster


__all__ = ["Cluster", "Connection", "connect", "kubeconfig_paths", "DEFAULT_TIMEOUT"]
