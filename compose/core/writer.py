"""Change sets and how they are reported.

A `FileSet` is the complete set of files a generator wants under one root (plus
stale files to delete); `Change` is one path with its status (created, updated,
unchanged, deleted), its old and new text and a `git apply`-able diff; `report()`
and `summary()` print them. Writing is compose.core.transaction's job: every
command that writes does it through one `Transaction`, never file by file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from compose.core.text import terminal_safe

CREATED, UPDATED, UNCHANGED, DELETED = "created", "updated", "unchanged", "deleted"


@dataclass
class Change:
    path: Path
    status: str
    old: str | None = None
    new: str | None = None

    def display(self, root: Path | None = None) -> str:
        """The path relative to `root` (POSIX), or absolute when it lies outside."""
        if root is not None:
            try:
                return self.path.relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                pass
        return str(self.path)

    def diff(self, root: Path | None = None) -> str:
        """A `git apply`-able diff of this change, paths relative to `root`, safe to print:
        lines split at "\n" only (as git does), and control, format and bidi characters of
        a hand-edited file shown as \\uXXXX (tabs kept), with a line before the file's
        header saying so (git apply skips it; that file's hunk then does not apply as is)."""
        if self.status == UNCHANGED:
            return ""
        name = self.display(root)
        head = [f"diff --git a/{name} b/{name}\n"]
        if self.old is None:
            head.append("new file mode 100644\n")
        elif self.new is None:
            head.append("deleted file mode 100644\n")
        body = difflib.unified_diff(
            _git_lines(self.old or ""),
            _git_lines(self.new or ""),
            fromfile=f"a/{name}" if self.old is not None else "/dev/null",
            tofile=f"b/{name}" if self.new is not None else "/dev/null",
        )
        lines, escaped = [], False
        for line in body:
            end = "\n" if line.endswith("\n") else "\n\\ No newline at end of file\n"
            content = line[:-1] if line.endswith("\n") else line
            safe = "\t".join(terminal_safe(part) for part in content.split("\t"))
            escaped |= safe != content
            lines.append(safe + end)
        if not lines:  # an empty file created or deleted
            lines = [f"--- {'a/' + name if self.old is not None else '/dev/null'}\n",
                     f"+++ {'b/' + name if self.new is not None else '/dev/null'}\n"]
        note = ([f"# {name}: control characters shown escaped (\\uXXXX); this file's hunks do not apply as is\n"]
                if escaped else [])
        return "".join(note + head + lines)


@dataclass
class FileSet:
    """Files to write (path -> text) and files to delete, under `root`."""

    root: Path
    files: dict[Path, str] = field(default_factory=dict)
    deletions: set[Path] = field(default_factory=set)

    def add(self, relpath: str | Path, text: str) -> None:
        self.files[self._path(relpath)] = text

    def delete(self, relpath: str | Path) -> None:
        self.deletions.add(self._path(relpath))

    def _path(self, relpath: str | Path) -> Path:
        """root / relpath, normalised lexically (symlinks are the writer's business), inside root."""
        import os

        root = Path(os.path.abspath(self.root))
        path = Path(os.path.normpath(root / relpath))
        _ensure_inside(path, root)
        return path


def _ensure_inside(path: Path, root: Path) -> None:
    from compose.core.errors import InvalidName

    if path != root and root not in path.parents:
        raise InvalidName(f"refusing to write {path}: it is outside {root}")


KEPT = "kept"  # a file a person took over (no generated header): left alone
_PREVIEW = {CREATED: "would create", UPDATED: "would update", DELETED: "would delete", UNCHANGED: "unchanged"}


def report(
    changes: list[Change], root: Path | None = None, kept: list[Path] = (), *, preview: bool = False,
    unchanged: bool = False,
) -> str:
    """One line per changed path (created / updated / deleted, or "would ..." in a preview),
    then the files a person took over. Unchanged files only with `unchanged`."""
    width = 12 if preview else 9
    lines = []
    for c in changes:
        if c.status == UNCHANGED and not unchanged:
            continue
        verb = _PREVIEW[c.status] if preview else c.status
        lines.append(f"{verb:<{width}} {c.display(root)}")
    for p in kept:
        shown = Change(Path(p), KEPT).display(root)
        lines.append(f"{KEPT:<{width}} {shown} (hand-edited: no generated header, left alone)")
    return "\n".join(lines)


def summary(changes: list[Change], *, preview: bool = False) -> str:
    """`3 created, 1 updated, 20 unchanged` (or `would create ...`); `no files` when empty."""
    counts = {s: sum(1 for c in changes if c.status == s) for s in (CREATED, UPDATED, DELETED, UNCHANGED)}
    if preview:
        parts = [f"would {v} {counts[s]}" for s, v in ((CREATED, "create"), (UPDATED, "update"), (DELETED, "delete"))
                 if counts[s]]
        if counts[UNCHANGED]:
            parts.append(f"{counts[UNCHANGED]} unchanged")
    else:
        parts = [f"{counts[s]} {s}" for s in (CREATED, UPDATED, DELETED, UNCHANGED) if counts[s]]
    return ", ".join(parts) or "no files"


def _git_lines(text: str) -> list[str]:
    """`text` split after each "\n" only; str.splitlines also splits at \f, \x1c-\x1e,
    \x85 and U+2028/9, which git does not treat as line ends (the hunks came out wrong)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def diff(changes: list[Change], root: Path | None = None) -> str:
    return "".join(c.diff(root) for c in changes if c.status != UNCHANGED)
