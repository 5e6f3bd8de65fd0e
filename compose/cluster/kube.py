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
import re
import signal
import subprocess
import threading
import time
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
LIST_BUDGET = 20  # one list may take as long as this many requests at --timeout
MAX_CREDENTIAL_FILE = 1024 * 1024  # bytes of a tokenFile, client certificate or key, CA bundle
MAX_EXEC_BYTES = 1024 * 1024  # bytes an exec credential plugin may print
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
# RFC 3339 with a zone, as the API server writes every timestamp (metav1.Time)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
# Fields without which an object of the model is not one (the API server always sends them).
_REQUIRED = {"V1Container": ("name",), "V1ContainerStatus": ("name",), "V1ObjectMeta": ()}
# Resource maps whose values the scheduling maths parses as quantities.
_QUANTITY_MAPS = frozenset({"allocatable", "capacity", "requests", "limits", "overhead"})
# Built-in collections whose objects always carry metadata.namespace.
_NAMESPACED = frozenset({"pods", "events", "persistentvolumeclaims", "secrets", "services", "configmaps",
                         "daemonsets", "deployments", "replicasets", "poddisruptionbudgets", "networkpolicies"})


def _collection(path: str) -> str | None:
    """The built-in collection a request path lists or reads (/api/v1/namespaces/x/pods -> pods)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] if 1 <= len(rest) <= 2 else None


def _model_for(path: str) -> str | None:
    """The client model of the objects at a request path (/api/v1/namespaces/x/pods -> V1Pod)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    discovery = {("version",): "VersionInfo", ("api",): "V1APIVersions", ("apis",): "V1APIGroupList"}
    if tuple(parts) in discovery:
        return discovery[tuple(parts)]
    if parts[:1] == ["api"] and len(parts) == 2 or parts[:1] == ["apis"] and len(parts) == 3:
        return "V1APIResourceList"  # /api/v1, /apis/<group>/<version>
    collection = _collection(path)  # None: not a collection or an object (a subresource)
    if collection == "events" and parts[1:2] == ["events.k8s.io"]:
        return "EventsV1Event"
    return _MODELS.get(collection) if collection else None


def _drop_nulls(obj: dict) -> None:
    for key in [k for k, v in obj.items() if v is None]:
        del obj[key]


@functools.lru_cache(maxsize=None)
def _json_fields(cls: type) -> dict[str, str]:
    """A client model's fields by their JSON name, with the type each holds."""
    return {json_name: cls.openapi_types[attr] for attr, json_name in cls.attribute_map.items()}


