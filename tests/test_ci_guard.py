"""The CI guard (tests/ci_guard.py): with VLLM_COMPOSE_NO_SKIPS=1, as .ci/run sets it, a
skipped test fails with its reason, except a skip marked as a kernel-privilege one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_passes():
    pass

def test_needs_etcd():
    pytest.skip("etcd not installed")

@pytest.fixture()
def needs_prometheus():
    pytest.skip("prometheus not on PATH")

def test_in_fixture(needs_prometheus):
    pass

def test_kernel():
    pytest.skip("no mount namespace (allowed in CI)")

@pytest.mark.xfail(reason="known")
def test_known():
    assert False
'''


def run(tmp_path: Path, no_skips: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_COMPOSE_NO_SKIPS"}
    env["PYTHONPATH"] = str(HERE)
    if no_skips:
        env["VLLM_COMPOSE_NO_SKIPS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "ci_guard", "-rfs",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_under_ci_a_skip_is_a_failure_with_its_reason(tmp_path):
    proc = run(tmp_path, no_skips=True)
    assert proc.returncode == 1, proc.stdout
    summary = proc.stdout.strip().splitlines()[-1]
    # a skip in the test body fails it; a skip in a fixture fails its setup (an error)
    assert summary.startswith("1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error"), summary
    assert "test_needs_etcd - skipped, but VLLM_COMPOSE_NO_SKIPS=1" in proc.stdout
    assert "etcd not installed" in proc.stdout and "prometheus not on PATH" in proc.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path):
    proc = run(tmp_path, no_skips=False)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in proc.stdout.strip().splitlines()[-1]


def test_ci_sets_it():
    assert "export VLLM_COMPOSE_NO_SKIPS=1" in (HERE.parent / ".ci" / "run").read_text()
