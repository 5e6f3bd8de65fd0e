"""`compose canary`: try another vLLM, revision or setting on a share of one model's traffic.

Each command is one reviewed Git change, made as one transaction (compose.core.transaction).
A library function *plans* the complete overlay change set, every file to create, update
or delete under `overlays/<x>/` and `overlays/<x>-canary/`, as one `FileSet` over the
repository root. `apply_change()` is the one function that writes it: a `Transaction`
whose scope is the two overlays and every recorded GitOps tree (argocd/, flux/, ...)
stages the overlay files, refreshes the GitOps trees against the staged view (an
Application or Kustomization for the canary appears or goes), validates all of it (every
YAML parses, every changed kustomization builds, and with `validate=True` `compose check`
passes on the overlays the command touches) and applies all of it or none, under the
repository lock, with crash recovery. `validate()` and `preview()` run the same staging
without writing (`--dry-run`). An overlay directory the change empties is removed with it.

| command | stable overlay `<x>` | canary overlay `<x>-canary` |
|---|---|---|
| `start X ... --weight N` | inputs gain `canary_weight: N`: route weights (100-N):N, its vLLM series scoped to its own pods, the canary-vs-stable alert group | created: X's inputs + the change, `canary_of: X`, fixed replicas, X's namespace, X's cache when the weights are the same |
| `set-weight X N` | `canary_weight: N` | unchanged |
| `promote X` | the canary's inputs folded in, `canary_weight` removed | deleted |
| `abort X` | `canary_weight` removed | deleted |
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from compose.core.errors import Findings, InvalidInput, NotOurs
from compose.core.transaction import Transaction
from compose.core.writer import UNCHANGED, Change, FileSet
from compose.generate import overlay, routing
from compose.plan import planner
from compose.generate.options import KUSTOMIZATION, PLAN_FILE, Options, is_generated

# `--set KEY=VALUE`: the inputs a canary may change, with their types. The model, env, name,
# namespace, cloud and monitoring are the stable overlay's: a canary is the same model
# in the same place; replicas are fixed (--replicas).
SETTABLE: dict[str, type] = {
    "gpu": str,
    "spot": bool,
    "max_model_len": int,
    "tensor_parallel_size": int,
    "gpu_memory_utilization": float,
    "kv_cache_dtype": str,
    "prompt_tokens": int,
    "output_tokens": int,
    "max_output_tokens": int,
}
# What `promote` folds from the canary's inputs into the stable overlay's. image_digest
# goes with image: a stable overlay pinned by --image-digest would otherwise keep its old
# digest under the promoted tag, and the digest, not the tag, decides what runs.
FOLDED = ("image", "image_digest", "revision", *SETTABLE)
DEFAULT_REPLICAS = 1
MAX_REPLICAS = 4
VLLM_IMAGE = routing.VLLM_IMAGE
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


@dataclass
class CanaryChange:
    """The complete change set of one command, as one FileSet over the repository root."""

    command: str
    stable: str
    canary: str
    fileset: FileSet
    check_dirs: list[str] = field(default_factory=list)  # overlays/<name> that `compose check` must pass
    notes: list[str] = field(default_factory=list)

    def changes(self) -> list[Change]:
        """Every file the command would change, GitOps trees included (nothing is written)."""
        return preview(self.fileset.root, self)

    def diff(self) -> str:
        root = Path(self.fileset.root).resolve()
        return "".join(c.diff(root) for c in self.changes())

    def scope(self) -> list[str]:
        """The directories the transaction may write: both overlays and every recorded GitOps tree."""
        from compose.publish import gitops

        return [f"overlays/{self.stable}", f"overlays/{self.canary}",
                *(s.out for s in gitops.recorded_settings(self.fileset.root))]


# --------------------------------------------------------------------------- inputs

MAX_SETS = 16  # --set pairs one canary may take
_OVERLAY_ARG = re.compile(r"[a-z0-9][-a-z0-9]{0,70}")
_VERSION = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(?:[.+-][A-Za-z0-9]{1,32}){0,4}")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_sets(items: Iterable[str]) -> dict:
    """`--set KEY=VALUE` pairs, typed; unknown keys and bad values are one-line errors.
    The values then pass the compose-plan.yaml inputs schema with the rest of the canary."""
    out: dict = {}
    items = list(items or ())
    if len(items) > MAX_SETS:
        raise InvalidInput(f"{len(items)} --set pairs: a canary changes at most {MAX_SETS} inputs")
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidInput(f"invalid --set {_short(item)}: write KEY=VALUE, e.g. --set max_model_len=16384")
        if key not in SETTABLE:
            raise InvalidInput(f"invalid --set {_short(key)}: a canary may change {', '.join(sorted(SETTABLE))} "
                               "(the image with --image/--vllm-version, the weights with --revision)")
        kind = SETTABLE[key]
        raw = raw.strip()
        try:
            if len(raw) > 64:  # no value of these keys is longer; int() of a huge string is slow
                raise ValueError
            if kind is bool:
                if raw.lower() not in _TRUE | _FALSE:
                    raise ValueError
                value = raw.lower() in _TRUE
            else:
                value = kind(raw)
        except ValueError:
            raise InvalidInput(f"invalid --set {_short(item)}: {key} takes a {kind.__name__}") from None
        out[key] = value
    return out


def _plan_doc(directory: Path) -> dict:
    shown = f"overlays/{directory.name}/{PLAN_FILE}"
    if not overlay.owned(directory):
        raise NotOurs(f"overlays/{directory.name} was not generated by compose (no {PLAN_FILE} with our header); "
                      "a canary needs an overlay compose manages")
    return overlay.load_plan_file(directory, shown)


def _check_overlay_arg(name: str) -> str:
    """OVERLAY: an overlay's name (or overlays/<name>), never a path elsewhere."""
    name = str(name)
    if name.startswith("overlays/"):
        name = name.removeprefix("overlays/").rstrip("/")
    if not _OVERLAY_ARG.fullmatch(name):
        raise InvalidInput(f"no overlay {_short(name)}: give an overlay's name (see `compose list`)")
    return name


