"""Scratch repositories with routed models, for the routing, canary and cluster tests.

`routed_repo(tmp, ...)` copies base/ and components/ into a throw-away repository, writes
overlays with the composer library (faster than the CLI, same code) and, on request,
records Argo CD and Flux output, so a canary command has GitOps files to change.
`built(dir)` renders an overlay; `objects(docs, kind)` picks objects by kind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from compose.core import kustomize
from compose.generate import overlay
from compose.publish import gitops

REPO = Path(__file__).resolve().parents[1]
GATEWAY = "gateway-system/inference"

# Small models that fit one L4 (GKE) or a k3s RTX 4090, so plans are quick and cheap.
QWEN = dict(model="qwen2.5-7b", cloud="gke", gpu="l4")
LLAMA = dict(model="llama-3.1-8b", cloud="gke", gpu="l4", max_model_len=8192)
LLAMA_K3S = dict(model="llama-3.1-8b", cloud="k3s", gpu="rtx-4090", max_model_len=8192)


def empty_repo(tmp: Path) -> Path:
    root = Path(tmp) / "repo"
    root.mkdir(parents=True)
    for part in ("base", "components"):
        shutil.copytree(REPO / part, root / part)
    (root / "overlays").mkdir()
    return root


def add_overlay(root: Path, **options) -> overlay.WriteResult:
    opts = overlay.Options(**options)
    return overlay.write(root, opts)


def record_gitops(root: Path) -> None:
    for flavour in gitops.FLAVOURS:
        gitops.write(root, gitops.resolve_settings(root, flavour))


def routed_repo(tmp: Path, *models: dict, gitops_output: bool = True) -> Path:
    """A repository whose overlays are `models` (Options keyword dicts), GitOps recorded."""
    root = empty_repo(tmp)
    for m in models:
        add_overlay(root, **m)
    if gitops_output:
        record_gitops(root)
    return root


def built(directory: Path) -> list[dict]:
    return kustomize.build(directory).docs


def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in objects(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in objects(docs, kind)])
    return found[0]


def tree(root: Path, *parts: str) -> dict[str, str]:
    """Every file under root/<parts> (or the whole root), by relative path."""
    base = Path(root).joinpath(*parts)
    if not base.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


def container(dep: dict, name: str) -> dict:
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c
