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

    `.compose/` (compose's git-ignored lock and transaction state) and `.git/` (whose index
    `git status` refreshes) are not part of the tree."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in (".compose", ".git")
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


# --------------------------------------------------------------------------- whole-repository copies


def full_repo(tmp: Path, name: str = "full") -> Path:
    """A git checkout with everything compose reads and writes: base/, components/, the
    reference overlays and the recorded argocd/ and flux/ trees, committed once."""

    root = tmp / name
    root.mkdir()
    for part in ("base", "components", "overlays", "argocd", "flux"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base")
    return root


GATEWAY = "gateway-system/inference"
ROUTED = "dev-qwen2-5-7b"  # the routed overlay of routed_full_repo()
ROUTED_OPTIONS = dict(model="qwen2.5-7b", cloud="gke", gpu="l4", gateway=GATEWAY)
CANARY_IMAGE = "vllm/vllm-openai:v0.33.0-cu130"


def routed_full_repo(tmp: Path, name: str = "routed", canary: bool = False) -> Path:
    """full_repo() plus a model behind a Gateway (overlays/dev-qwen2-5-7b, with its Argo CD
    and Flux entries), and with `canary` its canary running at 10 %; committed."""
    from compose.generate import overlay
    from compose.publish import canary as canary_lib
    from compose.publish import regenerate

    root = full_repo(tmp, name)
    regenerate.new_model(root, overlay.Options(**ROUTED_OPTIONS))
    if canary:
        canary_lib.apply_change(root, canary_lib.plan_start(root, ROUTED, weight=10, image=CANARY_IMAGE))
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "routed")
    return root


def copy_repo(template: Path, dest: Path) -> Path:
    """A copy of a checkout (its .git included), for tests that change it."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def git(root: Path, *args: str) -> str:
    import subprocess

    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def git_status(root: Path) -> list[str]:
    """`git status --porcelain --untracked-files=all`: what differs from the committed tree."""
    return sorted(git(root, "status", "--porcelain", "--untracked-files=all").splitlines())


def leftovers(root: Path) -> list[str]:
    """Anything an interrupted run may leave: transaction directories, temp files, staging dirs."""
    import os

    found = []
    state = root / ".compose"
    if state.is_dir():
        found += [p.name for p in state.iterdir() if p.name.startswith("txn-")]
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".compose")]
        found += [(rel / d).as_posix() for d in dirnames if d.startswith(".")]
        found += [(rel / f).as_posix() for f in filenames if f.endswith((".compose-tmp", ".tmp"))]
    return sorted(found)


def compose_subprocess(root: Path, *args: str, env: dict | None = None, timeout: float = 120):
    """`python -m compose ARGS --repo ROOT` in a child process (for kill and lock tests)."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "compose", *args, "--repo", str(root)], cwd=root,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
