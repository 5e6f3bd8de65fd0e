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


def check_label(value: str, what: str, max_len: int = 63) -> str:
    if not value or len(value) > max_len or not _DNS1123_LABEL.match(value):
        raise InvalidName(
            f"invalid {what} {value!r}: use lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {max_len} characters"
        )
    return value


def overlay_name(env: str, slug: str) -> str:
    """`<env>-<slug>`, validated as a DNS-1123 label short enough for every prefixed name."""
    if env not in ENVS:
        raise InvalidName(f"invalid --env {env!r}: choose one of {', '.join(ENVS)}")
    if "/" in slug or "\\" in slug or slug.startswith("."):
        raise InvalidName(f"invalid --name {slug!r}: a name, not a path (no '/', '\\' or leading '.')")
    check_label(slug, "--name")
    name = f"{env}-{slug}"
    if len(name) > MAX_OVERLAY_NAME:
        raise InvalidName(
            f"overlay name {name!r} is {len(name)} characters; with the '-vllm-<hash>-<id>' pod suffix "
            f"it must be at most {MAX_OVERLAY_NAME}: pass a shorter --name"
        )
    return check_label(name, "overlay name", MAX_OVERLAY_NAME)
