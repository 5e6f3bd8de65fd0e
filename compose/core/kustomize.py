"""Render Kustomize directories with the `kubectl kustomize` that ships on the machine."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from compose.core import yamlio
from compose.core.errors import BuildFailed, InvalidInput, ToolMissing

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


BUILD_TIMEOUT_SECONDS = 120
MAX_INPUT_BYTES = 4 * 1024 * 1024  # one file kustomize reads; the repository's are kilobytes
_KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_LISTS = ("resources", "components", "patchesStrategicMerge", "configurations", "crds", "generators",
          "transformers", "validators")
_PATH_LISTS = ("patches", "patchesJson6902", "replacements")


def guard_inputs(directory: Path, shown: str | None = None) -> None:
    """Check every local file the kustomization at `directory` hands to kustomize (its
    resources, components, patches and the kustomizations they name, transitively) the
    way compose checks its own YAML: at most MAX_INPUT_BYTES, nesting and alias expansion
    bounded (yamlio). kustomize has no such bounds: a 511-byte "billion laughs" patch ran
    `kubectl kustomize` out of memory. Remote resources are kustomize's business."""
    root = Path(directory)
    shown = shown or str(root)

    def name(path: Path) -> str:
        try:
            return f"{shown}/{path.relative_to(root)}" if path != root else shown
        except ValueError:
            return str(path)

    def text_of(path: Path) -> str:
        try:
            size = path.stat().st_size
        except OSError:
            return ""  # kustomize names what it cannot read
        if size > MAX_INPUT_BYTES:
            raise InvalidInput(f"{name(path)}: {size:,} bytes, more than {MAX_INPUT_BYTES // 2**20} MiB for one file "
                               "kustomize reads; fix or remove the file")
        text = yamlio.read_text(path, name(path))
        try:
            yamlio.guard(text, name(path))
        except yaml.YAMLError:  # malformed: kustomize's own message names the problem
            return ""
        return text

    seen: set[Path] = set()
    stack = [root]
    while stack:
        here = stack.pop()
        if here.resolve() in seen:
            continue
        seen.add(here.resolve())
        kfile = next((here / k for k in _KUSTOMIZATIONS if (here / k).is_file()), None)
        if kfile is None:
            continue
        text = text_of(kfile)  # a bomb is refused here
        try:
            docs = yamlio.load_all(text, name(kfile))
        except InvalidInput:  # malformed (a duplicate key, ...): kustomize's own message names it
            continue
        data = docs[0] if docs and isinstance(docs[0], dict) else {}
        refs = [r for key in _LISTS for r in (data.get(key) or []) if isinstance(data.get(key), list)]
        refs += [p.get("path") for key in _PATH_LISTS if isinstance(data.get(key), list)
                 for p in data[key] if isinstance(p, dict)]
        for ref in refs:
            if not isinstance(ref, str) or "://" in ref or ref.startswith(("github.com/", "git@")):
                continue
            target = here / ref
            if target.is_dir():
                stack.append(target)
            elif target.is_file():
                text_of(target)


def build(directory: Path | str, display: str | None = None) -> Rendered:
    """`kubectl kustomize DIR`; raises BuildFailed with kustomize's message on error.

    `display` names the directory in messages instead of its path (a staging view)."""
    directory = Path(directory)
    shown = display or str(directory)
    guard_inputs(directory, shown)
    try:
        proc = subprocess.run(
            [kubectl(), "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{shown}: kubectl kustomize did not finish in {BUILD_TIMEOUT_SECONDS} s") from None
    if proc.returncode != 0:
        stderr = proc.stderr.replace(str(directory), shown) if display else proc.stderr
        msg = " ".join(stderr.split())[:500]
        raise BuildFailed(f"{shown}: kubectl kustomize failed: {msg}")
    docs = yamlio.load_all(proc.stdout, f"kustomize build of {shown}", trusted=True)
    return Rendered(directory, proc.stdout, docs, proc.stderr.strip())


def is_component(kustomization: Path) -> bool:
    data = yamlio.load_file(kustomization) or {}
    return isinstance(data, dict) and data.get("kind") == "Component"


def read_kustomization(path: Path | str, source: str | None = None) -> dict:
    """A kustomization file as compose reads it: a mapping whose `namespace`, `resources`,
    `components` and `patches` have the types kustomize requires (other keys are kustomize's
    business). Anything else is one InvalidInput line naming the file and the field."""
    from compose.core.schema import validate

    shown = source or str(path)
    data = yamlio.load_file(Path(path), shown)
    if data is None:
        return {}
    validate(_kustomization_model(), data, shown, "fix the file (kustomize would reject it too)")
    return data


_KUSTOMIZATION_MODEL = None


def _kustomization_model():
    global _KUSTOMIZATION_MODEL
    if _KUSTOMIZATION_MODEL is None:
        from typing import Optional, Union

        from pydantic import BaseModel, ConfigDict

        class Patch(BaseModel):
            model_config = ConfigDict(strict=True, extra="allow")
            path: Optional[str] = None
            patch: Optional[str] = None
            target: Optional[dict] = None

        class Kustomization(BaseModel):
            model_config = ConfigDict(strict=True, extra="allow")
            apiVersion: Optional[str] = None
            kind: Optional[str] = None
            namespace: Optional[str] = None
            namePrefix: Optional[str] = None
            resources: Optional[list[str]] = None
            components: Optional[list[str]] = None
            patches: Optional[list[Union[Patch, str]]] = None

        _KUSTOMIZATION_MODEL = Kustomization
    return _KUSTOMIZATION_MODEL


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
