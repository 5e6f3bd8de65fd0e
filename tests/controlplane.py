"""A real Kubernetes v1.32 control plane on 127.0.0.1 for tests.

etcd + kube-apiserver + kube-scheduler + kube-controller-manager, each a child
process with its own free loopback port, certificates made with `openssl` in a
temporary directory, and an admin kubeconfig. There is no kubelet: pods are
scheduled (bound to a node) but never run. `fakenodes` adds Node objects that
look like cloud GPU nodes and keeps them Ready.

Binaries (the envtest convention, as controller-runtime's setup-envtest uses):

- `$KUBEBUILDER_ASSETS`: a directory with kube-apiserver, kube-scheduler and
  kube-controller-manager, used as they are;
- else `<repo>/../shared/envtest/<name>.xz` (or `$VLLM_COMPOSE_CRD_DIR/../envtest`),
  unpacked once into `${XDG_CACHE_HOME:-~/.cache}/vllm-compose/envtest/v1.32.13/`
  after checking the sha256 that `shared/envtest/README.md` lists;
- etcd: `$ETCD`, else `etcd` on PATH, else `/usr/bin/etcd` (Debian `etcd-server`).

`missing()` says in one line why the control plane cannot run here (None when
it can); the `control_plane` fixture in `conftest_cluster.py` skips with it.

Typical use (the fixture does this once per session):

    cp = ControlPlane.start()
    cp.kubectl("get", "nodes")
    cp.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}])
    cp.api.get("/api/v1/namespaces/x")
    cp.install_crds(Path("../shared/crds"))
    cp.stop()
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import http.client
import json
import lzma
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

REPO = Path(__file__).resolve().parents[1]
KUBE_VERSION = "v1.32.13"

# sha256 of the unpacked binaries, from shared/envtest/README.md.
SHA256 = {
    "kube-apiserver": "451ef4b59723139dafeb53480f65d72f039f20f37d56413f57498a865566fc7f",
    "kube-scheduler": "641246d04d5e5e5ec84790ac36c630191e956569ff98122973be38a49b84cc94",
    "kube-controller-manager": "c81b88db4ad9ae39e1d0052242354f1087b04779a22b13a3132e03dfd110018b",
}
COMPONENTS = tuple(SHA256)

HOW_TO = (
    "apt-get install etcd-server (as .ci/run does), and keep ../shared/envtest beside the "
    "repository or set KUBEBUILDER_ASSETS to a directory with kube-apiserver, kube-scheduler "
    "and kube-controller-manager v1.32"
)

START_TIMEOUT = 90.0  # generous: 2 cores, other test suites running beside us
STOP_TIMEOUT = 10.0
# The node-lifecycle controller marks a node NotReady when neither its Lease nor
# its Ready heartbeat moved for this long (default 50 s in 1.32). Shortened so a
# test can prove the heartbeat works; fakenodes renews every HEARTBEAT_SECONDS.
NODE_MONITOR_GRACE_SECONDS = 20
SERVICE_CIDR = "10.0.0.0/24"
FIELD_MANAGER = "vllm-compose-tests"

# libyaml when PyYAML has it: the CRDs in ../shared/crds (4 MB) load in 0.7 s instead of 5 s.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class Unavailable(RuntimeError):
    """The control plane cannot run on this machine; str() is one line saying how to fix it."""


class ChecksumMismatch(RuntimeError):
    """A shipped binary does not match the sha256 in shared/envtest/README.md."""


class StartFailed(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess):
        self.proc = proc
        self.stderr = proc.stderr
        super().__init__(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[:2000]}")


class ApiError(RuntimeError):
    """A non-2xx answer of the API server: `status` (HTTP code), `reason`, `message`, `body`."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        self.message = body.get("message", str(body)) if isinstance(body, dict) else str(body)
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message[:2000]}")


# --------------------------------------------------------------------------- binaries


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vllm-compose" / "envtest" / KUBE_VERSION


def shared_envtest_dirs() -> list[Path]:
    """Where the .xz binaries may be: ../shared/envtest beside the repo, or beside the CRD dir."""
    dirs = [REPO.parent / "shared" / "envtest"]
    crd = os.environ.get("VLLM_COMPOSE_CRD_DIR")
    if crd:
        dirs.append(Path(crd).resolve().parent / "envtest")
    return dirs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{SHA256[path.name]} {st.st_size} {st.st_mtime_ns} {st.st_ino}"