def resolve(root: Path, name: str) -> tuple[str, Path]:
    """The stable overlay for OVERLAY (its name, or its canary's)."""
    name = _check_overlay_arg(name)
    if name.endswith(routing.CANARY_SUFFIX) and (Path(root) / "overlays" / name / PLAN_FILE).is_file():
        doc = _plan_doc(Path(root) / "overlays" / name)
        stable = doc["inputs"].get("canary_of")
        if stable:
            name = stable
    directory = overlay.overlays_dir(root) / name
    if not (directory / KUSTOMIZATION).is_file():
        raise InvalidInput(f"no overlay {name!r} (looked for overlays/{name}/{KUSTOMIZATION}); run `compose list`")
    return name, directory


def _stable(root: Path, name: str) -> tuple[str, Path, dict, Options]:
    stable, directory = resolve(root, name)
    doc = _plan_doc(directory)
    opts = Options.from_inputs(doc["inputs"], f"overlays/{stable}/{PLAN_FILE}")
    if opts.canary_of is not None:  # pragma: no cover - resolve() maps canaries to their stable
        raise InvalidInput(f"{stable} is itself a canary (of {opts.canary_of})")
    return stable, directory, doc, opts


def _canary(root: Path, stable: str) -> tuple[Path, dict, Options] | None:
    directory = overlay.overlays_dir(root) / routing.canary_name(stable)
    if not (directory.exists() or directory.is_symlink()):
        return None
    if directory.is_symlink() or not directory.is_dir():
        raise NotOurs(f"overlays/{directory.name} exists and is not a directory compose generated; move it away")
    doc = _plan_doc(directory)
    opts = Options.from_inputs(doc["inputs"], f"overlays/{directory.name}/{PLAN_FILE}")
    if opts.canary_of != stable:
        raise InvalidInput(f"overlays/{directory.name} exists but is not the canary of {stable} (its canary_of is "
                           f"{opts.canary_of!r}); move it away")
    return directory, doc, opts


def _require_canary(root: Path, stable: str, stable_opts: Options) -> tuple[Path, dict, Options]:
    found = _canary(root, stable)
    if found is None or stable_opts.canary_weight is None:
        raise InvalidInput(f"{stable} has no canary running; start one with "
                           f"`compose canary start {stable} --image ... --weight 10`")
    return found


