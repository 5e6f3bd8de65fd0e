"""Kubernetes-safe names for overlays, with the limits that the prefix imposes."""

from __future__ import annotations

import re

from compose.core.errors import InvalidName

ENVS = ("dev", "staging", "prod")

# DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# The longest name the overlay's namePrefix ends up in is a Pod's:
#   <overlay>-vllm-<pod-template-hash (<=10)>-<suffix (5)>
# and a Pod's name is also its hostname, a DNS-1123 label (<= 63 characters).
_LONGEST_SUFFIX = len("-vllm-") + 10 + 1 + 5
MAX_OVERLAY_NAME = 63 - _LONGEST_SUFFIX


def slugify(text: str) -> str:
    """Catalog slugs may contain dots (`llama-3.1-8b`); Kubernetes names may not."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def check_label(value: str, what: str, max_len: int = 63) -> str:
    """A DNS-1123 label of at most `max_len` characters (the length is checked before the
    pattern, so a hostile value costs nothing)."""
    if not isinstance(value, str) or not value or len(value) > max_len or not _DNS1123_LABEL.match(value):
        raise InvalidName(
            f"invalid {what} {_shown(value)}: use lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {max_len} characters"
        )
    return value


def overlay_name(env: str, slug: str) -> str:
    """`<env>-<slug>`, validated as a DNS-1123 label short enough for every prefixed name."""
    if env not in ENVS:
        raise InvalidName(f"invalid --env {env!r}: choose one of {', '.join(ENVS)}")
    if "/" in slug or "\\" in slug or slug.startswith("."):
        raise InvalidName(f"invalid --name {_shown(slug)}: a name, not a path (no '/', '\\' or leading '.')")
    check_label(slug, "--name")
    name = f"{env}-{slug}"
    if len(name) > MAX_OVERLAY_NAME:
        raise InvalidName(
            f"overlay name {name!r} is {len(name)} characters; with the '-vllm-<hash>-<id>' pod suffix "
            f"it must be at most {MAX_OVERLAY_NAME}: pass a shorter --name"
        )
    return check_label(name, "overlay name", MAX_OVERLAY_NAME)


# --------------------------------------------------------------------------- namespaces a model may not use

# Namespaces other owners already hold. A model overlay owns its Namespace (it renders
# it, and Argo CD/Flux apply it), so pointing one at these would hand a platform
# namespace to a model's lifecycle. Go path.Match globs, as the Argo CD AppProject
# uses them (compose/publish/gitops.py builds the project's clusterResourceBlacklist
# from the same list, and tests/test_gitops.py checks no allowed pattern matches one).
ARGOCD_NAMESPACE = "argocd"
FLUX_NAMESPACE = "flux-system"
MONITORING_NAMESPACE = "monitoring"
# Cluster add-ons live in a namespace named after their directory (base/<addon>),
# labelled with exactly the Pod Security level they need.
ADDON_NAMESPACES = ("nvidia-device-plugin",)
RESERVED_NAMESPACES: tuple[tuple[str, str], ...] = (
    ("kube-*", "Kubernetes' own (kube-system, kube-public, kube-node-lease)"),
    ("default", "the namespace every unqualified kubectl command lands in"),
    (ARGOCD_NAMESPACE, "Argo CD's"),
    (FLUX_NAMESPACE, "Flux's"),
    (MONITORING_NAMESPACE, "Prometheus' (the monitoring stack)"),
    *((ns, "a cluster add-on's (base/" + ns + ")") for ns in ADDON_NAMESPACES),
)


def _glob(pattern: str, name: str) -> bool:
    """The subset of Go's path.Match these patterns use: a trailing '*'."""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def reserved_namespace(name: str, extra: tuple[str, ...] = ()) -> str | None:
    """Why `name` is not a model's to own, or None when it may be used."""
    for pattern, owner in RESERVED_NAMESPACES:
        if _glob(pattern, name):
            return f"{name} is {owner} namespace"
    if name in extra:
        return f"{name} is the Prometheus namespace of --prometheus-url"
    return None


def check_namespace(value: str, what: str = "--namespace", extra: tuple[str, ...] = ()) -> str:
    """A DNS-1123 label that no other owner holds (see RESERVED_NAMESPACES)."""
    check_label(value, what)
    why = reserved_namespace(value, extra)
    if why:
        raise InvalidName(
            f"invalid {what} {value!r}: {why}, and a model overlay owns its namespace (renders it, labels it "
            "Pod Security restricted); use one of its own, e.g. <env>-<name> (the default)"
        )
    return value