def _verified(path: Path) -> bool:
    """True when `path` was checked before (stamp file matches) or checks now."""
    stamp = path.with_name(f".{path.name}.verified")
    try:
        if stamp.read_text() == _stamp(path):
            return True
    except OSError:
        pass
    if _sha256(path) != SHA256[path.name]:
        return False
    _write_atomic(stamp, _stamp(path).encode())
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unpack(xz: Path, dest: Path) -> None:
    """xz -> temp file in dest's directory (hashing on the way), chmod +x, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, lzma.open(xz) as src:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != SHA256[dest.name]:
            raise ChecksumMismatch(
                f"{xz} unpacks to sha256 {h.hexdigest()}, not {SHA256[dest.name]} "
                "(shared/envtest/README.md): the file is damaged or was replaced"
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)  # atomic: a concurrent session sees the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _verified(dest)


def find_kube_binaries() -> dict[str, Path]:
    """{component: path}; raises Unavailable (one line) or ChecksumMismatch."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = {name: Path(assets) / name for name in COMPONENTS}
        missing = [n for n, p in found.items() if not os.access(p, os.X_OK)]
        if missing:
            raise Unavailable(
                f"control plane unavailable: {', '.join(missing)} not found (executable) in "
                f"KUBEBUILDER_ASSETS={assets}; point it at a directory with {', '.join(COMPONENTS)}"
            )
        return found
    cache = cache_dir()
    out: dict[str, Path] = {}
    for name in COMPONENTS:
        dest = cache / name
        if dest.is_file() and os.access(dest, os.X_OK) and _verified(dest):
            out[name] = dest
            continue
        xz = next((d / f"{name}.xz" for d in shared_envtest_dirs() if (d / f"{name}.xz").is_file()), None)
        if xz is None:
            where = " or ".join(str(d) for d in shared_envtest_dirs())
            raise Unavailable(f"control plane unavailable: {name}.xz not in {where}; {HOW_TO}")
        try:
            _unpack(xz, dest)
        except OSError as e:
            raise Unavailable(f"control plane unavailable: cannot unpack {xz} into {cache} ({e}); set XDG_CACHE_HOME or KUBEBUILDER_ASSETS") from e
        out[name] = dest
    return out


def find_etcd() -> Path:
    env = os.environ.get("ETCD")
    if env:
        if os.access(env, os.X_OK):
            return Path(env)
        raise Unavailable(f"control plane unavailable: ETCD={env} is not an executable; {HOW_TO}")
    for candidate in (shutil.which("etcd"), "/usr/bin/etcd"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise Unavailable(f"control plane unavailable: etcd not found; {HOW_TO}")


def find_tools() -> dict[str, Path]:
    """Every executable the control plane needs, or Unavailable."""
    tools: dict[str, Path] = {"etcd": find_etcd()}
    for tool in ("openssl", "kubectl"):
        path = shutil.which(tool)
        if path is None:
            raise Unavailable(f"control plane unavailable: {tool} not on PATH; install it ({HOW_TO})")
        tools[tool] = Path(path)
    tools.update(find_kube_binaries())
    return tools


def missing() -> str | None:
    """Why the control plane cannot run here (one line), or None. May unpack the binaries."""
    try:
        find_tools()
    except Unavailable as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM if pytest dies without cleaning up
    except Exception:
        pass


def make_certs(d: Path, openssl: str = "openssl") -> dict[str, Path]:
    """CA, API server serving cert (127.0.0.1/localhost), admin client cert
    (O=system:masters) and the service-account key pair, all EC P-256 (fast)."""
    d.mkdir(parents=True, exist_ok=True)
    p = {n: d / n for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")}

    def run(*args: str) -> None:
        proc = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise StartFailed(f"openssl {' '.join(args)}: {proc.stderr.strip()}")

    def key(path: Path) -> None:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))

    key(p["ca.key"])
    run("req", "-x509", "-new", "-key", str(p["ca.key"]), "-out", str(p["ca.crt"]), "-days", "30",
        "-subj", "/CN=vllm-compose-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth",
                      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
                      "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"),
        "admin": ("/O=system:masters/CN=vllm-compose-admin", "clientAuth", None),
    }
    for name, (subj, eku, san) in leaves.items():
        key(d / f"{name}.key")
        ext = d / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={eku}\n" + (f"{san}\n" if san else "")
        )
        csr = d / f"{name}.csr"
        run("req", "-new", "-key", str(d / f"{name}.key"), "-subj", subj, "-out", str(csr))
        run("x509", "-req", "-in", str(csr), "-CA", str(p["ca.crt"]), "-CAkey", str(p["ca.key"]),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(d / f"{name}.crt"))
    key(p["sa.key"])
    run("pkey", "-in", str(p["sa.key"]), "-pubout", "-out", str(p["sa.pub"]))
    return p


