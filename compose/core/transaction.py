"""One transaction per command: every file a command writes changes together, or none does.

Every command that writes (`new-model`, `regen`, `gitops`, `build --out`, and the
ones to come) collects its complete change set in a `Transaction` first, across
overlays/, argocd/, flux/ or wherever it writes, validates all of it in a staging
view of the repository, and only then applies it:

    from compose.core.transaction import Transaction

    with Transaction(repo, scope=["overlays/dev-x", "flux"], command="new-model") as txn:
        txn.write("overlays/dev-x/kustomization.yaml", text)   # repository-relative or absolute
        txn.delete("flux/models/old.yaml")
        view = txn.view()            # the repository as it will be (read only): derive more from it
        txn.write("flux/kustomization.yaml", regenerate(view))
        changes = txn.commit()       # validate, then apply all or nothing; returns every Change
    # Leaving the block without commit() (an error, Ctrl-C) discards everything.

`txn.preview(validate=...)` returns the same changes without writing (`--dry-run`,
`--check`); `Transaction(..., preview=True)` takes no lock and needs no writable
checkout. `txn.read(path)` sees pending writes. A write outside `scope` (a list of
directories) raises InvalidInput before anything is written.

Validation (`commit()` and `preview(validate=True)`): every target is inside the
scope and outside `.git/` and `.compose/`; every written `.yaml`/`.yml` file
parses (duplicate keys rejected); every directory with a changed file that holds a
non-Component kustomization builds with `kubectl kustomize` in the view (plus any
directory named in `build=`); and the caller's `validate(view, changes)` runs last.
The view is `.compose/txn-<id>/view/`: each top-level entry of the repository is a
symlink to the real one, except those with changes, which are hard-linked copies
with the changes applied, so relative references (`../../base/vllm`) resolve.

Protocol (state lives in the git-ignored `<repo>/.compose/`):

1. Lock. `fcntl.flock` on `.compose/lock`. A second writer waits up to
   `$VLLM_COMPOSE_LOCK_TIMEOUT` seconds (default 20; 0 = fail at once), then fails
   with one line naming the holder (exit 2). The kernel drops the lock when its
   holder dies, however it dies.
2. Recover (`recover()`, also run by every command before it reads the repository):
   a `.compose/txn-*/journal.json` whose state is "commit" is rolled forward, one
   whose state is "rollback" is rolled back; a `txn-*` directory without a journal
   (a run that died before its commit point) is deleted, and so are the staging
   directories (`overlays/.<name>.XXXXXXXX/`) and temp files older versions left.
3. Stage and validate in `.compose/txn-<id>/view/`. Nothing outside `.compose/`
   has been touched yet, so dying here loses nothing.
4. Prepare: check that every target directory is writable.
5. Commit point: write `journal.json` (every target, its new bytes, its mode, and
   the old bytes of every file that exists) to a temp file, fsync, rename, fsync
   the directory. From here on the change happens, even if the process dies.
6. Apply, with SIGINT/SIGTERM deferred: each file is written to
   `.<name>.compose-tmp` beside its target, fsynced, renamed over it (new files
   get 0666 & ~umask, an updated file keeps its mode, new directories 0777 &
   ~umask); deletions unlink. An OSError here (disk full, a directory made
   read-only since step 4) switches the journal to "rollback" and restores every
   file from the journal: all or nothing still holds, and the command fails with
   one line.
7. Finish: delete `journal.json` (the change is complete and durable), then the
   transaction directory.

Rolling forward and back are idempotent, so recovery may itself be interrupted and
re-run. Readers (`check`, `list`, previews) take no lock: they may see the few
milliseconds of step 6 in progress, never a state that stays. Until the next compose
command runs, `git status` after a SIGKILL may show a half-applied step 6; that command
completes it first. Targets outside the repository (`build --out /elsewhere`) are
journaled by absolute path and recovered by the next command run in the repository. Fault injection for tests: `VLLM_COMPOSE_FAULT=<point>[:N][,...]` makes the
process SIGKILL itself (or, with `VLLM_COMPOSE_FAULT_ACTION=term|int|oserror`,
send itself SIGTERM/SIGINT or raise OSError) the N-th time it reaches `<point>`;
`FAULT_POINTS` lists them in protocol order.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import signal
import stat
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from compose.core.errors import Interrupted, InvalidInput
from compose.core.writer import CREATED, DELETED, UNCHANGED, UPDATED, Change

STATE_DIR = ".compose"
LOCK_FILE = "lock"
JOURNAL = "journal.json"
TXN_PREFIX = "txn-"
TMP_SUFFIX = ".compose-tmp"
LOCK_TIMEOUT_ENV = "VLLM_COMPOSE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 20.0
FAULT_ENV = "VLLM_COMPOSE_FAULT"
FAULT_ACTION_ENV = "VLLM_COMPOSE_FAULT_ACTION"
FAULT_POINTS = (
    "locked",  # lock held, recovery done
    "staged",  # changes planned and written into the view
    "validated",  # validation passed
    "prepared",  # writability checked; next is the commit point
    "committed",  # journal.json renamed into place (the commit point)
    "applying",  # after each applied file (":N" = after the N-th)
    "applied",  # every file applied, journal still there
    "finished",  # journal removed, transaction directory not yet
    "recovering",  # recovery (or a rollback), after each file rolled forward or back
)
# Never written by a transaction, whatever the scope says.
_FORBIDDEN_TOP = (".git", STATE_DIR)


class RepositoryBusy(InvalidInput):
    """Another compose command holds the repository lock."""


class NotWritable(InvalidInput):
    """The checkout (or a directory the change needs) cannot be written."""


class OutOfScope(InvalidInput):
    """A command tried to write outside the directories it owns."""


# --------------------------------------------------------------------------- helpers


def state_dir(repo: Path | str) -> Path:
    return Path(repo) / STATE_DIR


def current_umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - not every filesystem allows it
        pass
    finally:
        os.close(fd)


def _write_bytes_atomic(path: Path, data: bytes, mode: int) -> None:
    """Temp file beside `path`, fsync, chmod, rename over it."""
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, doc: dict) -> None:
    _write_bytes_atomic(path, json.dumps(doc, sort_keys=True).encode(), 0o644)
    _fsync_dir(path.parent)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file; move it away and re-run") from None


_fault_counts: dict[str, int] = {}


def fault(point: str) -> None:
    """Test hook: die (or fail) here when $VLLM_COMPOSE_FAULT names this point."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        name, _, nth = item.strip().partition(":")
        if name != point:
            continue
        _fault_counts[point] = _fault_counts.get(point, 0) + 1
        if _fault_counts[point] != int(nth or 1):
            continue
        action = os.environ.get(FAULT_ACTION_ENV, "kill")
        if action == "oserror":
            raise OSError(errno.EIO, f"injected fault at {point}")
        sig = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}[action]
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # let a handled signal arrive here


