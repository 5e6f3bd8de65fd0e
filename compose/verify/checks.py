"""`compose check`: build, validate, apply policy, and compare with a fresh plan.

Every finding from every overlay is collected before anything fails.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from compose.core import kustomize
from compose.core.errors import ComposeError
from compose.core.findings import Finding, obj_id
from compose.generate import overlay

DEFAULT_KUBE_VERSIONS = ("1.30", "1.33")


@dataclass
class OverlayReport:
    source: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def build_all(directories: Iterable[Path]) -> dict[Path, kustomize.Rendered | ComposeError]:
    """Render many directories in parallel; an error is kept per directory."""

    def one(d: Path):
        try:
            return kustomize.build(d)
        except ComposeError as err:
            if isinstance(err, kustomize.ToolMissing):
                raise
            return err

    dirs = list(directories)
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(dirs)))) as pool:
        return dict(zip(dirs, pool.map(one, dirs)))


def check_directories(
    repo: Path,
    directories: list[Path],
    kube_versions: tuple[str, ...] = DEFAULT_KUBE_VERSIONS,
    crd_dir: Path | None = None,
    require_digest: bool = False,
) -> list[OverlayReport]:
    from compose.verify import validate

    kustomize.kubectl()
    crd_dir = Path(crd_dir) if crd_dir else validate.default_crd_dir(repo)
    builds = build_all(directories)
    reports = []
    for directory, rendered in builds.items():
        source = _rel(repo, directory)
        report = OverlayReport(source)
        if isinstance(rendered, ComposeError):
            report.findings.append(Finding(source, "-", "kustomization.yaml", str(rendered), "fix the build error", "build"))
            reports.append(report)
            continue
        if rendered.warnings:
            report.findings.append(
                Finding(source, "-", "kustomization.yaml", f"kustomize warned: {rendered.warnings}",
                        "use current kustomize fields only", "build")
            )
        readme = nearest_readme(repo, directory)
        report.findings += validate.validate_core(rendered.docs, source, kube_versions=kube_versions)
        report.findings += validate.validate_custom(rendered.docs, source, crd_dir)
        report.findings += _policy(rendered.docs, source, readme.read_text() if readme else None, require_digest)
        if (directory / overlay.PLAN_FILE).exists():
            report.findings += plan_consistency(repo, directory, rendered.docs, source)
            report.findings += _canary_consistency(repo, directory, rendered.docs, source)
        elif directory.resolve() == (Path(repo) / "base" / "vllm").resolve():
            report.findings += base_consistency(repo, rendered.docs, source)
        report.findings.sort()
        reports.append(report)
    return reports


def nearest_readme(repo: Path, directory: Path) -> Path | None:
    """The README that documents a directory: its own, or the nearest one above it in the repo."""
    repo = Path(repo).resolve()
    for d in (Path(directory).resolve(), *Path(directory).resolve().parents):
        if (d / "README.md").exists():
            return d / "README.md"
        if d == repo:
            break
    return None


def _canary_consistency(repo, directory, docs, source):
    from compose.verify import routingpolicy

    return routingpolicy.canary_consistency(repo, directory, docs, source)


def _policy(docs, source, readme_text, require_digest=False):
    from compose.verify import policy

    return policy.check_policy(docs, source, readme_text=readme_text, require_digest=require_digest)


# --------------------------------------------------------------------------- the repository as a whole

REPOSITORY = "(repository)"
# Where generated (and hand-kept) manifests live; the GitOps trees are found by their
# recorded settings file, wherever `compose gitops --out` put them.
SCANNED_DIRS = ("overlays", "base", "components")
GITOPS_SETTINGS_FILE = "compose-gitops.yaml"  # compose.publish.gitops.SETTINGS_FILE
SCANNED_SUFFIXES = (".yaml", ".yml", ".json", ".md")


def scanned_files(repo: Path) -> list[Path]:
    """Every manifest and README compose writes or renders from: overlays/, base/,
    components/ and each GitOps output tree (argocd/, flux/ by default)."""
    root = Path(repo).resolve()
    tops = [root / d for d in SCANNED_DIRS]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("tests", "node_modules"))
        if GITOPS_SETTINGS_FILE in filenames:
            tops.append(Path(dirpath))
    out: set[Path] = set()
    for top in tops:
        if not top.is_dir():
            continue
        for path in top.rglob("*"):
            rel = path.relative_to(root).parts
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and not any(p.startswith(".") for p in rel):
                out.add(path)
    return sorted(out)


def scan_secrets(repo: Path) -> list[Finding]:
    """Credentials in any file of `scanned_files`: URLs with userinfo and provider
    tokens (compose.core.secrets), reported by file and line, the secret redacted."""
    from compose.core import secrets

    root = Path(repo).resolve()
    findings = []
    for path in scanned_files(root):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for leak in secrets.leaks(line):
                findings.append(Finding(
                    REPOSITORY, str(path.relative_to(root)), f"line {lineno}",
                    f"{'a URL with credentials' if leak.kind == 'url-userinfo' else 'a ' + leak.kind + ' token'} "
                    f"({leak.text}) is committed: anyone who can read the repository has it",
                    "revoke it, remove it from the file and from Git history; keep credentials in Secrets "
                    "(Argo CD repository Secret, Flux secretRef, KEDA TriggerAuthentication)", "secrets"))
    return findings


def _stable_and_its_canaries(users: list[str], canaries: dict[str, list[str]]) -> bool:
    """True when the overlays sharing a namespace are one stable overlay and its own
    canaries (recorded inputs.canary_of): the one sharing compose allows, since a canary
    renders neither the Namespace nor the claim (overlay.check_namespace_free)."""
    return any(set(users) <= {stable, *canaries.get(stable, ())} for stable in users)


def check_namespaces(repo: Path) -> list[Finding]:
    """One namespace per overlay, and none another owner holds (compose.core.names).
    A canary shares its stable overlay's namespace (compose canary): not a finding."""
    from compose.core import names

    findings = []
    canaries = overlay.canary_users(repo)
    for ns, users in sorted(overlay.namespace_users(repo).items()):
        if len(users) > 1 and not _stable_and_its_canaries(users, canaries):
            for name in users:
                findings.append(Finding(
                    REPOSITORY, f"overlays/{name}", "namespace",
                    f"namespace {ns} is used by {len(users)} overlays ({', '.join(users)}): each owns (labels, "
                    "syncs, never prunes) the same Namespace and their objects can collide",
                    f"give each overlay its own namespace (`compose new-model ... --namespace` or inputs.namespace "
                    f"in compose-plan.yaml, then `compose regen {name}`)", "namespace"))
        why = names.reserved_namespace(ns)
        if why:
            for name in users:
                findings.append(Finding(
                    REPOSITORY, f"overlays/{name}", "namespace", f"the overlay renders into {ns}: {why}",
                    "render it into its own namespace (the default is the overlay name)", "namespace"))
    return findings


