"""Locate the vllm-compose repository the commands work on."""

from __future__ import annotations

import os
from pathlib import Path

from compose.core.errors import InvalidInput

MARKER = Path("base") / "vllm" / "kustomization.yaml"


def find_root(start: Path | str | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd, or $VLLM_COMPOSE_REPO) holding base/vllm."""
    start = Path(start or os.environ.get("VLLM_COMPOSE_REPO") or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / MARKER).is_file():
            return candidate
    raise InvalidInput(
        f"no vllm-compose repository at or above {start} (looked for {MARKER}); "
        "run inside your checkout or pass --repo DIR"
    )
