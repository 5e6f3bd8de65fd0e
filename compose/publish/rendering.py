"""`compose build`: the rendered-manifests pattern for Argo CD and Flux.

`--out DIR` writes `<DIR>/<overlay>.yaml` for each overlay in one transaction. DIR
may be anywhere except in, around or equal to a tree compose generates or the
models live in (overlays/, base/, components/, argocd/, flux/, any directory with a
compose-gitops.yaml, .git/, .compose/, or the repository root itself), and a file
there without the rendered header is never overwritten.
"""

from __future__ import annotations

from pathlib import Path

from compose.core import yamlio
from compose.core.errors import BuildFailed, ComposeError, InvalidInput, NotOurs
from compose.core.transaction import Transaction
from compose.core.writer import Change
from compose.generate import overlay
from compose.verify import checks

# Cluster-scoped and prerequisite kinds first, as kustomize's legacy order does.
_KIND_ORDER = ["Namespace", "PriorityClass", "RuntimeClass", "PersistentVolumeClaim", "ConfigMap", "Service",
               "Deployment", "PodDisruptionBudget", "ScaledObject", "PodMonitor", "PrometheusRule"]
RENDERED_MARK = "# Rendered by `compose build`"


def sort_key(doc: dict) -> tuple:
    kind = doc.get("kind", "")
    meta = doc.get("metadata") or {}
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return (rank, kind, meta.get("namespace", ""), meta.get("name", ""))


def render_text(docs: list[dict], source: str) -> str:
    head = f"{RENDERED_MARK} from {source}. Do not edit; regenerate.\n---\n"
    return head + yamlio.dump_all(sorted(docs, key=sort_key))


def check_out_dir(root: Path, out: Path) -> Path:
    """The output directory, refused when it overlaps a tree compose generates (see the module doc)."""
    from compose.publish import gitops

    root = Path(root).resolve()
    try:
        path = Path(out).resolve()
    except (OSError, RuntimeError, ValueError) as err:
        raise InvalidInput(f"invalid --out {str(out)[:80]!r}: {err}") from None
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"invalid --out {str(out)!r}: it is a file; give a directory, e.g. rendered/")
    if path == root or root.is_relative_to(path):
        raise InvalidInput(f"invalid --out {str(out)!r}: it contains the repository; give a directory such as rendered/")
    if path.is_relative_to(root):
        rel = path.relative_to(root).as_posix()
        clash = gitops.overlapping(rel, gitops.protected_trees(root))
        if clash is not None:
            raise InvalidInput(
                f"invalid --out {str(out)!r}: it overlaps {clash}/, which compose generates or reads; "
                "give a separate directory, e.g. rendered/"
            )
    return path


def build(root: Path, name: str | None, all_: bool, out: Path | None) -> tuple[str, list[Change]]:
    """Render: the text of one overlay (no --out), or write <out>/<overlay>.yaml in one transaction."""
    root = Path(root).resolve()
    out_dir = check_out_dir(root, out) if out is not None else None
    dirs = overlay.resolve_overlays(root, name, all_)
    rendered = checks.build_all(dirs)
    errors = [r for r in rendered.values() if isinstance(r, ComposeError)]
    if errors:
        raise BuildFailed("; ".join(str(e) for e in errors) + "; nothing was written")
    texts = {d.name: render_text(r.docs, checks._rel(root, d)) for d, r in rendered.items()}
    if out_dir is None:
        return "".join(texts[k] for k in sorted(texts)), []
    with Transaction(root, scope=[out_dir], command="build --out") as txn:
        for n, text in sorted(texts.items()):
            target = out_dir / f"{n}.yaml"
            current = txn.read(target)
            if current is not None and not current.startswith(RENDERED_MARK):
                raise NotOurs(
                    f"{target} exists and was not rendered by compose build; move it away or choose another --out"
                )
            txn.write(target, text)
        return "", txn.commit()