def _weight(weight: int) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InvalidInput(f"invalid --weight {_short(weight)}: the canary's share of traffic in percent, 0 to 100")
    return weight


def _short_name(stable: str, env: str) -> str:
    return stable[len(env) + 1:] if stable.startswith(f"{env}-") else stable


# --------------------------------------------------------------------------- file sets


class _Collector:
    """Takes what `overlay.stage()` would put into a transaction, into a FileSet."""

    def __init__(self, fs: FileSet):
        self.fs = fs

    def write(self, path: Path, text: str) -> None:
        self.fs.add(path, text)

    def delete(self, path: Path) -> None:
        self.fs.delete(path)


def _overlay_files(root: Path, fs: FileSet, opts: Options, directory: Path, plan: dict | None = None,
                   notes: list[str] | None = None) -> overlay.Generated:
    """Add an overlay's generated files to `fs`, exactly as `new-model`/`regen` stage them:
    files a person took over are left alone (and named in `notes`), generated patches that
    no longer apply are deleted, the namespace and the canary pairing are checked."""
    result = overlay.stage(root, opts, _Collector(fs), allow_existing=True, plan=plan, expect=directory.name)
    for path in result.kept:
        if notes is not None:
            notes.append(f"kept overlays/{directory.name}/{path.name}: hand-edited (no generated header), left alone")
    return result.generated


def _delete_overlay(root: Path, fs: FileSet, directory: Path) -> None:
    """Delete every file of a generated overlay; refuse if a person added or took over one."""
    files = [p for p in sorted(directory.rglob("*")) if not p.is_dir()]
    foreign = [p.relative_to(directory).as_posix() for p in files
               if p.is_symlink() or not is_generated(overlay._read(p) or "")]
    if foreign:
        raise NotOurs(f"overlays/{directory.name} holds files compose did not generate ({', '.join(foreign[:5])}); "
                      "move them out of the canary overlay first")
    rel = directory.resolve().relative_to(root.resolve())
    for p in files:
        fs.delete(rel / p.relative_to(directory))


def _finish(command: str, root: Path, stable: str, fs: FileSet, check: list[str], notes: list[str]) -> CanaryChange:
    return CanaryChange(command, stable, routing.canary_name(stable), fs, check, notes)


# --------------------------------------------------------------------------- commands