def check_gitops_settings(repo: Path) -> list[Finding]:
    """The recorded `--repo-url` of every GitOps tree: no credentials, no `{{`/`}}`
    (a hand edit of compose-gitops.yaml would otherwise reach the ApplicationSet)."""
    from compose.core import secrets, yamlio
    from compose.core.errors import ComposeError

    root = Path(repo).resolve()
    findings = []
    for path in (p for p in scanned_files(root) if p.name == GITOPS_SETTINGS_FILE):
        try:
            doc = yamlio.load_file(path)
        except ComposeError as err:
            findings.append(Finding(REPOSITORY, str(path.relative_to(root)), "-", str(err), "regenerate it", "gitops"))
            continue
        url = str((doc or {}).get("repo_url") or "") if isinstance(doc, dict) else ""
        problem = secrets.git_url_problem(url)
        if problem:
            findings.append(Finding(REPOSITORY, str(path.relative_to(root)), "repo_url", f"the repository URL: {problem}",
                                    "run `compose gitops <flavour> --repo-url <plain https or ssh URL>`", "gitops"))
    return findings


def check_repository(repo: Path) -> OverlayReport:
    """What `compose check --all` adds to the per-build checks."""
    report = OverlayReport(REPOSITORY)
    report.findings = sorted(check_namespaces(repo) + scan_secrets(repo) + check_gitops_settings(repo))
    return report


def _rel(repo: Path, directory: Path) -> str:
    try:
        return str(Path(directory).resolve().relative_to(Path(repo).resolve()))
    except ValueError:
        return str(directory)


# --------------------------------------------------------------------------- plan consistency


