"""Helpers for the manifest, policy and component tests: cached kustomize builds,
throw-away kustomizations that point at the repository, and object diffs."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pytest

from compose.core import kustomize, yamlio
from compose.core.errors import ComposeError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
KUBECTL_HINT = kustomize.INSTALL_HINT


def require_kubectl() -> str:
    """The kubectl path, or fail the test with an install hint (never skip)."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(KUBECTL_HINT, pytrace=False)
    return path


@lru_cache(maxsize=None)
def build(directory: str) -> kustomize.Rendered:
    """`kubectl kustomize DIR`, cached per directory for the whole session."""
    require_kubectl()
    return kustomize.build(Path(directory))


def build_many(directories: Iterable[Path | str]) -> dict[str, kustomize.Rendered | ComposeError]:
    """Build several directories in parallel (2 cores: 4 short-lived kubectl processes)."""
    require_kubectl()
    dirs = [str(d) for d in directories]

    def one(d: str):
        try:
            return build(d)
        except ComposeError as err:
            return err

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(dirs, pool.map(one, dirs)))


def discover() -> list[Path]:
    """Every non-Component kustomization in the repository, tests/ excluded."""
    return [d for d in kustomize.discover(REPO) if "tests" not in d.relative_to(REPO).parts]


def readme_for(directory: Path) -> str | None:
    """The nearest README.md at or above `directory`, stopping below the repo root
    (base/vllm is documented by base/README.md)."""
    d = Path(directory).resolve()
    while d != REPO and REPO in d.parents:
        readme = d / "README.md"
        if readme.is_file():
            return readme.read_text()
        d = d.parent
    return None


def rel(path: Path | str, start: Path | str) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


class Scratch:
    """Throw-away kustomizations that reference repository paths relatively
    (kustomize refuses absolute paths in `resources`)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vllm-compose-kz-"))
        self._n = 0

    def kustomization(self, *, resources: Iterable[str] = ("base/vllm",), components: Iterable[str] = (),
                      extra: dict | None = None, files: dict[str, str] | None = None) -> Path:
        """A directory whose kustomization lists repo-relative `resources`/`components`."""
        self._n += 1
        d = self.root / f"k{self._n}"
        d.mkdir()
        doc: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [rel(REPO / r, d) for r in resources],
        }
        comps = [rel(REPO / c, d) for c in components]
        if comps:
            doc["components"] = comps
        doc.update(extra or {})
        (d / "kustomization.yaml").write_text(yamlio.dump(doc, sort_keys=False))
        for name, text in (files or {}).items():
            (d / name).write_text(text)
        return d

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def index(docs: Iterable[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def leaves(obj: Any, path: str = "") -> dict[str, Any]:
    """Flatten an object into {dotted.path[index]: scalar}."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj:
            out[path] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, list):
        if not obj:
            out[path] = []
        for i, v in enumerate(obj):
            out.update(leaves(v, f"{path}[{i}]"))
    else:
        out[path] = obj
    return out


def diff_paths(before: dict, after: dict) -> set[str]:
    """Leaf paths that differ (added, removed or changed) between two objects."""
    a, b = leaves(before), leaves(after)
    return {p for p in a.keys() | b.keys() if a.get(p, _MISSING) != b.get(p, _MISSING)}


_MISSING = object()


def diff_builds(before: list[dict], after: list[dict]) -> dict[tuple[str, str], set[str] | str]:
    """{(kind, name): changed leaf paths | "added" | "removed"} between two builds."""
    ib, ia = index(before), index(after)
    out: dict[tuple[str, str], set[str] | str] = {}
    for key in ib.keys() | ia.keys():
        if key not in ib:
            out[key] = "added"
        elif key not in ia:
            out[key] = "removed"
        else:
            changed = diff_paths(ib[key], ia[key])
            if changed:
                out[key] = changed
    return out