def plan_start(
    root: Path | str,
    name: str,
    *,
    weight: int,
    image: str | None = None,
    vllm_version: str | None = None,
    revision: str | None = None,
    sets: Iterable[str] = (),
    replicas: int = DEFAULT_REPLICAS,
) -> CanaryChange:
    """`compose canary start`: a sibling overlay `<x>-canary` and the stable route's split.

    The canary is the stable overlay's inputs plus the change (--image, --vllm-version,
    --revision, --set KEY=VALUE), in the stable overlay's namespace, at a fixed replica
    count, with the same served model name. When its weights are the stable overlay's
    (same Hub repository and revision) it mounts the stable overlay's cache: no second download.
    """
    root = Path(root).resolve()
    weight = _weight(weight)
    if image and vllm_version:
        raise InvalidInput("--image and --vllm-version both choose the image; pass one of them")
    image = routing.normalize_image(image)
    if vllm_version:
        version = vllm_version.removeprefix("v")
        if not _VERSION.fullmatch(version):
            raise InvalidInput(f"invalid --vllm-version {_short(vllm_version)}: a vLLM release X.Y.Z, e.g. 0.33.1")
        image = f"{VLLM_IMAGE}:v{version}"
    if image is not None:
        # Canarying a new vLLM release is the main use: refuse an image whose release has no
        # flag list now (one line, exit 2, nothing staged), not as a `compose check` finding
        # after planning. The release is read from the tag exactly as the vllm-flags rule does.
        from compose.verify import policy

        version = policy.image_vllm_version(image)
        if policy.valid_flags(version) is None:
            known = ", ".join(sorted(policy.known_flag_versions())) or "none"
            raise InvalidInput(
                f"no flag list for vLLM {version} ({_short(image)}), so `compose check` cannot check its flags: add it "
                f"with `pip download vllm=={version} --no-deps -d /tmp/vllm && python tools/extract_vllm_flags.py "
                f"/tmp/vllm/vllm-{version}-*.whl > compose/data/vllm-flags-{version}.txt`, or canary a release "
                f"that has one (--vllm-version {known})")
    changes = parse_sets(sets)
    if not (image or revision or changes):
        raise InvalidInput("a canary must change something: pass --image, --vllm-version, --revision or --set KEY=VALUE")
    if isinstance(replicas, bool) or not 1 <= int(replicas) <= MAX_REPLICAS:
        raise InvalidInput(f"invalid --replicas {replicas!r}: a canary runs a fixed 1 to {MAX_REPLICAS} replicas")
    stable, sdir, sdoc, sopts = _stable(root, name)
    from compose.core.names import MAX_OVERLAY_NAME

    if len(routing.canary_name(stable)) > MAX_OVERLAY_NAME:
        room = MAX_OVERLAY_NAME - len(routing.CANARY_SUFFIX)
        raise InvalidInput(f"{stable} is {len(stable)} characters, so its canary {routing.canary_name(stable)} would "
                           f"be longer than the {MAX_OVERLAY_NAME} an overlay name may have: a stable overlay with a "
                           f"canary needs a name of at most {room} characters (regenerate it with a shorter --name)")
    if _canary(root, stable) is not None or sopts.canary_weight is not None:
        raise InvalidInput(f"{stable} already has a canary ({routing.canary_name(stable)}); "
                           f"`compose canary set-weight|promote|abort {stable}` first")
    if not routing.has_route(sopts):
        raise InvalidInput(f"{stable} has no route to split: regenerate it behind a Gateway "
                           f"(compose new-model ... --gateway NS/NAME --force), then start the canary")
    if not sopts.monitoring:
        raise InvalidInput(f"{stable} has no monitoring: a canary is judged by its alerts against the stable "
                           "pods; regenerate it without --no-monitoring")
    namespace = (sdoc.get("overlay") or {}).get("namespace") or stable
    new = {k: v for k, v in {"image": image, "revision": revision, **changes}.items() if v is not None}
    # the stable overlay without --image runs the base's image, vLLM's release the planner models
    current = {"image": sopts.image or f"{VLLM_IMAGE}:v{planner.VLLM_VERSION}"}
    if all(current.get(k, getattr(sopts, k)) == v for k, v in new.items()):
        same = "already has that value" if len(new) == 1 else "already have these values"
        raise InvalidInput(f"the canary would equal {stable}: {', '.join(sorted(new))} {same}; change something")
    copts = dataclasses.replace(
        sopts,
        **new,
        name=f"{_short_name(stable, sopts.env)}{routing.CANARY_SUFFIX}",
        namespace=namespace,
        replicas=f"{replicas}:{replicas}",
        canary_of=stable,
        canary_weight=None,
        gateway=None,
        hostname=None,
        route_match=None,
    )
    copts.check()  # --image, --revision and every --set value through the inputs schema, before planning
    if image is not None and sopts.image_digest:
        # The stable overlay's --image-digest pins the stable image: kept, it would pin the
        # canary to the stable bytes under the new tag (patch-image.yaml). The canary's
        # image is what --image/--vllm-version says, by digest if that reference has one.
        copts = dataclasses.replace(copts, image_digest=None)
    splan, _ = overlay.make_plan(sopts, root)
    splan = overlay.with_revision(splan, sopts.revision)
    cplan, notes = overlay.make_plan(copts, root)
    cplan = overlay.with_revision(cplan, copts.revision)
    same_weights = (splan["hf_repo"], splan.get("revision"), splan["model_dir"]) == (
        cplan["hf_repo"], cplan.get("revision"), cplan["model_dir"])
    copts = dataclasses.replace(copts, shared_cache=True if same_weights else None)
    if cplan["served_model_name"] != splan["served_model_name"]:  # pragma: no cover - same model, same name
        raise InvalidInput("the canary would serve another model name; a canary serves the same model")

    fs = FileSet(root)
    cdir = overlay.overlays_dir(root) / routing.canary_name(stable)
    _overlay_files(root, fs, copts, cdir, cplan, notes)
    _overlay_files(root, fs, dataclasses.replace(sopts, canary_weight=weight), sdir, notes=notes)
    notes.append(
        f"{routing.canary_name(stable)} "
        + ("mounts " + f"{stable}-vllm-models (same weights: no second download)" if same_weights
           else "has its own cache (other weights: it downloads them once)")
        + f"; route weights {stable}-vllm {100 - weight} / {routing.canary_name(stable)}-vllm {weight}")
    return _finish("start", root, stable, fs, [str(sdir.relative_to(root)), str(cdir.relative_to(root))], notes)