def reset_faults() -> None:
    _fault_counts.clear()


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (the apply phase must not be cut in
    half by a polite signal; SIGKILL is what recovery is for)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda s, _f: received.append(s))
        except (ValueError, OSError):  # pragma: no cover
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        name = signal.Signals(received[0]).name
        raise Interrupted(f"{name} arrived while the change was being applied; it was applied completely")


# --------------------------------------------------------------------------- lock


_held: dict[str, int] = {}


def _ensure_state_dir(repo: Path, command: str) -> Path:
    sdir = state_dir(repo)
    if sdir.is_symlink() or (sdir.exists() and not sdir.is_dir()):
        raise InvalidInput(f"{STATE_DIR} in {repo} is {'a symbolic link' if sdir.is_symlink() else 'a file'}, not the "
                           f"directory compose keeps its lock and journals in; move it away and re-run")
    try:
        sdir.mkdir(exist_ok=True)
        ignore = sdir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# compose's transaction state: never commit it.\n*\n")
    except OSError as err:
        raise NotWritable(
            f"cannot write to the repository {repo} ({err.strerror or err}): `compose {command}` changes "
            "files, so it needs a writable checkout; use --dry-run to preview, or fix the permissions"
        ) from None
    return sdir


def _lock_timeout(explicit: float | None) -> float:
    if explicit is not None:
        return explicit
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds; unset it or give e.g. 20") from None
    if not 0 <= value <= 3600:
        raise InvalidInput(f"{LOCK_TIMEOUT_ENV}={raw} must be between 0 and 3600 seconds")
    return value


