"""Helpers for composer tests: a scratch copy of the repository's sources."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from compose.cli import app

REPO = Path(__file__).resolve().parents[1]


def scratch_repo(tmp: Path) -> Path:
    """A repository with our base/ and components/ but no overlays."""
    root = tmp / "repo"
    root.mkdir()
    for part in ("base", "components"):
        shutil.copytree(REPO / part, root / part)
    (root / "overlays").mkdir()
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path (to prove what a command touched)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run(*args: str, repo: Path | None = None):
    argv = list(args)
    if repo is not None:
        argv += ["--repo", str(repo)]
    return CliRunner().invoke(app, argv, prog_name="compose")