def plan_set_weight(root: Path | str, name: str, weight: int) -> CanaryChange:
    """`compose canary set-weight`: the stable route's split becomes (100-N):N."""
    root = Path(root).resolve()
    weight = _weight(weight)
    stable, sdir, _, sopts = _stable(root, name)
    cdir, _, _ = _require_canary(root, stable, sopts)
    fs = FileSet(root)
    notes: list[str] = []
    _overlay_files(root, fs, dataclasses.replace(sopts, canary_weight=weight), sdir, notes=notes)
    notes += [f"route weights {stable}-vllm {100 - weight} / {routing.canary_name(stable)}-vllm {weight}"]
    return _finish("set-weight", root, stable, fs, [str(sdir.relative_to(root)), str(cdir.relative_to(root))], notes)


def plan_promote(root: Path | str, name: str) -> CanaryChange:
    """`compose canary promote`: fold the canary's inputs into the stable overlay, remove the canary."""
    root = Path(root).resolve()
    stable, sdir, _, sopts = _stable(root, name)
    cdir, _, copts = _require_canary(root, stable, sopts)
    folded = {k: getattr(copts, k) for k in FOLDED if getattr(copts, k) != getattr(sopts, k)}
    fs = FileSet(root)
    _overlay_files(root, fs, dataclasses.replace(sopts, **folded, canary_weight=None), sdir)
    _delete_overlay(root, fs, cdir)
    notes = [f"{stable} takes {', '.join(f'{k}={v}' for k, v in sorted(folded.items())) or 'no new inputs'}; "
             f"{routing.canary_name(stable)} is removed"]
    if sopts.canary_weight:
        notes.append(f"the canary's {sopts.canary_weight}% moves back to {stable} in the same sync; for a "
                     f"zero-error switch run `compose canary set-weight {stable} 0` and let it sync first")
    if "revision" in folded:
        notes.append(f"{stable} downloads revision {folded['revision']} into its own cache as it rolls out")
    return _finish("promote", root, stable, fs, [str(sdir.relative_to(root))], notes)


def _orphan(root: Path, name: str) -> tuple[str, Path] | None:
    """(stable, canary directory) when OVERLAY names a canary whose stable overlay is gone."""
    name = _check_overlay_arg(name)
    cdir = overlay.overlays_dir(root) / (name if name.endswith(routing.CANARY_SUFFIX) else routing.canary_name(name))
    if cdir.is_symlink() or not (cdir / PLAN_FILE).is_file():
        return None
    stable = _plan_doc(cdir)["inputs"].get("canary_of")
    if not isinstance(stable, str) or (overlay.overlays_dir(root) / stable / KUSTOMIZATION).is_file():
        return None
    return stable, cdir


def plan_abort(root: Path | str, name: str) -> CanaryChange:
    """`compose canary abort`: remove the canary; all traffic back to the stable overlay.
    A canary whose stable overlay was deleted by hand is removed on its own."""
    root = Path(root).resolve()
    orphan = _orphan(root, name)
    if orphan:
        stable, cdir = orphan
        fs = FileSet(root)
        _delete_overlay(root, fs, cdir)
        return _finish("abort", root, stable, fs, [],
                       [f"{cdir.name} is removed; its stable overlay {stable} no longer exists, so nothing takes its "
                        "traffic"])
    stable, sdir, _, sopts = _stable(root, name)
    cdir, _, _ = _require_canary(root, stable, sopts)
    fs = FileSet(root)
    _overlay_files(root, fs, dataclasses.replace(sopts, canary_weight=None), sdir)
    _delete_overlay(root, fs, cdir)
    return _finish("abort", root, stable, fs, [str(sdir.relative_to(root))],
                   [f"{routing.canary_name(stable)} is removed; {stable} takes all traffic"])


# --------------------------------------------------------------------------- validate and apply


