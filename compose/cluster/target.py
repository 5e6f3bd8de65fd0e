"""What a rendered overlay asks of the cluster it lands on.

`load(repo, overlay)` renders the overlay with kustomize (as `compose build`
does) and picks out what `doctor` and `status` read: the namespace, the vLLM
Deployment and its pod template, the claims, the ScaledObjects and their
Prometheus addresses, the Hugging Face token reference, whether the model is
gated (from the recorded plan), and every custom resource kind it renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from compose.core import kustomize, yamlio
from compose.core.errors import ComposeError, InvalidInput

PLAN_FILE = "compose-plan.yaml"
CLOUD_ANNOTATION = "vllm-compose.io/cloud"
CAPACITY_ANNOTATION = "vllm-compose.io/capacity"
DOWNLOAD_CONTAINER = "download-weights"
TOKEN_ENV = "HF_TOKEN"
API_KEY_ENV = "VLLM_API_KEY"  # `--api-key-secret NAME` (compose/generate/patches.py, patch_api_key)

# API groups every conformant cluster serves; any other group comes from a CRD
# or an aggregated API and is checked by doctor.
BUILTIN_GROUPS = {
    "", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "storage.k8s.io", "scheduling.k8s.io",
    "node.k8s.io", "rbac.authorization.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
}


def group_version(api_version: str) -> tuple[str, str]:
    return tuple(api_version.split("/", 1)) if "/" in api_version else ("", api_version)  # type: ignore[return-value]


@dataclass(frozen=True)
class TokenRef:
    secret: str
    key: str
    optional: bool


@dataclass(frozen=True)
class PrometheusTrigger:
    scaled_object: str
    server_address: str
    query: str


@dataclass
class Target:
    name: str  # the overlay directory's name
    path: Path
    docs: list[dict]
    namespace: str
    deployment: dict
    claims: list[dict] = field(default_factory=list)
    scaled_objects: list[dict] = field(default_factory=list)
    gated: bool | None = None  # None: no recorded plan says
    hf_repo: str | None = None

    @property
    def deployment_name(self) -> str:
        return self.deployment["metadata"]["name"]

    @property
    def template(self) -> dict:
        return (self.deployment.get("spec") or {}).get("template") or {}

    @property
    def pod_spec(self) -> dict:
        return self.template.get("spec") or {}

    @property
    def pod_labels(self) -> dict[str, str]:
        return dict((self.template.get("metadata") or {}).get("labels") or {})

    @property
    def selector(self) -> dict[str, str]:
        return dict(((self.deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})

    @property
    def cloud(self) -> str | None:
        return ((self.deployment.get("metadata") or {}).get("annotations") or {}).get(CLOUD_ANNOTATION)

    @property
    def spot(self) -> bool:
        return ((self.deployment.get("metadata") or {}).get("annotations") or {}).get(CAPACITY_ANNOTATION) == "spot"

    @property
    def runtime_class(self) -> str | None:
        return self.pod_spec.get("runtimeClassName")

    @property
    def min_replicas(self) -> int:
        for so in self.scaled_objects:
            return int((so.get("spec") or {}).get("minReplicaCount", 1))
        return int((self.deployment.get("spec") or {}).get("replicas", 1))

    def containers(self) -> Iterator[dict]:
        yield from self.pod_spec.get("initContainers") or []
        yield from self.pod_spec.get("containers") or []

    def token_ref(self) -> TokenRef | None:
        """The Secret key the download reads as HF_TOKEN."""
        return self._secret_env(TOKEN_ENV)

    def api_key_ref(self) -> TokenRef | None:
        """The Secret key vLLM reads as VLLM_API_KEY (`--api-key-secret`), None without one."""
        return self._secret_env(API_KEY_ENV)

    def _secret_env(self, name: str) -> TokenRef | None:
        for c in self.containers():
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if env.get("name") == name and ref:
                    return TokenRef(ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional")))
        return None

    def of_kind(self, kind: str) -> list[dict]:
        """The rendered objects of one kind (PodMonitor, PrometheusRule, NetworkPolicy, ...)."""
        return [d for d in self.docs if d.get("kind") == kind]

    def namespace_labels(self) -> dict[str, str]:
        """The labels the overlay's own Namespace object carries ({} when it renders none)."""
        for d in self.of_kind("Namespace"):
            if (d.get("metadata") or {}).get("name") == self.namespace:
                return dict((d.get("metadata") or {}).get("labels") or {})
        return {}

    def fallback_behaviors(self) -> list[str]:
        """fallback.behavior of every ScaledObject that sets one."""
        return [b for so in self.scaled_objects
                if (b := (((so.get("spec") or {}).get("fallback") or {}).get("behavior")))]

    def prometheus_triggers(self) -> list[PrometheusTrigger]:
        out = []
        for so in self.scaled_objects:
            for t in (so.get("spec") or {}).get("triggers") or []:
                meta = t.get("metadata") or {}
                if t.get("type") == "prometheus" and meta.get("serverAddress"):
                    out.append(PrometheusTrigger(so["metadata"]["name"], meta["serverAddress"], meta.get("query", "")))
        return out

    def custom_kinds(self) -> list[tuple[str, str]]:
        """(apiVersion, kind) of every rendered object a CRD or aggregated API must serve."""
        seen = []
        for d in self.docs:
            gv = (d.get("apiVersion") or "", d.get("kind") or "")
            if group_version(gv[0])[0] not in BUILTIN_GROUPS and gv not in seen:
                seen.append(gv)
        return seen


def resolve(repo: Path, overlay_name: str) -> Path:
    from compose.generate import overlay

    return overlay.resolve_overlays(repo, overlay_name, False)[0]


def load(repo: Path, overlay_name: str) -> Target:
    """Render `overlays/<overlay_name>` (or a directory) and read what the checks need."""
    return from_directory(resolve(repo, overlay_name))


def from_directory(directory: Path) -> Target:
    directory = Path(directory).resolve()
    docs = [d for d in kustomize.build(directory).docs if isinstance(d, dict)]
    return from_docs(directory.name, directory, docs, _plan(directory))


def from_docs(name: str, directory: Path, docs: list[dict], plan: dict | None = None) -> Target:
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise InvalidInput(f"{directory}: renders {len(deployments)} Deployments; doctor and status expect the one vLLM Deployment")
    dep = deployments[0]
    namespace = (dep.get("metadata") or {}).get("namespace") or next(
        (d["metadata"]["name"] for d in docs if d.get("kind") == "Namespace"), "default")
    plan = plan or {}
    gated = plan.get("gated")
    return Target(
        name=name, path=directory, docs=docs, namespace=namespace, deployment=dep,
        claims=[d for d in docs if d.get("kind") == "PersistentVolumeClaim"],
        scaled_objects=[d for d in docs if d.get("kind") == "ScaledObject"],
        gated=gated if isinstance(gated, bool) else None,
        hf_repo=plan.get("hf_repo") or _env_value(dep, "HF_MODEL_ID"),
    )


def _plan(directory: Path) -> dict | None:
    path = directory / PLAN_FILE
    if not path.is_file():
        return None
    try:
        doc = yamlio.load_file(path)
    except ComposeError:
        return None
    plan = (doc or {}).get("plan") if isinstance(doc, dict) else None
    return plan if isinstance(plan, dict) else None


def _env_value(dep: dict, name: str) -> Any:
    spec = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in c.get("env") or []:
            if env.get("name") == name and "value" in env:
                return env["value"]
    return None


__all__ = ["Target", "TokenRef", "API_KEY_ENV", "PrometheusTrigger", "load", "from_directory", "from_docs", "resolve", "group_version"]