def malformed(doc: dict, path: str = "") -> str | None:
    """The first place where `doc` breaks the JSON types Kubernetes gives its fields, or None.

    A list's items and a single object are checked against the client's model of the
    resource at `path` (built-in kinds; discovery documents; custom resources by the API
    conventions: standard metadata, spec and status objects, metav1 conditions), with
    timestamps in RFC 3339, resource maps as quantities and the names a container needs.
    A `null` field means the field is unset, as the API server treats it: it is removed
    from `doc` (in place), so `.get(field, default)` gives the default. A real API server
    never fails this; a broken or hostile one gets one finding line instead of an
    exception deep inside a check. Iterative: an answer nested as deep as json.loads
    allows cannot overflow the stack."""
    import kubernetes.client as models

    from compose.cluster import quantity

    model = _model_for(path) or "_Custom"
    stack: list[tuple[str, Any, str]] = (
        [("items", doc["items"], f"List[{model}]")] if "items" in doc else [("", doc, model)])
    walked = 0
    while stack:
        where, value, typ = stack.pop()
        walked += 1
        if walked > _MAX_VALUES:
            return "more values than an API answer holds"
        if value is None:  # fields that are null were dropped: this is an element of a list
            return f"{where} is null"
        if typ == "object" or typ in _NOT_WALKED:
            continue
        if typ in _PRIMITIVES:
            if not isinstance(value, _PRIMITIVES[typ]) or (typ != "bool" and isinstance(value, bool)):
                what = "a string" if _PRIMITIVES[typ] == (str,) else "an integer" if typ == "int" else f"a {typ}"
                return f"{where} is not {what}"
            if typ == "datetime" and not _TIMESTAMP.fullmatch(value):
                return f"{where} is not an RFC 3339 time with a zone"
            continue
        if typ[:5] in ("List[", "list["):
            if not isinstance(value, list):
                return f"{where} is not a list"
            stack.extend((f"{where}[{i}]", v, typ[5:-1]) for i, v in enumerate(value))
            continue
        if typ[:5] in ("Dict[", "dict("):
            if not isinstance(value, dict):
                return f"{where} is not an object"
            _drop_nulls(value)
            inner = typ[typ.index(",") + 1:-1].strip()
            if where.rsplit(".", 1)[-1] in _QUANTITY_MAPS:
                for k, v in value.items():
                    try:
                        quantity.parse(v if isinstance(v, str) else None)
                    except ValueError:
                        return f"{where}.{k} is not a Kubernetes quantity"
            stack.extend((f"{where}.{k}", v, inner) for k, v in value.items())
            continue
        cls = None if typ == "_Custom" else getattr(models, typ, None)
        if cls is None and typ != "_Custom":
            continue  # a type this client does not model: nothing to hold it to
        if not isinstance(value, dict):
            return f"{where or 'the answer'} is not an object"
        _drop_nulls(value)
        if cls is None:  # a custom resource: standard metadata; spec, status and conditions by API convention
            prefix = f"{where}." if where else ""
            for key, convention in (("metadata", "V1ObjectMeta"), ("spec", "Dict[str, object]"),
                                    ("status", "Dict[str, object]")):
                if key in value:
                    stack.append((f"{prefix}{key}", value[key], convention))
            status = value.get("status")
            if isinstance(status, dict) and status.get("conditions") is not None:
                stack.append((f"{prefix}status.conditions", status["conditions"], "List[V1Condition]"))
            continue
        fields = _json_fields(cls)
        missing = [f for f in _REQUIRED.get(typ, ()) if f not in value]
        if missing:
            return f"{where + '.' if where else ''}{missing[0]} is missing"
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
        namespaced = _collection(path) in _NAMESPACED
        # a list may take many pages, but not longer than LIST_BUDGET requests' worth of time:
        # a server that answers each page just inside --timeout cannot keep a command for hours
        ends = time.monotonic() + LIST_BUDGET * sum(self.timeout)
        for page_number in range(1, MAX_PAGES + 1):
            if page_number > 1 and time.monotonic() > ends:
                raise ClusterApiError(f"GET {path}: still paging after {page_number - 1} pages and "
                                      f"{LIST_BUDGET * sum(self.timeout):g}s; the list never ends", 200, path)
            page = self.get(path, limit=PAGE_SIZE, **query, **({"continue": token} if token else {}))
            items = page.get("items") or []
            for item in items:  # malformed() has checked the types a client model knows
                meta = item.get("metadata") if isinstance(item, dict) else None
                lacks = ("metadata.name" if not isinstance((meta or {}).get("name"), str) else
                         "metadata.namespace" if namespaced and not isinstance(meta.get("namespace"), str) else None)
                if lacks:
                    raise ClusterApiError(f"GET {path}: the API server answered a malformed object (an item "
                                          f"without {lacks})", 200, path)
                yield item
            meta = page.get("metadata")
            token = meta.get("continue") if isinstance(meta, dict) else None
            if not token:
                return
            if not isinstance(token, str):
                raise ClusterApiError(f"GET {path}: the API server answered a malformed object (metadata.continue "
                                      "is not a string)", 200, path)
            if token in seen:
                raise ClusterApiError(f"GET {path}: the API server repeated a continue token; the list never ends", 200, path)
            seen.add(token)
        raise ClusterApiError(f"GET {path}: more than {MAX_PAGES} pages; the list never ends", 200, path)

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
        text = redact_credentials(redact_url(" ".join(str(reason).split())))
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
    """`url` without a user:password@ part or a query string, either of which may carry a secret."""
    url = re.sub(r"(?<=//)[^/@\s]*@", "***@", str(url), count=1)
    return re.sub(r"\?[^\s]*", "?***", url, count=1)


def redact_credentials(text: str) -> str:
    """`text` (an HTTP library's error) without the credentials it may quote: an Authorization
    header's value, and the header value urllib3 refuses (a token ending in a line break)."""
    text = re.sub(r"Invalid header value b?(['\"]).*?\1", "Invalid header value (redacted)", text)
    return re.sub(r"(?i)\b(bearer|basic)\s+[^\s'\",;)]+", r"\1 ***", text)


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


# --------------------------------------------------------------------------- the client's side doors
#
# The kubernetes client reads files the kubeconfig names, writes embedded keys to temp files
# and runs exec credential plugins, each without a bound. These replacements keep the
# promises of this module: nothing written to disk, nothing read or run without a limit.

