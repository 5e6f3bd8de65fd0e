"""Render Kustomize directories with the `kubectl kustomize` that ships on the machine."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from compose.core import yamlio
from compose.core.errors import BuildFailed, ToolMissing

INSTALL_HINT = (
    "kubectl not found on PATH; install kubectl >= 1.27 (it embeds kustomize v5), "
    "e.g. from https://kubernetes.io/docs/tasks/tools/, then re-run"
)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise ToolMissing(INSTALL_HINT)
    return path


@dataclass
class Rendered:
    path: Path
    text: str
    docs: list[dict]
    warnings: str  # anything kustomize printed on stderr (deprecations, ...)


def build(directory: Path | str) -> Rendered:
    """`kubectl kustomize DIR`; raises BuildFailed with kustomize's message on error."""
    directory = Path(directory)
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        msg = " ".join(proc.stderr.split())[:500]
        raise BuildFailed(f"{directory}: kubectl kustomize failed: {msg}")
    docs = yamlio.load_all(proc.stdout, f"kustomize build of {directory}")
    return Rendered(directory, proc.stdout, docs, proc.stderr.strip())


def is_component(kustomization: Path) -> bool:
    data = yamlio.load_file(kustomization) or {}
    return data.get("kind") == "Component"


def discover(root: Path | str) -> list[Path]:
    """Every directory under `root` whose kustomization.yaml is not a Component."""
    root = Path(root)
    out = []
    for k in sorted(root.rglob("kustomization.yaml")):
        if any(part.startswith(".") for part in k.relative_to(root).parts):
            continue
        if "tests" in k.relative_to(root).parts[:1]:
            continue
        if not is_component(k):
            out.append(k.parent)
    return out