def _kubeconfig(server: str, certs: Mapping[str, Path]) -> str:
    return yaml.dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(certs["ca.crt"])}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(certs["admin.crt"]), "client-key": str(certs["admin.key"])}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }, Dumper=_Dumper)


def load_yaml_all(text: str) -> list:
    return list(yaml.load_all(text, Loader=_Loader))


def _dump_yaml(docs: Iterable[Mapping]) -> str:
    return yaml.dump_all([dict(d) for d in docs], Dumper=_Dumper, sort_keys=False)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- processes


@dataclass
class Process:
    """One child process, its log file, and stop-by-PID."""

    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: the Ctrl-C that pytest turns into an orderly
                # teardown does not also hit the children first.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout`; only this PID."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 40) -> str:
        return _tail(self.log, lines)


# --------------------------------------------------------------------------- HTTPS client


def _warning_text(header: str) -> str:
    """`299 - "message"` (RFC 7234 warn-code, agent, text) -> message."""
    parts = header.split(" ", 2)
    if len(parts) == 3 and parts[2].startswith('"'):
        return parts[2][1:-1].replace('\\"', '"') if parts[2].endswith('"') else parts[2][1:]
    return header


@dataclass
class Response:
    method: str
    path: str
    status: int
    body: Any
    warnings: list[str]

    def ok(self) -> Any:
        if not 200 <= self.status < 300:
            raise ApiError(self.method, self.path, self.status, self.body)
        return self.body



class Api:
    """A tiny JSON client for the API server (stdlib only), for hot paths.

    Authenticates with the admin client certificate; keeps one keep-alive
    connection per thread. Paths are API paths ("/api/v1/nodes"); `query` is a
    dict of query parameters. Non-2xx answers raise ApiError.
    """

    PATCH_TYPES = {
        "merge": "application/merge-patch+json",
        "strategic": "application/strategic-merge-patch+json",
        "json": "application/json-patch+json",
        "apply": "application/apply-patch+yaml",
    }

    def __init__(self, host: str, port: int, ca: Path, cert: Path, key: Path):
        self.host, self.port = host, port
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.load_cert_chain(str(cert), str(key))
        self._local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self._local.conn = conn
        return conn

    def call(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None,
             content_type: str = "application/json", timeout: float = 60) -> "Response":
        """One request; returns status, decoded body and the API server's warnings (never raises on status)."""
        if query:
            path = f"{path}?{urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})}"
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            data = data.encode() if isinstance(data, str) else data
        headers = {"Accept": "application/json", "User-Agent": "vllm-compose-tests"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt > 0)
            conn.timeout = timeout
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):  # a stale keep-alive connection: retry once
                if attempt:
                    raise
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        warnings = [_warning_text(w) for w in resp.headers.get_all("Warning") or []]
        return Response(method, path, resp.status, payload, warnings)

    def request(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None,
                content_type: str = "application/json", timeout: float = 60) -> Any:
        """The decoded body of a 2xx answer; ApiError otherwise."""
        return self.call(method, path, body, query=query, content_type=content_type, timeout=timeout).ok()

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any, **query: Any) -> Any:
        return self.request("POST", path, body, query=query)

    def put(self, path: str, body: Any, **query: Any) -> Any:
        return self.request("PUT", path, body, query=query)

    def patch(self, path: str, body: Any, patch_type: str = "merge", **query: Any) -> Any:
        return self.request("PATCH", path, body, query=query, content_type=self.PATCH_TYPES[patch_type])

    def delete(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.request("DELETE", path, body, query=query)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# --------------------------------------------------------------------------- control plane


def _wait(what: str, check: Callable[[], bool], timeout: float, procs: Iterable[Process] = (), interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        for p in procs:
            if not p.alive():
                raise StartFailed(f"{p.name} exited ({p.popen.returncode if p.popen else '?'}) while waiting for {what}; "
                                  f"log {p.log}:\n{p.tail()}")
        try:
            if check():
                return
        except Exception as e:  # not up yet: connection refused, 500 from /readyz, ...
            last = e
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail()}" for p in procs)
            raise StartFailed(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{tails}")
        time.sleep(interval)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None, expect: bytes | None = None) -> bool:
    u = urllib.parse.urlsplit(url)
    conn = (http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=5) if u.scheme == "https"
            else http.client.HTTPConnection(u.hostname, u.port, timeout=5))
    try:
        conn.request("GET", u.path or "/")
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and (expect is None or expect in body)
    finally:
        conn.close()