_MEMFDS: dict[bytes, int] = {}
_EXEC_SECONDS = [sum(DEFAULT_TIMEOUT)]  # set by connect(): how long an exec plugin may take


def _in_memory_file(content, temp_file_path=None, force_recreate=False) -> str:
    """For the client's `_create_temp_file_with_content`: certificate, key and CA data
    go to an anonymous in-memory file (memfd), opened by path through /proc/self/fd, so
    a private key never touches the disk, and vanishes with the process even on SIGKILL."""
    data = content.encode() if isinstance(content, str) else bytes(content)
    if data not in _MEMFDS or force_recreate:
        fd = os.memfd_create("compose-kubeconfig-data", os.MFD_CLOEXEC)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        _MEMFDS[data] = fd
    return f"/proc/self/fd/{_MEMFDS[data]}"


_EXEC_FAILURES: list[str] = []  # the client logs an exec plugin's failure and goes on without a token


def _bounded_exec_run(provider, previous_response=None):
    """For the client's `ExecProvider.run`: the same ExecCredential exchange (client-go's
    exec plugin protocol), non-interactive, with the plugin's time and output bounded and
    its whole process group killed past either bound."""
    from kubernetes.config.config_exception import ConfigException

    try:
        return _exec_credential(provider, previous_response)
    except ConfigException as err:
        _EXEC_FAILURES.append(str(err))
        raise


def _exec_credential(provider, previous_response):
    import selectors

    from kubernetes.config.config_exception import ConfigException

    spec: dict[str, Any] = {"interactive": False}
    if previous_response:
        spec["response"] = previous_response
    cluster = getattr(provider, "cluster", None)
    if cluster:
        spec["cluster"] = dict(cluster.value)
        ext = next((e for e in cluster.value.get("extensions") or []
                    if isinstance(e, dict) and e.get("name") == "client.authentication.k8s.io/exec"), None)
        if ext:
            spec["cluster"]["config"] = ext.get("extension")
    env = dict(provider.env, KUBERNETES_EXEC_INFO=json.dumps(
        {"apiVersion": provider.api_version, "kind": "ExecCredential", "spec": spec}))
    name = str(provider.args[0] if isinstance(provider.args, list) else provider.args)[:80]
    try:
        proc = subprocess.Popen(provider.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=provider.cwd, env=env, shell=provider.shell,
                                start_new_session=True)
    except OSError as err:
        raise ConfigException(f"exec: cannot run the credential plugin {name}: {err.strerror or err}") from None
    seconds = _EXEC_SECONDS[0]
    out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    ends = time.monotonic() + seconds
    problem = None
    with selectors.DefaultSelector() as sel:
        for stream in out:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map() and problem is None:
            left = ends - time.monotonic()
            if left <= 0:
                problem = f"exec: the credential plugin {name} did not finish within {seconds:g}s"
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                out[key.fileobj] += chunk
                if len(out[key.fileobj]) > MAX_EXEC_BYTES:
                    problem = f"exec: the credential plugin {name} printed more than {MAX_EXEC_BYTES // 2**20} MiB"
                    break
    try:
        code = proc.wait(timeout=max(ends - time.monotonic(), 0.1)) if problem is None else None
    except subprocess.TimeoutExpired:
        problem = f"exec: the credential plugin {name} did not finish within {seconds:g}s"
    if problem is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
    for stream in out:
        stream.close()
    if problem is not None:
        raise ConfigException(problem)
    stdout, stderr = (bytes(out[s]).decode("utf-8", "replace") for s in (proc.stdout, proc.stderr))
    if code != 0:
        said = " ".join(stderr.split())[:300]
        raise ConfigException(f"exec: the credential plugin {name} exited {code}" + (f": {said}" if said else ""))
    try:
        data = json.loads(stdout)
    except ValueError:
        raise ConfigException(f"exec: the credential plugin {name} printed something that is not JSON") from None
    if not isinstance(data, dict) or any(k not in data for k in ("apiVersion", "kind", "status")):
        raise ConfigException(f"exec: the credential plugin {name} printed no ExecCredential (apiVersion, kind, status)")
    if data["apiVersion"] != provider.api_version:
        raise ConfigException(f"exec: the plugin's apiVersion {str(data['apiVersion'])[:60]} is not "
                              f"{provider.api_version}, the one the kubeconfig asks for")
    return data["status"]