def plan_consistency(repo: Path, directory: Path, docs: list[dict], source: str) -> list[Finding]:
    """Every value the fresh plan's patches would set must be what was rendered.

    Re-plans from the recorded inputs with today's planner and catalog, renders the
    patches in memory, and walks each patch leaf by leaf against the rendered
    object (lists of named items are matched by name). A difference means the
    committed overlay no longer matches the plan: regenerate it.
    """
    try:
        doc = overlay.load_plan_file(directory)
        opts = overlay.Options.from_inputs(doc["inputs"])
        fresh = overlay.generate(opts, repo)
    except ComposeError as err:
        return [Finding(source, "-", overlay.PLAN_FILE, f"cannot re-plan: {err}", "fix the recorded inputs", "plan")]
    prefix = (doc.get("overlay") or {}).get("name_prefix", "")
    return compare_patches(fresh, prefix, docs, source, f"run `compose regen {fresh.name}` and review the diff")


def base_consistency(repo: Path, docs: list[dict], source: str) -> list[Finding]:
    """The base's numbers must be the planner's for its documented reference request."""
    try:
        fresh = overlay.generate(overlay.BASE_REFERENCE, repo)
    except ComposeError as err:
        return [Finding(source, "-", "-", f"cannot plan the base's reference request: {err}", "fix the catalog", "plan")]
    fix = f"set the value in base/vllm to the planner's ({overlay.command_line(overlay.BASE_REFERENCE)})"
    return compare_patches(fresh, "", docs, source, fix)


def compare_patches(fresh: "overlay.Generated", prefix: str, docs: list[dict], source: str, fix: str) -> list[Finding]:
    """Walk every patch of a freshly generated overlay against the rendered objects."""
    from compose.core import yamlio

    findings: list[Finding] = []
    index = {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for d in docs}
    for fname, text in sorted(fresh.files.items()):
        if not fname.startswith("patch-"):
            continue
        for patch in yamlio.load_all(text, fname):
            key = (patch["kind"], prefix + patch["metadata"]["name"])
            target = index.get(key)
            if patch.get("$patch") == "delete":  # e.g. a canary's Namespace and shared cache
                if target is not None:
                    findings.append(Finding(source, obj_id(target), "-",
                                            f"{fname} deletes this object, but it was rendered", fix, "plan"))
                continue
            if target is None:
                findings.append(Finding(source, f"{key[0]}/{key[1]}", "-",
                                        f"{fname} patches an object that was not rendered", fix, "plan"))
                continue
            for path, want, got in _diff_leaves(patch, target):
                if path.startswith("metadata.name"):
                    continue
                findings.append(
                    Finding(source, obj_id(target), path, f"is {got!r}, a fresh plan gives {want!r} ({fname})",
                            fix, "plan")
                )
    return findings


_MISSING = object()


_MERGE_KEYS = ("name", "topologyKey")


def _diff_leaves(want: Any, got: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [(path or ".", want, got)]
        for k, v in want.items():
            out += _diff_leaves(v, got.get(k, _MISSING) if isinstance(got, dict) else _MISSING, f"{path}.{k}" if path else k)
        return out
    merge_key = next((k for k in _MERGE_KEYS if isinstance(want, list) and want
                      and all(isinstance(x, dict) and k in x for x in want)), None)
    if merge_key:  # a strategic-merge list (containers by name, spread constraints by topologyKey)
        got_items = {x.get(merge_key): x for x in got if isinstance(x, dict)} if isinstance(got, list) else {}
        for item in want:
            out += _diff_leaves(item, got_items.get(item[merge_key], _MISSING), f"{path}[{item[merge_key]}]")
        return out
    if (isinstance(want, list) and isinstance(got, list) and len(want) == len(got)
            and all(isinstance(x, dict) for x in want)):
        for i, (w, g) in enumerate(zip(want, got)):
            out += _diff_leaves(w, g, f"{path}[{i}]")
        return out
    if got is _MISSING:
        return [(path, want, None)]
    return [] if want == got else [(path, want, got)]


def summary(reports: list[OverlayReport]) -> dict:
    return {
        "ok": all(r.ok for r in reports),
        "overlays": [
            {"source": r.source, "ok": r.ok, "findings": [f.to_dict() for f in r.findings]} for r in reports
        ],
    }
