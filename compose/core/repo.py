"""Locate the vllm-compose repository the commands work on."""

from __future__ import annotations

import os
from pathlib import Path

from compose.core.errors import InvalidInput

MARKER = Path("base") / "vllm" / "kustomization.yaml"


def find_root(start: Path | str | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd, or $VLLM_COMPOSE_REPO) holding base/vllm."""
    raw = start or os.environ.get("VLLM_COMPOSE_REPO") or Path.cwd()
    try:
        start = Path(raw).resolve()
    except (OSError, RuntimeError, ValueError) as err:
        raise InvalidInput(f"invalid --repo {str(raw)[:80]!r}: {err}; pass the checkout's directory") from None
    for candidate in (start, *start.parents):
        if (candidate / MARKER).is_file():
            _check_trees(candidate)
            return candidate
    raise InvalidInput(
        f"no vllm-compose repository at or above {start} (looked for {MARKER}); "
        "run inside your checkout or pass --repo DIR"
    )


GENERATED_TREES = ("overlays", "argocd", "flux")


def _check_trees(root: Path) -> None:
    """The trees compose writes are directories inside the repository. `overlays` as a
    file made `gitops flux` drop every flux/models file and exit 0; `overlays` as a link
    to another directory made `new-model` write there and strip every other overlay's
    Application of its ignoreDifferences."""
    for name in GENERATED_TREES:
        path = root / name
        if not os.path.lexists(path):
            continue
        if path.is_symlink():
            raise InvalidInput(f"{name}/ in {root} is a symbolic link ({os.readlink(path)[:120]!r}); "
                               f"compose writes {name}/ in place: replace the link with the directory itself")
        if not path.is_dir():
            raise InvalidInput(f"{name} in {root} is not a directory; move the file away "
                               f"(`git checkout -- {name}` restores the tree)")


def open_repository(start: Path | str | None = None) -> tuple[Path, list[str]]:
    """`find_root(start)`, after finishing or undoing whatever an interrupted compose run
    left there (compose.core.transaction.recover): every command starts from here. The
    notes say what recovery did."""
    from compose.core.transaction import recover_if_needed

    root = find_root(start)
    return root, recover_if_needed(root)
