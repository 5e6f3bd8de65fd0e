"""compose/core/transaction.py: every writing command is one transaction.

The API in process (scope, validation, modes, the view, previews, rollback), then
kill tests: `new-model`, `regen --all` and `gitops flux` run in a child process that
SIGKILLs itself at every named point of the protocol (VLLM_COMPOSE_FAULT), or is
killed at random times; the next command recovers, and the tree is then exactly the
old one or exactly the new one (`git status` says which), with nothing left behind.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compose.core import transaction
from compose.core.errors import InvalidInput
from compose.core.transaction import FAULT_POINTS, NotWritable, OutOfScope, RepositoryBusy, Transaction
from composer_helpers import (
    CANARY_IMAGE,
    REPO,
    ROUTED,
    ROUTED_OPTIONS,
    cli,
    compose_subprocess,
    full_repo,
    git,
    git_status,
    leftovers,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("kubectl")


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return full_repo(tmp_path)


# --------------------------------------------------------------------------- the API


def test_commit_applies_every_change_and_reports_it(repo):
    with Transaction(repo, scope=["overlays/dev-8b", "flux"], command="test") as txn:
        txn.write("overlays/dev-8b/extra.yaml", "a: 1\n")
        txn.write("flux/models/dev-8b.yaml", (repo / "flux/models/dev-8b.yaml").read_text() + "# more\n")
        txn.delete("overlays/dev-8b/README.md")
        txn.write("overlays/dev-8b/kustomization.yaml", (repo / "overlays/dev-8b/kustomization.yaml").read_text())
        changes = txn.commit()
    status = {c.display(repo): c.status for c in changes}
    assert status == {
        "flux/models/dev-8b.yaml": "updated", "overlays/dev-8b/README.md": "deleted",
        "overlays/dev-8b/extra.yaml": "created", "overlays/dev-8b/kustomization.yaml": "unchanged",
    }
    assert (repo / "overlays/dev-8b/extra.yaml").read_text() == "a: 1\n"
    assert not (repo / "overlays/dev-8b/README.md").exists()
    assert leftovers(repo) == []


def test_leaving_the_block_without_commit_writes_nothing(repo):
    before = snapshot(repo)
    with pytest.raises(RuntimeError, match="boom"):
        with Transaction(repo, scope=["overlays"], command="test") as txn:
            txn.write("overlays/dev-8b/x.yaml", "a: 1\n")
            txn.view()
            raise RuntimeError("boom")
    assert snapshot(repo) == before and leftovers(repo) == []


@pytest.mark.parametrize("target", [
    "overlays/prod-70b/kustomization.yaml",  # another overlay
    "overlays/dev-8b/../prod-70b/x.yaml",  # .. out of the scope
    "base/vllm/deployment.yaml",
    ".git/config",
    ".compose/lock",
    "/etc/passwd",
])
def test_a_write_outside_the_scope_is_refused_before_anything_is_written(repo, target):
    before = snapshot(repo)
    with pytest.raises(InvalidInput) as err:
        with Transaction(repo, scope=["overlays/dev-8b"], command="regen") as txn:
            txn.write("overlays/dev-8b/ok.yaml", "a: 1\n")
            txn.write(target, "x: 1\n")
            txn.commit()
    assert "\n" not in str(err.value)
    assert snapshot(repo) == before and leftovers(repo) == []


def test_a_symlink_cannot_carry_a_write_out_of_the_scope(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "overlays" / "dev-8b" / "link").symlink_to(outside)
    with pytest.raises(OutOfScope):
        with Transaction(repo, scope=["overlays/dev-8b"], command="test") as txn:
            txn.write("overlays/dev-8b/link/x.yaml", "a: 1\n")
    assert list(outside.iterdir()) == []


def test_a_change_that_does_not_build_is_not_written(repo):
    before = snapshot(repo)
    with pytest.raises(InvalidInput, match="would not build.*overlays/dev-8b") as err:
        with Transaction(repo, scope=["overlays/dev-8b"], command="test") as txn:
            txn.write("overlays/dev-8b/kustomization.yaml", "resources: [missing.yaml]\n")
            txn.commit()
    assert ".compose" not in str(err.value)  # the message names the repository path, not the staging view
    assert snapshot(repo) == before and leftovers(repo) == []


def test_yaml_that_does_not_parse_is_not_written(repo):
    before = snapshot(repo)
    with pytest.raises(InvalidInput, match="flux/models/x.yaml: malformed YAML"):
        with Transaction(repo, scope=["flux"], command="test") as txn:
            txn.write("flux/models/x.yaml", "a: [\n")
            txn.commit()
    assert snapshot(repo) == before


def test_the_view_is_the_repository_after_the_change_and_never_writes_through(repo):
    real = repo / "overlays" / "dev-8b" / "patch-storage.yaml"
    before = real.read_bytes()
    with Transaction(repo, scope=["overlays/dev-8b"], command="test") as txn:
        txn.write("overlays/dev-8b/patch-storage.yaml", "changed: true\n")
        txn.write("overlays/dev-8b/new.yaml", "n: 1\n")
        view = txn.view()
        assert (view / "overlays/dev-8b/patch-storage.yaml").read_text() == "changed: true\n"
        assert (view / "overlays/dev-8b/new.yaml").exists()
        assert (view / "base").is_symlink() and (view / "overlays/prod-70b/kustomization.yaml").exists()
        assert real.read_bytes() == before  # the view's copy is not a hard link any more
        assert txn.read("overlays/dev-8b/patch-storage.yaml") == "changed: true\n"
    assert real.read_bytes() == before and leftovers(repo) == []


def test_preview_lists_the_changes_and_writes_nothing(repo):
    before = snapshot(repo)
    with Transaction(repo, scope=["overlays/dev-8b"], command="test", preview=True) as txn:
        txn.write("overlays/dev-8b/new.yaml", "n: 1\n")
        changes = txn.preview(check=True)
        with pytest.raises(RuntimeError):
            txn.commit()
    assert [c.status for c in changes] == ["created"]
    assert snapshot(repo) == before and not (repo / ".compose" / "lock").exists()


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_new_files_follow_the_umask_and_updated_files_keep_their_mode(repo, umask, file_mode, dir_mode):
    kept = repo / "overlays" / "dev-8b" / "patch-storage.yaml"
    os.chmod(kept, 0o640)
    old = os.umask(umask)
    try:
        with Transaction(repo, scope=["overlays"], command="test") as txn:
            txn.write("overlays/dev-new/sub/a.yaml", "a: 1\n")
            txn.write("overlays/dev-8b/patch-storage.yaml", kept.read_text() + "# edit\n")
            txn.commit()
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(repo / "overlays/dev-new/sub/a.yaml") == file_mode
    assert mode(repo / "overlays/dev-new") == dir_mode and mode(repo / "overlays/dev-new/sub") == dir_mode
    assert mode(kept) == 0o640


def test_an_error_while_applying_restores_every_file(repo, monkeypatch):
    """Disk full, a directory made read-only meanwhile: all or nothing still holds."""
    before = snapshot(repo)
    monkeypatch.setenv(transaction.FAULT_ENV, "applying:2")
    monkeypatch.setenv(transaction.FAULT_ACTION_ENV, "oserror")
    with pytest.raises(NotWritable, match="nothing was changed"):
        with Transaction(repo, scope=["overlays", "flux"], command="test") as txn:
            for name in ("a", "b", "c"):
                txn.write(f"overlays/dev-8b/{name}.yaml", "a: 1\n")
            txn.write("overlays/dev-new/x.yaml", "x: 1\n")
            txn.delete("flux/models/dev-8b.yaml")
            txn.commit()
    assert snapshot(repo) == before and leftovers(repo) == []
    assert not (repo / "overlays/dev-new").exists()  # directories it created are gone too


def test_a_second_writer_waits_then_fails_with_one_line(repo):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from compose.core.transaction import repository_lock\n"
         f"with repository_lock(__import__('pathlib').Path({str(repo)!r}), 'new-model'):\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(RepositoryBusy) as err:
            with Transaction(repo, scope=["overlays"], command="regen", lock_timeout=0.3):
                pass
        assert time.monotonic() - start < 5
        assert "`compose new-model`" in str(err.value) and f"pid {holder.pid}" in str(err.value)
        assert "VLLM_COMPOSE_LOCK_TIMEOUT" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    with Transaction(repo, scope=["overlays"], command="regen", lock_timeout=5):
        pass  # the kernel dropped the dead holder's lock


def test_leftovers_of_older_versions_are_removed_by_the_next_command(repo):
    staging = repo / "overlays" / ".dev-qwen.k2j4h5_a"  # tempfile.mkdtemp(prefix=".<name>.")
    staging.mkdir()
    (staging / "kustomization.yaml").write_text("# Generated by compose (kustomization.yaml) for overlay x.\n")
    tmp = repo / "overlays" / "dev-8b" / ".patch-storage.yaml.ab12cd34.tmp"
    tmp.write_text("partial")
    mine = repo / "overlays" / ".my-notes.abcdefgh"  # not compose's: kept
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    res = cli("list", "--no-check", repo=repo)
    assert res.exit_code == 0, res.output
    assert not staging.exists() and not tmp.exists() and mine.exists()


def test_fault_points_are_in_protocol_order():
    assert FAULT_POINTS[:5] == ("locked", "staged", "validated", "prepared", "committed")
    assert transaction.__doc__ and "commit point" in transaction.__doc__


# --------------------------------------------------------------------------- kill tests


def _drift(root: Path) -> None:
    """A baseline with three generated files out of date in three directories."""
    for rel, old, new in (
        ("overlays/dev-8b/patch-resources.yaml", "nvidia.com/gpu: '1'", "nvidia.com/gpu: '2'"),
        ("overlays/prod-70b/patch-storage.yaml", "storage:", "storage: 1Gi #"),
        ("flux/models/dev-8b.yaml", "prune: true", "prune: false"),
    ):
        p = root / rel
        text = p.read_text()
        assert old in text, rel
        p.write_text(text.replace(old, new, 1))
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "drift")


def _routed(root: Path, canary: bool = False) -> None:
    """A model behind a Gateway (and with `canary`, its canary at 10 %), committed."""
    from compose.generate import overlay
    from compose.publish import canary as canary_lib
    from compose.publish import regenerate

    regenerate.new_model(root, overlay.Options(**ROUTED_OPTIONS))
    if canary:
        canary_lib.apply_change(root, canary_lib.plan_start(root, ROUTED, weight=10, image=CANARY_IMAGE))
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "routed")


SCENARIOS = {
    "new-model": (None, ["new-model", "qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--name", "q"]),
    "regen": (_drift, ["regen", "--all"]),
    "gitops": (None, ["gitops", "flux", "--revision", "v2"]),
    # Both overlays and the GitOps trees in one transaction, `compose check` as its validation.
    "canary-start": (_routed, ["canary", "start", ROUTED, "--image", CANARY_IMAGE, "--weight", "10"]),
    "canary-promote": (lambda root: _routed(root, canary=True), ["canary", "promote", ROUTED]),
}
RANDOM_SCENARIOS = ["gitops", "new-model", "regen"]  # the canary ones: every fault point and recovery above
COMMIT = FAULT_POINTS.index("committed")
KILL_POINTS = [p for p in FAULT_POINTS if p != "recovering"] + ["applying:3"]


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """Per scenario: a committed template checkout, its tree, and the tree a clean run leaves."""
    out = {}
    for name, (prepare, args) in SCENARIOS.items():
        base = tmp_path_factory.mktemp(f"kill-{name}")
        template = full_repo(base, "template")
        if prepare:
            prepare(template)
        done = base / "done"
        shutil.copytree(template, done, symlinks=True)
        res = compose_subprocess(done, *args)
        assert res.returncode == 0, res.stderr
        out[name] = (template, snapshot(template), snapshot(done), git_status(done))
    return out


def _copy(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


def _assert_consistent(root: Path, old, new, new_status) -> str:
    """After the next command: exactly old or exactly new, nothing left behind."""
    assert leftovers(root) == []
    now = snapshot(root)
    if now == old:
        assert git_status(root) == []
        return "old"
    assert now == new, sorted(set(now.items()) ^ set(new.items()))[:4]
    assert git_status(root) == new_status
    return "new"


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_sigkill_at_every_point_then_the_next_run_leaves_old_or_new(baselines, tmp_path, scenario, point):
    template, old, new, new_status = baselines[scenario]
    root = _copy(template, tmp_path)
    res = compose_subprocess(root, *SCENARIOS[scenario][1], env={transaction.FAULT_ENV: point})
    assert res.returncode == -signal.SIGKILL, f"never reached {point}: {res.stdout}{res.stderr}"
    after = cli("list", "--no-check", repo=root)  # any command recovers first
    assert after.exit_code == 0, after.output
    state = _assert_consistent(root, old, new, new_status)
    assert state == ("new" if FAULT_POINTS.index(point.split(":")[0]) >= COMMIT else "old")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_kill_during_recovery_is_recovered_by_the_run_after(baselines, tmp_path, scenario):
    template, old, new, new_status = baselines[scenario]
    root = _copy(template, tmp_path)
    assert compose_subprocess(root, *SCENARIOS[scenario][1],
                              env={transaction.FAULT_ENV: "applying:1"}).returncode == -signal.SIGKILL
    res = compose_subprocess(root, "list", "--no-check", env={transaction.FAULT_ENV: "recovering:2"})
    assert res.returncode == -signal.SIGKILL
    assert cli("list", "--no-check", repo=root).exit_code == 0
    assert _assert_consistent(root, old, new, new_status) == "new"


@pytest.mark.parametrize("scenario", RANDOM_SCENARIOS)
def test_sigkill_at_random_times(baselines, tmp_path, scenario):
    template, old, new, new_status = baselines[scenario]
    rng = random.Random(f"kill-{scenario}")
    seen = set()
    for i in range(4):
        root = _copy(template, tmp_path / str(i))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "compose", *SCENARIOS[scenario][1], "--repo", str(root)],
                                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert cli("list", "--no-check", repo=root).exit_code == 0
        seen.add(_assert_consistent(root, old, new, new_status))
    assert seen <= {"old", "new"}


@pytest.mark.parametrize("action, signame", [("term", "SIGTERM"), ("int", "SIGINT")])
def test_sigterm_and_ctrl_c_before_the_commit_point_leave_nothing(baselines, tmp_path, action, signame):
    template, old, new, new_status = baselines["new-model"]
    root = _copy(template, tmp_path)
    res = compose_subprocess(root, *SCENARIOS["new-model"][1],
                             env={transaction.FAULT_ENV: "validated", transaction.FAULT_ACTION_ENV: action})
    assert res.returncode == 130, res.stderr
    assert res.stderr.startswith("error: interrupted") and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
    assert leftovers(root) == [] and snapshot(root) == old  # no recovery needed: it cleaned up itself


def test_sigterm_while_applying_lets_the_change_finish(baselines, tmp_path):
    template, old, new, new_status = baselines["gitops"]
    root = _copy(template, tmp_path)
    res = compose_subprocess(root, *SCENARIOS["gitops"][1],
                             env={transaction.FAULT_ENV: "applying:2", transaction.FAULT_ACTION_ENV: "term"})
    assert res.returncode == 130 and "applied completely" in res.stderr, res.stderr
    assert _assert_consistent(root, old, new, new_status) == "new"


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (/proc/PID/status SigCgt)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_cli_is_still_importing_is_one_line(repo, signum):
    """A SIGTERM in the first few hundred milliseconds (typer and the command modules still
    importing) ended `compose` silently with 143, and Ctrl-C printed a KeyboardInterrupt
    traceback. compose.entry takes both before anything is imported: one line, exit 130."""
    before = snapshot(repo)
    proc = subprocess.Popen([sys.executable, "-m", "compose", "regen", "--all"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not _catches(proc.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "interrupted (before the command started" in err, err  # it did land while importing
    assert snapshot(repo) == before
