"""Shared fixtures: the repository root, the CRD directory, kubectl."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The real control plane's fixtures (control_plane, cluster_crds, cluster_ns)
# and the `cluster` marker hooks; its helpers are imported from the module. ci_guard:
# under CI a skipped test fails.
pytest_plugins = ["conftest_cluster", "ci_guard"]

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist's workers inherit COLUMNS=80 / LINES=24 from execnet; a plain run has none,
# and `compose doctor/status` size their tables from COLUMNS. Tests see the same page either way.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def crd_dir() -> Path:
    return Path(os.environ.get("VLLM_COMPOSE_CRD_DIR") or REPO.parent / "shared" / "crds")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def crds() -> Path:
    path = crd_dir()
    if not path.is_dir():
        pytest.fail(f"CRD directory {path} not found: set VLLM_COMPOSE_CRD_DIR to the shared/crds folder")
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not found on PATH: install kubectl >= 1.27 (kustomize v5 embedded)")
    return path



@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """For `-n 2 --dist loadgroup` (pytest-xdist, the README's test command): every test that
    needs the control plane runs on one worker, so one control plane starts per session;
    every other file stays whole on one worker, so its module fixtures run once."""
    for item in items:
        group = "cluster" if item.get_closest_marker("cluster") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
