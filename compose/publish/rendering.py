"""`compose build`: the rendered-manifests pattern for Argo CD and Flux."""

from __future__ import annotations

from pathlib import Path

from compose.core import yamlio
from compose.core.errors import BuildFailed, ComposeError
from compose.core.writer import FileSet, apply, report
from compose.generate import overlay
from compose.verify import checks

# Cluster-scoped and prerequisite kinds first, as kustomize's legacy order does.
_KIND_ORDER = ["Namespace", "PriorityClass", "RuntimeClass", "PersistentVolumeClaim", "ConfigMap", "Service",
               "Deployment", "PodDisruptionBudget", "ScaledObject", "PodMonitor", "PrometheusRule"]


def sort_key(doc: dict) -> tuple:
    kind = doc.get("kind", "")
    meta = doc.get("metadata") or {}
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return (rank, kind, meta.get("namespace", ""), meta.get("name", ""))


def render_text(docs: list[dict], source: str) -> str:
    head = f"# Rendered by `compose build` from {source}. Do not edit; regenerate.\n---\n"
    return head + yamlio.dump_all(sorted(docs, key=sort_key))


def build(root: Path, name: str | None, all_: bool, out: Path | None) -> str:
    """Render; print (one overlay, no --out) or write <out>/<overlay>.yaml atomically."""
    dirs = overlay.resolve_overlays(root, name, all_)
    rendered = checks.build_all(dirs)
    errors = [r for r in rendered.values() if isinstance(r, ComposeError)]
    if errors:
        raise BuildFailed("; ".join(str(e) for e in errors))
    texts = {d.name: render_text(r.docs, checks._rel(root, d)) for d, r in rendered.items()}
    if out is None:
        return "".join(texts[k] for k in sorted(texts))
    fileset = FileSet(Path(out))
    for n, text in sorted(texts.items()):
        fileset.add(f"{n}.yaml", text)
    return report(apply(fileset), Path(out))
