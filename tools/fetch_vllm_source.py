"""Unpack the pinned vLLM release's Python sources for the tests that read them.

`tests/test_metrics_guard.py` compares compose's table of vLLM metric names with
the names the release itself registers (`vllm/v1/metrics/loggers.py`). This
downloads the release wheel from PyPI (`pip download`, no dependencies) and
extracts only its `.py` files into a cache directory; nothing is installed and
nothing lands in the repository.

    python tools/fetch_vllm_source.py            # prints the vllm/ directory
    export VLLM_SOURCE_DIR=$(python tools/fetch_vllm_source.py)

Exit 0 with the directory on stdout, or 1 with one line on stderr (offline, no
wheel for this platform): the guard test then skips with its own message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compose.plan.metrics import VLLM_VERSION  # noqa: E402


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vllm-compose" / f"vllm-{VLLM_VERSION}-src"


def main() -> int:
    target = cache_dir()
    marker = target / "vllm" / "v1" / "metrics" / "loggers.py"
    if marker.is_file():
        print(target / "vllm")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", f"vllm=={VLLM_VERSION}", "-d", tmp],
            capture_output=True, text=True, timeout=900,
        )
        wheels = list(Path(tmp).glob("vllm-*.whl"))
        if proc.returncode != 0 or not wheels:
            print(f"could not download vllm=={VLLM_VERSION}: {' '.join(proc.stderr.split())[:300]}", file=sys.stderr)
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                for name in z.namelist():
                    if name.startswith("vllm/") and name.endswith(".py"):
                        z.extract(name, staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    print(target / "vllm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