def _credential_files(paths: list[Path], context: str) -> list[tuple[str, Path]]:
    """(where, file) for each file the context's user and cluster name (tokenFile,
    client-certificate, client-key, certificate-authority), relative paths resolved
    against the kubeconfig that defines the entry, the first definition winning."""
    from compose.core import yamlio

    docs = []
    for path in paths:
        loaded = yamlio.load_all(yamlio.read_text(path, f"kubeconfig {path}"), f"kubeconfig {path}")
        docs.append((path, loaded[0] if loaded and isinstance(loaded[0], dict) else {}))

    def entry(kind: str, name: object) -> tuple[Path, dict] | None:
        for path, doc in docs:
            for item in doc.get(kind) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    body = item.get(kind[:-1])
                    return (path, body) if isinstance(body, dict) else None
        return None

    found = entry("contexts", context)
    if not found:
        return []
    out = []
    for kind, name, keys in (("users", found[1].get("user"), ("tokenFile", "client-certificate", "client-key")),
                             ("clusters", found[1].get("cluster"), ("certificate-authority",))):
        hit = entry(kind, name)
        if hit:
            path, body = hit
            for key in keys:
                value = body.get(key)
                if isinstance(value, str) and value:
                    out.append((f"{kind}[{name}].{key}", (path.parent / value).expanduser()))
    return out


def _check_credential_files(paths: list[Path], context: str) -> None:
    import stat

    for where, file in _credential_files(paths, context):
        try:
            st = file.stat()
        except OSError as err:
            raise InvalidInput(f"kubeconfig: {where} {_short(str(file))}: {err.strerror or err}") from None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"kubeconfig: {where} {_short(str(file))} is not a regular file (a directory, a FIFO "
                               "or a device); point it at the file itself")
        if st.st_size > MAX_CREDENTIAL_FILE:
            raise InvalidInput(f"kubeconfig: {where} {_short(str(file))} is {st.st_size:,} bytes, more than "
                               f"{MAX_CREDENTIAL_FILE // 2**20} MiB; point it at the credential file itself")


def _check_token(cfg: Any, where: str) -> None:
    for value in (getattr(cfg, "api_key", None) or {}).values():
        if isinstance(value, str) and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise InvalidInput(f"{where}: the user's token holds a line break or another control character "
                               "(a `token: |` block, or a tokenFile saved with CRLF line endings?); remove it "
                               "from users[].user.token or the token file")


def connect(kubeconfig: str | Path | None = None, context: str | None = None,
            timeout: tuple[float, float] = DEFAULT_TIMEOUT, check: bool = True) -> Cluster:
    """A read-only Cluster for the resolved kubeconfig and context. With `check`,
    GET /version first, so an unreachable cluster is one ClusterUnreachable."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ClientMissing(INSTALL_HINT) from None

    from kubernetes.config import exec_provider, kube_config

    _quiet_client_logs()
    if hasattr(os, "memfd_create"):
        kube_config._create_temp_file_with_content = _in_memory_file
    exec_provider.ExecProvider.run = _bounded_exec_run
    _EXEC_SECONDS[0] = sum(timeout)
    _EXEC_FAILURES.clear()
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
            _check_credential_files(paths, chosen)
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
    if _EXEC_FAILURES:  # kubectl stops here too
        raise InvalidInput(f"kubeconfig {joined}: {_EXEC_FAILURES[-1]}; fix users[].user.exec or run the plugin by hand")
    _check_token(cfg, f"kubeconfig {joined or '(in-cluster)'}")
    import urllib3

    # one retry on a dropped connection; no retry on a status, and no sleeping for the
    # server's Retry-After (a 503 saying "in an hour" is a finding, not a wait)
    cfg.retries = urllib3.Retry(total=1, status=0, respect_retry_after_header=False)
    import warnings

    if not cfg.verify_ssl:  # the kubeconfig's choice; said once in the report's header, not per request
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        source += " (TLS not verified: insecure-skip-tls-verify)"
    try:
        with warnings.catch_warnings():  # urllib3 warns before it fails; the error line says it all
            warnings.simplefilter("ignore")
            api = client.ApiClient(cfg)
    except ImportError as err:  # a socks5:// proxy-url without PySocks
        raise InvalidInput(f"kubeconfig {joined}: proxy-url {_short(redact_url(str(cfg.proxy)))} needs a module that "
                           f"is not installed ({err.name or err}); pip install 'urllib3[socks]', or use an http:// "
                           "proxy") from None
    api.user_agent = "vllm-compose (read-only)"
    cluster = Cluster(api, Connection(cfg.host, chosen, source), timeout)
    if check:
        cluster.version()
    return cluster


__all__ = ["Cluster", "Connection", "connect", "kubeconfig_paths", "DEFAULT_TIMEOUT"]
