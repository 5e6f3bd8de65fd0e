"""Commands: placeholder until implemented."""

from __future__ import annotations


def register(app) -> None:
    return None
