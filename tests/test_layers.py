"""compose/ is grouped by stage, and imports point one way (issue 12).

plan (planner, catalogs) -> generate (overlay, patches, alerts) -> verify (policy,
schemas, checks) -> publish (GitOps, monitoring, regen) -> cluster (doctor,
status), under the CLI (and its console entry point, compose.entry), with core
beneath everything. The contract lives in
pyproject.toml ([tool.importlinter]); import-linter checks it on the real
import graph.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("core", "plan", "generate", "verify", "publish", "cluster", "commands")


def _lint(root: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports not found: pip install -e '.[test]' (import-linter)")
    return subprocess.run(
        [lint, "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
    )


def test_imports_point_one_way():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_a_backward_import_breaks_the_contract(tmp_path):
    """The check can fail: the planner importing GitOps code is reported."""
    shutil.copytree(REPO / "compose", tmp_path / "compose", ignore=shutil.ignore_patterns("__pycache__"))
    planner = tmp_path / "compose" / "plan" / "planner.py"
    planner.write_text(planner.read_text() + "\nfrom compose.publish import gitops  # noqa: E402,F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "compose.plan.planner -> compose.publish.gitops" in proc.stdout


def test_every_module_belongs_to_a_stage():
    loose = sorted(p.name for p in (REPO / "compose").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "entry.py"], loose
    for d in (REPO / "compose").iterdir():
        if d.is_dir() and (d / "__init__.py").exists():
            assert d.name in STAGES, f"compose/{d.name} is not a stage of the contract"
