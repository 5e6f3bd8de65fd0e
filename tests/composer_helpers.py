"""Helpers for composer tests: a scratch copy of the repository's sources."""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
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
    """Every file under root, by relative path (to prove what a command touched).

    `.compose/` (compose's git-ignored lock and transaction state) is not part of the tree."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".compose" not in p.relative_to(root).parts
    }


def run(*args: str, repo: Path | None = None):
    argv = list(args)
    if repo is not None:
        argv += ["--repo", str(repo)]
    return CliRunner().invoke(app, argv, prog_name="compose")


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str, repo: Path | None = None) -> Outcome:
    """The real entry point (`compose.cli.run`, what the console script calls), in process:
    usage errors are one line here, as on a terminal."""
    from compose import cli as entry

    argv = list(args) + (["--repo", str(repo)] if repo is not None else [])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = entry.run(argv)
    return Outcome(code, out.getvalue(), err.getvalue())