@contextmanager
def repository_lock(repo: Path, command: str, timeout: float | None = None) -> Iterator[None]:
    """Exclusive lock on `<repo>/.compose/lock`, waiting up to `timeout` seconds."""
    import fcntl

    repo = Path(repo)
    key = str(repo.resolve())
    if key in _held:
        yield  # re-entered by recovery inside a transaction of this process
        return
    sdir = _ensure_state_dir(repo, command)
    wait = _lock_timeout(timeout)
    try:
        fd = os.open(sdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    except OSError as err:
        raise NotWritable(f"cannot open {sdir / LOCK_FILE} ({err.strerror}); fix the permissions of {sdir}") from None
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RepositoryBusy(
                        f"another compose command ({_holder(sdir / LOCK_FILE)}) is changing {repo}; "
                        f"wait for it to finish and re-run (waited {wait:g} s; {LOCK_TIMEOUT_ENV} sets the wait)"
                    ) from None
                time.sleep(0.05)
        info = json.dumps({"pid": os.getpid(), "command": command, "since": time.strftime("%H:%M:%S")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        _held[key] = fd
        try:
            yield
        finally:
            _held.pop(key, None)
            try:
                os.ftruncate(fd, 0)
            except OSError:  # pragma: no cover
                pass
    finally:
        os.close(fd)  # closing drops the flock


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
        return f"`compose {info['command']}`, pid {info['pid']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


# --------------------------------------------------------------------------- recovery


def _txn_dirs(repo: Path) -> list[Path]:
    sdir = state_dir(repo)
    try:
        return sorted(p for p in sdir.iterdir() if p.name.startswith(TXN_PREFIX) and p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _legacy_leftovers(repo: Path) -> list[Path]:
    """What interrupted runs of older compose versions (and this one) left in the tree:
    `overlays/.<name>.XXXXXXXX/` staging directories and `.<file>.XXXXXXXX.tmp` /
    `.<file>.compose-tmp` temp files beside generated files."""
    import re

    staging = re.compile(r"\.[a-z0-9][-a-z0-9]{0,62}\.[a-z0-9_]{8}")
    temp = re.compile(r"\.[^/]{1,255}\.(?:yaml|yml|md)(?:\.[a-z0-9_]{8}\.tmp|\.compose-tmp)")
    found: list[Path] = []
    overlays = Path(repo) / "overlays"
    try:
        entries = list(os.scandir(overlays))
    except OSError:
        entries = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and staging.fullmatch(entry.name) and _only_generated(Path(entry.path)):
            found.append(Path(entry.path))
    for top in LEFTOVER_TREES:  # only where compose writes: never a user's file elsewhere in the repository
        for dirpath, dirnames, filenames in os.walk(Path(repo) / top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") and temp.fullmatch(name):
                    found.append(Path(dirpath) / name)
    return sorted(found)


def _only_generated(directory: Path) -> bool:
    """An old staging directory: empty, or only files compose generated (and temp files)."""
    for path in directory.rglob("*"):
        if path.is_dir():
            continue
        if path.name.endswith(".tmp"):
            continue
        try:
            head = path.read_bytes()[:64]
        except OSError:
            return False
        if not head.startswith((b"# Generated by compose", b"<!-- Generated by compose")):
            return False
    return True


def needs_recovery(repo: Path | str) -> bool:
    return bool(_txn_dirs(Path(repo)) or _legacy_leftovers(Path(repo)))


def recover(repo: Path | str, command: str = "recover") -> list[str]:
    """Finish or undo every interrupted transaction and remove leftovers; one note each."""
    repo = Path(repo)
    if not needs_recovery(repo):
        return []
    notes: list[str] = []
    with repository_lock(repo, command):
        for tdir in _txn_dirs(repo):
            notes.append(_recover_one(repo, tdir))
        for path in _legacy_leftovers(repo):
            rel = path.relative_to(repo) if path.is_relative_to(repo) else path
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise NotWritable(f"cannot remove the leftover {rel} ({err.strerror}); remove it by hand") from None
            notes.append(f"removed {rel}, left by an interrupted run")
    return notes


def recover_if_needed(repo: Path | str) -> list[str]:
    """Cheap check, then `recover()`; every command runs this before it reads the repository."""
    repo = Path(repo)
    if not needs_recovery(repo):
        return []
    return recover(repo)


def _recover_one(repo: Path, tdir: Path) -> str:
    journal = tdir / JOURNAL
    try:
        doc = json.loads(journal.read_text())
    except FileNotFoundError:
        doc = None
    except (OSError, ValueError):
        doc = None  # a journal is only renamed into place complete; a torn one cannot exist
    if doc is None:
        shutil.rmtree(tdir, ignore_errors=True)
        return f"discarded an interrupted `compose` run that had not changed anything ({tdir.name})"
    root = Path(repo).resolve()
    try:
        entries, created = _checked_journal(doc, root)
    except ValueError as err:
        rel = tdir.relative_to(root) if tdir.is_relative_to(root) else tdir
        raise InvalidInput(f"{rel}/{JOURNAL} is not a journal compose wrote ({err}); nothing was recovered: "
                           f"look at it, then move {rel} out of the repository and re-run") from None
    command = str(doc.get("command", "?"))[:80]
    with deferred_signals():
        if doc.get("state") == "commit":
            try:
                _apply_entries(entries, "recovering", root)
                outcome = "completed"
            except OSError:
                doc["state"] = "rollback"
                _write_json_atomic(journal, doc)
                _rollback(entries, created, "recovering")
                outcome = "undid"
        else:
            _rollback(entries, created, "recovering")
            outcome = "undid"
    journal.unlink()
    _fsync_dir(tdir)
    shutil.rmtree(tdir, ignore_errors=True)
    return f"{outcome} an interrupted `compose {command}` ({len(entries)} file(s))"


# The generated trees of format-1 journals, which recorded no scope, and the only trees
# where leftovers of interrupted runs are looked for.
_FORMAT1_SCOPE = LEFTOVER_TREES = ("overlays", "argocd", "flux")


def _checked_journal(doc: object, root: Path) -> tuple[list["_Entry"], list[str]]:
    """The entries and created directories of a journal, after checking everything recovery
    would act on: the shape, strict base64, plain permission bits (no setuid), and every
    path inside the scope the transaction recorded, never in .git/ or .compose/, and never
    a scope that is the file system's root or holds the repository. ValueError says what
    is wrong. (The journal lives in the repository's own .compose/: whoever can write it
    can write the repository; this stops a corrupted or planted journal from writing
    anywhere else, or bricking every command.)"""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    raw_entries, raw_created = doc.get("entries"), doc.get("created_dirs", [])
    raw_scope = doc.get("scope", list(_FORMAT1_SCOPE))
    for key, value in (("entries", raw_entries), ("created_dirs", raw_created), ("scope", raw_scope)):
        if not isinstance(value, list):
            raise ValueError(f"{key} is not a list")
    if not isinstance(doc.get("state", "commit"), str):
        raise ValueError("state is not a string")

    def place(raw: object, what: str) -> Path:
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise ValueError(f"{what} is not a path")
        path = Path(raw)
        return (path if path.is_absolute() else root / path).resolve()

    scope = [place(s, "a scope entry") for s in raw_scope]
    for s in scope:
        if s == Path(s.anchor) or root.is_relative_to(s):
            raise ValueError(f"the scope {s} holds the repository or the whole file system")

    def inside(path: Path, what: str) -> Path:
        if path.is_relative_to(root) and path != root:
            top = path.relative_to(root).parts[0]
            if top in _FORBIDDEN_TOP:
                raise ValueError(f"{what} {path} is in {top}/")
        if not any(path == s or path.is_relative_to(s) for s in scope):
            raise ValueError(f"{what} {path} is outside the transaction's scope")
        return path

    def blob(value: object, what: str) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{what} is not base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise ValueError(f"{what} is not valid base64") from None

    def bits(value: object, what: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
            raise ValueError(f"{what} is not a file mode")
        return value & 0o777  # never setuid, setgid or sticky

    entries = []
    for i, e in enumerate(raw_entries):
        if not isinstance(e, dict) or "path" not in e or "new" not in e or "mode" not in e:
            raise ValueError(f"entry {i} lacks path, new or mode")
        path = inside(place(e["path"], f"entry {i}'s path"), f"entry {i}'s path")
        mode = bits(e["mode"], f"entry {i}'s mode")
        entries.append(_Entry(path, blob(e["new"], f"entry {i}'s new"), 0o644 if mode is None else mode,
                              blob(e.get("old"), f"entry {i}'s old"), bits(e.get("old_mode"), f"entry {i}'s old_mode")))
    created = []
    for d in raw_created:  # a directory made for the scope: inside it, or one of its missing parents
        path = place(d, "a created directory")
        if not any(s.is_relative_to(path) for s in scope):
            inside(path, "a created directory")
        elif path == Path(path.anchor) or root.is_relative_to(path) or (
                path.is_relative_to(root) and path.relative_to(root).parts[0] in _FORBIDDEN_TOP):
            raise ValueError(f"the created directory {path} holds the repository or is in .git/ or .compose/")
        created.append(str(path))
    return entries, created


# --------------------------------------------------------------------------- journal entries


@dataclass
class _Entry:
    path: Path
    new: bytes | None  # None: delete
    mode: int
    old: bytes | None  # None: did not exist
    old_mode: int | None = None

    def to_doc(self, repo: Path) -> dict:
        """Paths inside the repository are recorded relative to it (a moved checkout recovers)."""
        path = self.path.relative_to(repo).as_posix() if self.path.is_relative_to(repo) else str(self.path)
        return {"path": path, "new": _b64(self.new), "mode": self.mode, "old": _b64(self.old), "old_mode": self.old_mode}



def _apply_entries(entries: list[_Entry], point: str, root: Path | None = None) -> None:
    dirs = set()
    for entry in entries:
        if entry.new is None:
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass
        else:
            entry.path.parent.mkdir(parents=True, exist_ok=True)
            _write_bytes_atomic(entry.path, entry.new, entry.mode)
        dirs.add(entry.path.parent)
        fault(point)
    if root is not None:
        dirs |= _prune_emptied(entries, root)
    for d in sorted(dirs):
        if d.is_dir():
            _fsync_dir(d)


def _prune_emptied(entries: list[_Entry], root: Path) -> set[Path]:
    """Remove the directories a change's deletions left empty (`compose canary promote`
    deletes a whole overlay), below the repository's top-level directories; returns the
    parents to fsync. A rollback recreates them (`_rollback` makes every parent)."""
    touched: set[Path] = set()
    for entry in entries:
        if entry.new is not None or not entry.path.is_relative_to(root):
            continue
        d = entry.path.parent
        while d.is_relative_to(root) and d != root and d.parent != root:
            try:
                os.rmdir(d)
            except OSError:
                break  # not empty (or gone): stop here
            touched.add(d.parent)
            d = d.parent
    return touched


def _rollback(entries: list[_Entry], created_dirs: list[str], point: str) -> None:
    for entry in entries:
        if entry.old is None:
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass
        else:
            entry.path.parent.mkdir(parents=True, exist_ok=True)
            _write_bytes_atomic(entry.path, entry.old, entry.old_mode if entry.old_mode is not None else entry.mode)
        stray = entry.path.with_name(f".{entry.path.name}{TMP_SUFFIX}")
        if stray.exists():
            stray.unlink()
        fault(point)
    for d in sorted(created_dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


# --------------------------------------------------------------------------- the transaction


Validator = Callable[[Path, list[Change]], None]


@dataclass
class _Pending:
    text: str | None  # None: delete


class Transaction:
    """Collect a command's complete change set, validate it, apply all of it or none.

    `scope`: directories (repository-relative or absolute) the command owns; every
    write and delete must fall inside one of them. `command` names the command in
    messages and in the lock. `preview=True`: never writes, takes no lock.
    """

    def __init__(
        self,
        repo: Path | str,
        *,
        scope: Sequence[str | Path],
        command: str,
        preview: bool = False,
        lock_timeout: float | None = None,
    ):
        self.repo = Path(repo).resolve()
        self.command = command
        self.preview_only = preview
        self.lock_timeout = lock_timeout
        self.scope = [self._scope_dir(s) for s in scope]
        self._pending: dict[Path, _Pending] = {}
        self._lock_cm = None
        self._dir: Path | None = None
        self._view: Path | None = None
        self._in_view: dict[Path, str | None] = {}
        self._view_tops: set[str] = set()
        self._done = False
        self.recovered: list[str] = []
        reset_faults()

    # ------------------------------------------------------------------ context

    def __enter__(self) -> "Transaction":
        if self.preview_only:
            if needs_recovery(self.repo):
                self.recovered = recover(self.repo, self.command)
            return self
        self._lock_cm = repository_lock(self.repo, self.command, self.lock_timeout)
        self._lock_cm.__enter__()
        try:
            self.recovered = recover(self.repo, self.command)
            fault("locked")
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cleanup()
        self._release()

    def _release(self) -> None:
        if self._lock_cm is not None:
            cm, self._lock_cm = self._lock_cm, None
            cm.__exit__(None, None, None)

    def _cleanup(self) -> None:
        if self._dir is not None and self._dir.exists():
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._view = None
        self._in_view = {}
        self._view_tops = set()

    # ------------------------------------------------------------------ paths

    def _scope_dir(self, s: str | Path) -> Path:
        p = Path(s)
        p = (p if p.is_absolute() else self.repo / p).resolve()
        self._check_not_forbidden(p, str(s))
        return p

    def _check_not_forbidden(self, path: Path, shown: str) -> None:
        if path.is_relative_to(self.repo):
            parts = path.relative_to(self.repo).parts
            if parts and parts[0] in _FORBIDDEN_TOP:
                raise OutOfScope(f"refusing to write {shown}: {parts[0]}/ is never written by compose")

    def target(self, path: str | Path) -> Path:
        """The absolute, symlink-resolved target, checked against the scope."""
        raw = str(path)
        if "\x00" in raw:
            raise InvalidInput(f"invalid path {raw!r}: it contains a NUL byte")
        given = Path(path)
        given = given if given.is_absolute() else self.repo / given
        p = given.resolve()
        self._check_not_forbidden(p, raw)
        if not any(p == s or p.is_relative_to(s) for s in self.scope):
            shown = self.rel(p)
            if given.absolute() != p:  # a symbolic link on the way: name the file, then where it leads
                shown = f"{self.rel(Path(os.path.normpath(given)))} (a link to {shown})"
            owned = ", ".join(self.rel(s) + "/" for s in self.scope) or "nothing"
            raise OutOfScope(
                f"`compose {self.command}` may only write {owned}, not {shown}; nothing was written"
            )
        if p in self.scope:
            raise OutOfScope(f"{self.rel(p)} is a directory the command owns, not a file to write")
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InvalidInput(f"cannot write {self.rel(p)}: {self.rel(parent)} is a file, not a directory")
                break
        return p

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.repo).as_posix()
        except ValueError:
            return str(path)

    # ------------------------------------------------------------------ building the change set

    def write(self, path: str | Path, text: str) -> Path:
        target = self.target(path)
        if not isinstance(text, str):
            raise TypeError(f"text for {path} must be str, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"cannot write {self.rel(target)}: the text is not valid UTF-8; "
                               "check the options for undecodable bytes") from None
        if target.is_dir():
            raise InvalidInput(f"cannot write {self.rel(target)}: a directory is in the way; move it and re-run")
        self._pending[target] = _Pending(text)
        return target

    def delete(self, path: str | Path) -> Path:
        target = self.target(path)
        self._pending[target] = _Pending(None)
        return target

    def read(self, path: str | Path) -> str | None:
        """The text the file will have after the change (None: absent)."""
        p = Path(path)
        p = (p if p.is_absolute() else self.repo / p).resolve()
        if p in self._pending:
            return self._pending[p].text
        data = _read_bytes(p)
        return None if data is None else data.decode("utf-8", errors="replace")

    def exists(self, path: str | Path) -> bool:
        return self.read(path) is not None

    def pending(self) -> dict[str, str | None]:
        return {self.rel(p): v.text for p, v in sorted(self._pending.items())}

    def changes(self) -> list[Change]:
        """Every pending path with its status against the disk, sorted by path."""
        out: list[Change] = []
        for path in sorted(self._pending):
            new = self._pending[path].text
            data = _read_bytes(path)
            old = None if data is None else data.decode("utf-8", errors="replace")
            if new is None:
                if data is not None:
                    out.append(Change(path, DELETED, old, None))
            elif data is None:
                out.append(Change(path, CREATED, None, new))
            elif data == new.encode("utf-8"):
                out.append(Change(path, UNCHANGED, old, new))
            else:
                out.append(Change(path, UPDATED, old, new))
        return out

    # ------------------------------------------------------------------ the view

    def _txn_dir(self) -> Path:
        if self._dir is None:
            if self.preview_only:
                import tempfile

                self._dir = Path(tempfile.mkdtemp(prefix="compose-preview-"))
            else:
                sdir = _ensure_state_dir(self.repo, self.command)
                name = f"{TXN_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
                self._dir = sdir / name
                self._dir.mkdir()
        return self._dir

    def view(self) -> Path:
        """A directory that looks like the repository after the change. Read it, never write it."""
        if self._view is None:
            view = self._txn_dir() / "view"
            view.mkdir()
            for entry in sorted(os.listdir(self.repo)):
                if entry in _FORBIDDEN_TOP:
                    continue
                os.symlink(self.repo / entry, view / entry)
            self._view = view
        for path, pending in sorted(self._pending.items()):
            if not path.is_relative_to(self.repo) or self._in_view.get(path, object()) == pending.text:
                continue
            rel = path.relative_to(self.repo)
            self._materialize(rel.parts[0])
            vpath = self._view / rel
            if vpath.is_symlink() or vpath.exists():
                vpath.unlink()  # never write through a hard link into the real file
            if pending.text is not None:
                vpath.parent.mkdir(parents=True, exist_ok=True)
                vpath.write_text(pending.text, encoding="utf-8")
            self._in_view[path] = pending.text
        return self._view

    def _materialize(self, top: str) -> None:
        if top in self._view_tops:
            return
        assert self._view is not None
        link = self._view / top
        real = self.repo / top
        if link.is_symlink():
            link.unlink()
        if real.is_dir():
            shutil.copytree(real, link, symlinks=True, copy_function=_link_or_copy,
                            ignore=shutil.ignore_patterns("__pycache__"))
        elif real.exists():
            _link_or_copy(str(real), str(link))
        self._view_tops.add(top)

    # ------------------------------------------------------------------ validation

    def validate(self, validate: Validator | None = None, build: Iterable[str | Path] = ()) -> list[Change]:
        """Scope, YAML, kustomize builds in the view, then `validate(view, changes)`."""
        from compose.core import kustomize, yamlio

        changes = self.changes()
        pending = [c for c in changes if c.status != UNCHANGED]
        for c in pending:
            if c.new is not None and c.path.suffix in (".yaml", ".yml"):
                yamlio.load_all(c.new, self.rel(c.path))
        in_repo = [c for c in pending if c.path.is_relative_to(self.repo)]
        view = self.view() if (in_repo or build or validate) else None
        fault("staged")
        if view is not None:
            dirs = {c.path.parent.relative_to(self.repo) for c in in_repo}
            dirs |= {Path(b).resolve().relative_to(self.repo) if Path(b).is_absolute() else Path(b) for b in build}
            targets = []
            for d in sorted(dirs):
                vdir = view / d
                kfile = vdir / "kustomization.yaml"
                if kfile.is_file() and not kustomize.is_component(kfile):
                    targets.append((d, vdir))
            self._build_all(view, targets)
            if validate is not None:
                validate(view, changes)
        fault("validated")
        return changes

    def _build_all(self, view: Path, targets: list[tuple[Path, Path]]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from compose.core import kustomize
        from compose.core.errors import BuildFailed

        if not targets:
            return

        def one(item):
            rel, vdir = item
            try:
                kustomize.build(vdir, display=rel.as_posix())
                return None
            except BuildFailed as err:
                return str(err).replace(str(view) + "/", "")

        with ThreadPoolExecutor(max_workers=min(4, len(targets))) as pool:
            problems = [m for m in pool.map(one, targets) if m]
        if problems:
            raise InvalidInput(
                f"the change would not build, so nothing was written: {'; '.join(problems)}; "
                "fix the base, component or hand-edited file named there and re-run"
            )

    def preview(self, validate: Validator | None = None, *, check: bool = False, build: Iterable[str | Path] = ()
                ) -> list[Change]:
        """The changes without writing; with `check`, validation is skipped (only drift matters)."""
        try:
            if check:
                return self.changes()
            return self.validate(validate, build)
        finally:
            self._cleanup()

    # ------------------------------------------------------------------ commit

    def commit(self, validate: Validator | None = None, build: Iterable[str | Path] = ()) -> list[Change]:
        """Validate, then apply every change or none (see the module docstring)."""
        if self.preview_only:
            raise RuntimeError("a preview transaction cannot commit")
        if self._done:
            raise RuntimeError("transaction already committed")
        changes = self.validate(validate, build)
        pending = [c for c in changes if c.status != UNCHANGED]
        if not pending:
            self._done = True
            self._cleanup()
            return changes
        umask = current_umask()
        entries = []
        created_dirs: set[str] = set()
        for c in pending:
            try:
                st = c.path.stat() if c.status != CREATED else None
                old = c.path.read_bytes() if st is not None else None
            except OSError as err:
                raise NotWritable(f"cannot read {self.rel(c.path)} ({err.strerror}); nothing was changed") from None
            old_mode = stat.S_IMODE(st.st_mode) if st is not None else None
            mode = old_mode if old_mode is not None else 0o666 & ~umask
            new = None if c.new is None else c.new.encode("utf-8")
            entries.append(_Entry(c.path, new, mode, old, old_mode))
            parent = c.path.parent
            while not parent.exists():
                created_dirs.add(str(parent))
                parent = parent.parent
            self._check_writable(parent, c.path)
        fault("prepared")
        tdir = self._txn_dir()
        journal = tdir / JOURNAL
        doc = {"format": 2, "command": self.command, "pid": os.getpid(), "state": "commit",
               "scope": [self.rel(d) for d in self.scope],
               "entries": [e.to_doc(self.repo) for e in entries],
               "created_dirs": sorted(self.rel(Path(d)) for d in created_dirs)}
        with deferred_signals():
            _write_json_atomic(journal, doc)  # the commit point
            fault("committed")
            try:
                _apply_entries(entries, "applying", self.repo)
            except OSError as err:
                doc["state"] = "rollback"
                _write_json_atomic(journal, doc)
                _rollback(entries, sorted(created_dirs), "recovering")
                journal.unlink()
                self._cleanup()
                where = getattr(err, "filename", None)
                shown = self.rel(Path(where)) if where else "a file"
                raise NotWritable(
                    f"cannot write {shown} ({err.strerror or err}); every file of this "
                    f"`compose {self.command}` was restored, nothing was changed; fix the cause and re-run"
                ) from None
            fault("applied")
            journal.unlink()
            _fsync_dir(tdir)
            fault("finished")
        self._done = True
        self._cleanup()
        return changes

    def _check_writable(self, directory: Path, target: Path) -> None:
        if not os.access(directory, os.W_OK | os.X_OK):
            raise NotWritable(
                f"cannot write {self.rel(target)}: {self.rel(directory) or '.'}/ is not writable "
                "(a read-only checkout?); nothing was changed"
            )


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


__all__ = [
    "Transaction",
    "RepositoryBusy",
    "NotWritable",
    "OutOfScope",
    "recover",
    "recover_if_needed",
    "needs_recovery",
    "repository_lock",
    "state_dir",
    "FAULT_POINTS",
    "FAULT_ENV",
    "FAULT_ACTION_ENV",
    "LOCK_TIMEOUT_ENV",
]