@dataclass(eq=False)  # compared and hashed by identity
class ControlPlane:
    """A running control plane. Create with `ControlPlane.start()`; `stop()` ends it."""

    workdir: Path
    certs: dict[str, Path]
    kubeconfig: Path
    server: str
    ports: dict[str, int]
    processes: list[Process]
    tools: dict[str, Path]
    api: Api
    etcd_data: Path | None = None  # etcd's data dir (on /dev/shm when writable), removed by stop()
    started_in: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)  # per-control-plane state of helpers (fakenodes' heartbeat)
    _finalizers: list[Callable[[], None]] = field(default_factory=list)
    _crds_installed: dict[str, list[str]] = field(default_factory=dict)
    _stopped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, workdir: Path | None = None, *, attempts: int = 3) -> "ControlPlane":
        """Start everything and wait until the API server is ready and the
        scheduler and controller-manager are healthy. Raises Unavailable when a
        binary is missing, StartFailed (with log tails) when something does not
        come up. Retries with new ports if one was taken in between (other
        sessions run on this machine too)."""
        tools = find_tools()
        t0 = time.monotonic()
        last: Exception | None = None
        for attempt in range(attempts):
            wd = Path(workdir or tempfile.mkdtemp(prefix="vllm-compose-cp-"))
            try:
                cp = cls._start_once(wd, tools)
                cp.started_in = time.monotonic() - t0
                return cp
            except StartFailed as e:
                last = e
                if "address already in use" not in str(e) or attempt == attempts - 1:
                    raise
                # A port was taken between picking and binding (another session):
                # try again with new ones; the failed attempt's logs are not needed.
                if workdir is None:
                    _rm(wd)
        raise last  # pragma: no cover

    @classmethod
    def _start_once(cls, wd: Path, tools: dict[str, Path]) -> "ControlPlane":
        wd.mkdir(parents=True, exist_ok=True)
        logs = wd / "logs"
        logs.mkdir(exist_ok=True)
        certs = make_certs(wd / "pki", str(tools["openssl"]))
        ports = {n: free_port() for n in ("etcd", "etcd-peer", "apiserver", "scheduler", "controller-manager")}
        server = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfig = wd / "admin.kubeconfig"
        kubeconfig.write_text(_kubeconfig(server, certs))
        # etcd's data on tmpfs when there is one: fsync there is free, and the
        # API server's writes (leases every few seconds) stay fast on a busy disk.
        shm = Path("/dev/shm")
        on_shm = shm.is_dir() and os.access(shm, os.W_OK)
        if on_shm:
            _sweep_stale(shm)
        data_root = Path(tempfile.mkdtemp(prefix=ETCD_DIR_PREFIX, dir=shm)) if on_shm else wd / "etcd"
        data_root.mkdir(parents=True, exist_ok=True)
        (data_root / "owner.pid").write_text(str(os.getpid()))
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        etcd = Process("etcd", [
            str(tools["etcd"]),
            "--name=test",
            f"--data-dir={data_root / 'data'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
        ], logs / "etcd.log")
        c = certs
        apiserver = Process("kube-apiserver", [
            str(tools["kube-apiserver"]),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={c['apiserver.crt']}",
            f"--tls-private-key-file={c['apiserver.key']}",
            f"--client-ca-file={c['ca.crt']}",
            # Front-proxy settings (as kubeadm sets them): the scheduler and the
            # controller-manager read this CA from extension-apiserver-authentication.
            f"--requestheader-client-ca-file={c['ca.crt']}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-key-file={c['sa.pub']}",
            f"--service-account-signing-key-file={c['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            # 127.0.0.1 is not a valid endpoint for the default lease reconciler.
            "--endpoint-reconciler-type=none",
            # Like EKS and GKE: a pod requesting nvidia.com/gpu tolerates its taint.
            "--enable-admission-plugins=NodeRestriction,ExtendedResourceToleration",
            # Real clusters allow privileged containers; Pod Security admission decides.
            "--allow-privileged=true",
            f"--cert-dir={wd / 'apiserver-certs'}",
            "--profiling=false",
            "--v=0",
        ], logs / "kube-apiserver.log")
        procs = [etcd, apiserver]
        cp: ControlPlane | None = None
        try:
            etcd.start()
            _wait("etcd /health", lambda: _http_ok(f"{etcd_url}/health", expect=b'"health":"true"'), START_TIMEOUT, [etcd], 0.1)
            apiserver.start()
            api = Api("127.0.0.1", ports["apiserver"], c["ca.crt"], c["admin.crt"], c["admin.key"])
            cp = cls(workdir=wd, certs=certs, kubeconfig=kubeconfig, server=server, ports=ports,
                     processes=procs, tools=tools, api=api, etcd_data=data_root)
            _wait("kube-apiserver /readyz", lambda: api.request("GET", "/readyz", timeout=5) is not None, START_TIMEOUT, procs, 0.25)
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE  # the components' own self-signed serving certs, on loopback
            scheduler = Process("kube-scheduler", [
                str(tools["kube-scheduler"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                "--v=0",
            ], logs / "kube-scheduler.log")
            kcm = Process("kube-controller-manager", [
                str(tools["kube-controller-manager"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                # OpenShift carry: otherwise an openshift-service-ca.crt ConfigMap per namespace.
                "--controllers=*,-service-ca-certificate-publisher-controller",
                f"--service-account-private-key-file={c['sa.key']}",
                f"--root-ca-file={c['ca.crt']}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--node-monitor-grace-period={NODE_MONITOR_GRACE_SECONDS}s",
                "--node-monitor-period=2s",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['controller-manager']}",
                "--v=0",
            ], logs / "kube-controller-manager.log")
            procs += [scheduler, kcm]
            scheduler.start()
            kcm.start()
            _wait("kube-scheduler /healthz", lambda: _http_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz", insecure), START_TIMEOUT, procs)
            _wait("kube-controller-manager /healthz", lambda: _http_ok(f"https://127.0.0.1:{ports['controller-manager']}/healthz", insecure), START_TIMEOUT, procs)
            # The default ServiceAccount appears once the controllers run; pods need it.
            _wait("ServiceAccount default/default", lambda: api.exists("/api/v1/namespaces/default/serviceaccounts/default"), START_TIMEOUT, procs)
            atexit.register(cp.stop)
            return cp
        except BaseException:
            for p in reversed(procs):
                p.stop(5)
            _rm(data_root)  # the logs stay in wd/logs for the failure message
            raise

    def add_finalizer(self, fn: Callable[[], None]) -> None:
        """Run `fn` at the start of stop() (e.g. the heartbeat thread), last added first."""
        self._finalizers.append(fn)

    def stop(self) -> None:
        """Stop every component by PID (SIGTERM, then SIGKILL after a timeout) and
        remove etcd's data. The workdir (logs, certificates) stays until remove_workdir()."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for fn in reversed(self._finalizers):
            try:
                fn()
            except Exception:
                pass
        self.api.close()
        for p in reversed(self.processes):
            p.stop()
        _rm(self.etcd_data)
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def remove_workdir(self) -> None:
        if not self._stopped:
            raise RuntimeError("stop() first")
        _rm(self.workdir)

    def alive(self) -> bool:
        return not self._stopped and all(p.alive() for p in self.processes)

    def logs(self, lines: int = 40) -> str:
        """The tail of every component's log (for failure messages)."""
        return "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(lines)}" for p in self.processes)

    def __enter__(self) -> "ControlPlane":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ kubectl

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the `kubectl` on PATH against this control plane; raises KubectlError when check and it fails."""
        argv = [str(self.tools["kubectl"]), f"--kubeconfig={self.kubeconfig}",
                f"--cache-dir={self.workdir / 'kubectl-cache'}", *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(list(args), proc)
        return proc

    def apply(self, docs_or_yaml: str | Mapping | Iterable[Mapping], *, server_side: bool = True,
              namespace: str | None = None, force_conflicts: bool = True, dry_run: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
        """`kubectl apply` YAML text, one object or a list of objects.
        Server-side by default (no last-applied annotation, so huge CRDs fit)."""
        if isinstance(docs_or_yaml, str):
            text = docs_or_yaml
        elif isinstance(docs_or_yaml, Mapping):
            text = _dump_yaml([docs_or_yaml])
        else:
            text = _dump_yaml(docs_or_yaml)
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", f"--field-manager={FIELD_MANAGER}"]
            if force_conflicts:
                args.append("--force-conflicts")
        if namespace:
            args += ["-n", namespace]
        if dry_run:
            args.append(f"--dry-run={dry_run}")
        return self.kubectl(*args, input=text, check=check)

    def get_json(self, *args: str, namespace: str | None = None) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        extra = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *extra, "-o", "json").stdout)

    def version(self) -> dict:
        return self.api.get("/version")

    # ------------------------------------------------------------ CRDs

    def install_crds(self, directory: Path | str, timeout: float = 120) -> list[str]:
        """Apply every CustomResourceDefinition under `directory` (recursively,
        *.yaml/*.yml, other kinds ignored) server-side, then wait until each is
        Established and served by discovery. Returns the CRD names. Idempotent:
        the same directory is applied once per control plane."""
        directory = Path(directory).resolve()
        key = str(directory)
        if key in self._crds_installed:
            return list(self._crds_installed[key])
        crds = []
        for path in sorted(list(directory.rglob("*.yaml")) + list(directory.rglob("*.yml"))):
            for doc in load_yaml_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
        if not crds:
            raise FileNotFoundError(f"no CustomResourceDefinition under {directory}")
        # One object per request: each CRD stays well under the API server's
        # 3 MiB body limit, and a failure names the CRD.
        for doc in crds:
            name = doc["metadata"]["name"]
            try:
                self.api.patch(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", doc,
                               patch_type="apply", fieldManager=FIELD_MANAGER, force="true")
            except ApiError as e:
                raise ApiError("APPLY", f"CustomResourceDefinition {name}", e.status, e.body) from e
        names = [d["metadata"]["name"] for d in crds]
        # Discovery lists a CRD's resource only once it is Established, and a
        # discovery document is small: poll those instead of the (large) CRDs.
        wanted: dict[tuple[str, str], set[str]] = {}
        for d in crds:
            for v in d["spec"]["versions"]:
                if v.get("served", True):
                    wanted.setdefault((d["spec"]["group"], v["name"]), set()).add(d["spec"]["names"]["plural"])
        deadline = time.monotonic() + timeout
        while wanted:
            for gv, plurals in list(wanted.items()):
                plurals -= {r["name"] for r in self._discovery(*gv)}
                if not plurals:
                    del wanted[gv]
            if not wanted:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not Established/served after {timeout}s: {sorted(wanted.items())}")
            time.sleep(0.25)
        # Discovery implies Established; confirm it on the objects once.
        items = {i["metadata"]["name"]: i for i in self.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]}
        for name in names:
            conds = {c["type"]: c["status"] for c in items[name].get("status", {}).get("conditions", [])}
            if conds.get("Established") != "True" or conds.get("NamesAccepted") != "True":
                raise RuntimeError(f"CRD {name} not Established/NamesAccepted: {conds}")
        self._crds_installed[key] = names
        return names

    def _discovery(self, group: str, version: str) -> list[dict]:
        try:
            return self.api.get(f"/apis/{group}/{version}").get("resources", [])
        except ApiError:
            return []

    def resources(self) -> dict[tuple[str, str], "Resource"]:
        """{(apiVersion, kind): Resource} for everything the API server serves now
        (built-ins and installed CRDs; subresources left out)."""
        out: dict[tuple[str, str], Resource] = {}

        def add(group_version: str, items: list[dict]) -> None:
            for r in items:
                if "/" not in r["name"]:
                    out.setdefault((group_version, r["kind"]), Resource(group_version, r["kind"], r["name"], r["namespaced"]))

        add("v1", self.api.get("/api/v1").get("resources", []))
        for g in self.api.get("/apis").get("groups", []):
            for v in g.get("versions", []):
                group, version = v["groupVersion"].split("/")
                add(v["groupVersion"], self._discovery(group, version))
        return out

    def path_of(self, obj: Mapping, namespace: str | None = None, resources: Mapping | None = None) -> str:
        """The API path of an object (its collection when it has no name)."""
        res = (resources or self.resources()).get((obj["apiVersion"], obj["kind"]))
        if res is None:
            raise KeyError(f"{obj['apiVersion']} {obj['kind']} is not served (CRD not installed?)")
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or namespace or "default"
        return res.path(ns if res.namespaced else None, meta.get("name"))


@dataclass(frozen=True)
class Resource:
    group_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


ETCD_DIR_PREFIX = "vllm-compose-etcd-"


def _sweep_stale(shm: Path) -> None:
    """Remove etcd data dirs on tmpfs left by a session that was killed outright
    (SIGKILL skips every cleanup; each dir holds ~60 MB of RAM)."""
    for d in shm.glob(f"{ETCD_DIR_PREFIX}*"):
        try:
            if d.stat().st_uid != os.getuid():
                continue
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _rm(d)
        except PermissionError:
            pass


def _rm(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
