"""The weight-download init container's script, run for real with a fake `hf`.

The script is taken from the rendered base Deployment, so what is tested is what
ships. A fake `hf` on PATH records its calls, writes files into --local-dir, and can
be told to fail or to be slow, which lets us check the behaviour the base promises:
skip when the completion marker exists, resume (re-run the download) when a previous
attempt died half-way, fail loudly, and download once when replicas start together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from compose.core import kustomize

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock not installed")

FAKE_HF = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    # fake `hf download REPO --revision REV --local-dir DIR`
    set -eu
    echo "$*" >> "$HF_CALLS"
    dir="${@: -1}"
    mkdir -p "$dir"
    [ -n "${HF_FAIL:-}" ] && { echo "401 Unauthorized" >&2; exit 1; }
    sleep "${HF_SLEEP:-0}"
    echo '{"model_type": "llama"}' > "$dir/config.json"
    [ -n "${HF_NO_CONFIG:-}" ] && rm -f "$dir/config.json"
    echo weights > "$dir/model.safetensors"
    """
)


@pytest.fixture(scope="module")
def init_container(repo_root) -> dict:
    docs = kustomize.build(repo_root / "base" / "vllm").docs
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (c,) = dep["spec"]["template"]["spec"]["initContainers"]
    return c


@pytest.fixture()
def sandbox(tmp_path: Path, init_container: dict):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hf = bin_dir / "hf"
    hf.write_text(FAKE_HF)
    hf.chmod(0o755)
    models = tmp_path / "models"
    env = {e["name"]: e["value"] for e in init_container["env"] if "value" in e}
    model_dir = env["MODEL_DIR"].replace("/models", str(models), 1)
    base_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HF_MODEL_ID": env["HF_MODEL_ID"],
        "HF_REVISION": env["HF_REVISION"],
        "MODEL_DIR": model_dir,
        "LOCK_TIMEOUT_SECONDS": "30",
        "HF_CALLS": str(tmp_path / "calls.log"),
    }
    script = init_container["args"][0]
    assert init_container["command"] == ["/bin/bash", "-c"]

    def start(**extra):
        return subprocess.Popen(["/bin/bash", "-c", script], env={**base_env, **extra},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(**extra):
        p = start(**extra)
        out, err = p.communicate(timeout=60)
        return p.returncode, out, err

    def calls() -> list[str]:
        path = Path(base_env["HF_CALLS"])
        return path.read_text().splitlines() if path.exists() else []

    return run, start, calls, Path(model_dir), env


def test_downloads_at_the_pinned_revision_into_the_path_vllm_reads(sandbox):
    run, _, calls, model_dir, env = sandbox
    code, out, err = run()
    assert code == 0, err
    assert calls() == [f"download {env['HF_MODEL_ID']} --revision {env['HF_REVISION']} --local-dir {model_dir}"]
    assert (model_dir / "config.json").exists()
    assert (model_dir / f".vllm-compose-complete-{env['HF_REVISION']}").exists()


def test_second_start_skips_the_download(sandbox):
    run, _, calls, _, _ = sandbox
    assert run()[0] == 0
    code, out, _ = run()
    assert code == 0 and "skipping download" in out
    assert len(calls()) == 1


def test_a_failed_download_fails_loudly_and_is_resumed_next_time(sandbox):
    run, _, calls, model_dir, env = sandbox
    code, out, err = run(HF_FAIL="1")
    assert code != 0 and "401" in err
    assert not (model_dir / f".vllm-compose-complete-{env['HF_REVISION']}").exists()
    # The pod restarts the init container: the download runs again (hf resumes
    # partial files in --local-dir) and completes.
    code, _, err = run()
    assert code == 0, err
    assert len(calls()) == 2


def test_a_download_without_config_json_is_an_error(sandbox):
    run, _, _, model_dir, env = sandbox
    code, _, err = run(HF_NO_CONFIG="1")
    assert code != 0 and "config.json is missing" in err
    assert not (model_dir / f".vllm-compose-complete-{env['HF_REVISION']}").exists()


def test_replicas_starting_together_download_once(sandbox):
    _, start, calls, _, _ = sandbox
    procs = [start(HF_SLEEP="1") for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert len(calls()) == 1
    assert sum("appeared while waiting for the lock" in out for out, _ in results) == 2


def test_a_new_revision_downloads_again(sandbox):
    run, _, calls, _, _ = sandbox
    assert run()[0] == 0
    assert run(HF_REVISION="0123456789abcdef0123456789abcdef01234567")[0] == 0
    assert len(calls()) == 2
