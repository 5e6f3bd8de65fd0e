"""Atomic, idempotent, reported file writes.

A `FileSet` is the complete set of files a generator wants under one root.
`apply()` writes each one atomically (temp file in the same directory, fsync,
os.replace), skips files whose bytes are identical, and reports every path as
created, updated, unchanged or deleted. `dry_run` writes nothing and returns a
unified diff; `check` writes nothing and raises `Drift` when anything would change.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from compose.core.errors import Drift

CREATED, UPDATED, UNCHANGED, DELETED = "created", "updated", "unchanged", "deleted"


def atomic_write(path: Path, data: str) -> None:
    """Write `data` to `path` atomically: temp file beside it, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - not every filesystem allows it
        pass


@dataclass
class Change:
    path: Path
    status: str
    old: str | None = None
    new: str | None = None

    def diff(self, root: Path | None = None) -> str:
        name = str(self.path.relative_to(root)) if root else str(self.path)
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                (self.new or "").splitlines(keepends=True),
                fromfile=f"a/{name}" if self.old is not None else "/dev/null",
                tofile=f"b/{name}" if self.new is not None else "/dev/null",
            )
        )


@dataclass
class FileSet:
    """Files to write (path -> text) and files to delete, under `root`."""

    root: Path
    files: dict[Path, str] = field(default_factory=dict)
    deletions: set[Path] = field(default_factory=set)

    def add(self, relpath: str | Path, text: str) -> None:
        path = (self.root / relpath).resolve()
        _ensure_inside(path, self.root)
        self.files[path] = text

    def delete(self, relpath: str | Path) -> None:
        path = (self.root / relpath).resolve()
        _ensure_inside(path, self.root)
        self.deletions.add(path)

    def plan(self) -> list[Change]:
        changes: list[Change] = []
        for path in sorted(self.files):
            new = self.files[path]
            old = path.read_text() if path.exists() else None
            if old is None:
                changes.append(Change(path, CREATED, None, new))
            elif old == new:
                changes.append(Change(path, UNCHANGED, old, new))
            else:
                changes.append(Change(path, UPDATED, old, new))
        for path in sorted(self.deletions - set(self.files)):
            if path.exists():
                changes.append(Change(path, DELETED, path.read_text(), None))
        return changes


def _ensure_inside(path: Path, root: Path) -> None:
    from compose.core.errors import InvalidName

    root = Path(root).resolve()
    if path != root and root not in path.parents:
        raise InvalidName(f"refusing to write {path}: it is outside {root}")


def apply(fileset: FileSet, dry_run: bool = False, check: bool = False) -> list[Change]:
    """Carry out (or preview) the changes. Returns them, sorted by path."""
    changes = fileset.plan()
    pending = [c for c in changes if c.status != UNCHANGED]
    if check and pending:
        diff = "".join(c.diff(fileset.root.resolve()) for c in pending)
        names = ", ".join(str(c.path) for c in pending)
        raise Drift(
            f"{len(pending)} generated file(s) are out of date: {names}; "
            "run `compose regen --all` and commit the result",
            findings=[diff],
        )
    if dry_run or check:
        return changes
    for c in pending:
        if c.status == DELETED:
            c.path.unlink()
        else:
            atomic_write(c.path, c.new or "")
    return changes


KEPT = "kept"  # a file a person took over (no generated header): left alone


def report(changes: list[Change], root: Path | None = None, kept: list[Path] = ()) -> str:
    """One line per path: created / updated / unchanged / deleted / kept."""

    def rel(path: Path) -> Path:
        if root is not None:
            try:
                return path.relative_to(Path(root).resolve())
            except ValueError:
                pass
        return path

    lines = [f"{c.status:<9} {rel(c.path)}" for c in changes]
    lines += [f"{KEPT:<9} {rel(p)} (hand-edited: no generated header, left alone)" for p in kept]
    return "\n".join(lines)
