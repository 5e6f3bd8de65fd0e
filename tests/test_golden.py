"""Golden overlays: three models on three clouds, generated, built, checked, compared.

The expected files live in tests/golden/<overlay>/. After an intended change to
the planner, catalog or generator, refresh them with
    UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
and review the diff like any other change.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from composer_helpers import run, scratch_repo

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "dev-qwen2-5-7b": ("qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--spot", "--target-rps", "30"),
    "staging-mistral-7b": ("mistral-7b", "--env", "staging", "--cloud", "aks", "--gpu", "a100-80gb"),
    "prod-mixtral-8x7b": ("mixtral-8x7b", "--env", "prod", "--cloud", "eks", "--gpu", "h100-80gb",
                          "--replicas", "2:6"),
}

pytestmark = pytest.mark.usefixtures("kubectl")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    repo = scratch_repo(tmp_path_factory.mktemp("golden"))
    for name, args in CASES.items():
        res = run("new-model", *args, repo=repo)
        assert res.exit_code == 0, (name, res.output)
    return repo


@pytest.mark.parametrize("name", sorted(CASES))
def test_overlay_matches_golden_files(generated, name):
    got_dir = generated / "overlays" / name
    want_dir = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(want_dir, ignore_errors=True)
        shutil.copytree(got_dir, want_dir)
    got = {p.name: p.read_text() for p in sorted(got_dir.iterdir())}
    want = {p.name: p.read_text() for p in sorted(want_dir.iterdir())}
    assert sorted(got) == sorted(want)
    for fname in want:
        assert got[fname] == want[fname], f"{name}/{fname} differs from tests/golden (UPDATE_GOLDEN=1 to refresh)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_overlay_passes_check(generated, name, crds):
    res = run("check", name, "--crd-dir", str(crds), repo=generated)
    assert res.exit_code == 0, res.output
    assert f"PASS overlays/{name}" in res.stdout


def test_golden_overlays_regen_cleanly(generated):
    res = run("regen", "--all", "--check", repo=generated)
    # --all also covers components/monitoring (copied from the repo, so current);
    # GitOps trees are absent in the scratch repo, so only overlays can drift.
    assert res.exit_code == 0, res.output