def _stage(root: Path, txn: Transaction, change: CanaryChange) -> None:
    """The overlay files, then every recorded GitOps tree refreshed against the staged view."""
    from compose.publish import gitops

    for path, text in sorted(change.fileset.files.items()):
        txn.write(path, text)
    for path in sorted(change.fileset.deletions):
        txn.delete(path)
    gitops.stage_all(root, txn)


def _checker(root: Path, change: CanaryChange, crd_dir: Path | None):
    """The transaction's last validation step: `compose check` on the overlays the command
    touches, as they will be (Findings, exit 1, and nothing written, if any check fails).
    The CRDs are the repository's (`../shared/crds` beside `root`, or the one given), not
    beside the staging copy the check runs on."""
    from compose.verify import checks
    from compose.verify.validate import default_crd_dir

    crd_dir = crd_dir or default_crd_dir(root)

    def run(view: Path, _changes: list[Change]) -> None:
        dirs = [view / d for d in change.check_dirs if (view / d / KUSTOMIZATION).is_file()]
        reports = checks.check_directories(view, dirs, crd_dir=crd_dir)
        failed = [f for r in reports for f in r.findings]
        if failed:
            raise Findings(
                f"compose canary {change.command} {change.stable}: the change fails `compose check` "
                f"({len(failed)} finding(s)); nothing was written",
                findings=[f"  {f.source} {f.obj} {f.field}: {f.problem}\n    fix: {f.fix} [{f.check}]" for f in failed],
            )

    return run


def preview(root: Path | str, change: CanaryChange, *, validate: bool = False,
            crd_dir: Path | None = None) -> list[Change]:
    """The changed files of the whole change (GitOps trees included), without writing; with
    `validate`, the transaction's validation (builds, `compose check`) runs too."""
    root = Path(root).resolve()
    with Transaction(root, scope=change.scope(), command=f"canary {change.command}", preview=True) as txn:
        _stage(root, txn, change)
        changes = txn.preview(_checker(root, change, crd_dir)) if validate else txn.preview(check=True)
    return [c for c in changes if c.status != UNCHANGED]


def validate(root: Path | str, change: CanaryChange, crd_dir: Path | None = None) -> None:
    """Stage the change and run `compose check` on the overlays it touches; raise Findings
    (nothing written) if any check fails."""
    preview(root, change, validate=True, crd_dir=crd_dir)


def apply_change(root: Path | str, change: CanaryChange, *, dry_run: bool = False, validate: bool = False,
                 crd_dir: Path | None = None) -> list[Change]:
    """The one place a canary command writes: one transaction over both overlays and the
    GitOps trees (lock, staged validation, journal, all or nothing); `validate` adds
    `compose check` to the validation. Returns the created/updated/deleted files."""
    root = Path(root).resolve()
    if dry_run:
        return preview(root, change, validate=validate, crd_dir=crd_dir)
    with Transaction(root, scope=change.scope(), command=f"canary {change.command}") as txn:
        _stage(root, txn, change)
        changes = txn.commit(_checker(root, change, crd_dir) if validate else None)
    return [c for c in changes if c.status != UNCHANGED]


def run(root: Path | str, name: str, plan, *, dry_run: bool = False, validate: bool = True,
        crd_dir: Path | None = None) -> tuple[CanaryChange, list[Change]]:
    """Plan and apply one command as one transaction: `plan(root)` runs under the repository
    lock (after recovery), so what it read is what the change replaces."""
    root = Path(root).resolve()
    if dry_run:
        change = plan(root)
        return change, preview(root, change, validate=validate, crd_dir=crd_dir)
    orphan = _orphan(root, name)
    stable = orphan[0] if orphan else resolve(root, name)[0]
    from compose.core.transaction import repository_lock

    with repository_lock(root, "canary"):
        change = plan(root)
        if change.stable != stable:  # pragma: no cover - the stable overlay moved under us
            raise InvalidInput(f"{name}: the overlays changed while planning; re-run")
        return change, apply_change(root, change, validate=validate, crd_dir=crd_dir)


__all__ = [
    "CanaryChange", "apply_change", "parse_sets", "plan_abort", "plan_promote", "plan_set_weight",
    "plan_start", "preview", "resolve", "run", "validate",
]
