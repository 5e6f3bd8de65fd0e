"""Text that came from outside (an API server, a log line, a Prometheus answer) made safe
to print on a terminal: control, format and unassigned characters -- escape sequences,
NUL, U+202E and the other bidirectional overrides -- are shown as \\uXXXX escapes, so a
hostile server cannot move the cursor, recolour the screen or reorder what a line says."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any


def terminal_safe(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or (ch.isprintable() and not unicodedata.category(ch).startswith("C")):
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return "".join(out)


def terminal_safe_all(value: Any) -> Any:
    """The same value with every string inside it (dataclasses, lists, tuples, dicts) made
    terminal-safe; other values unchanged."""
    if isinstance(value, str):
        return terminal_safe(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: terminal_safe_all(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, list):
        return [terminal_safe_all(v) for v in value]
    if isinstance(value, tuple):
        return tuple(terminal_safe_all(v) for v in value)
    if isinstance(value, dict):
        return {terminal_safe_all(k): terminal_safe_all(v) for k, v in value.items()}
    return value
