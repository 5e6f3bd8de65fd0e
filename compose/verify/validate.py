"""Schema validation of rendered manifests: core kinds and custom resources.

Two validators, both reporting *every* error as a `Finding` (never only the first):

- `validate_core`: built-in Kubernetes kinds against the OpenAPI schemas that ship
  inside kubernetes-validate, in **strict** mode (unknown fields are errors), for
  each requested Kubernetes minor version (default 1.30 and 1.33). A kind with no
  schema in a core group (a removed or misspelled API such as `policy/v1beta1`) is
  an error, not kubernetes-validate's warning. One Draft 2020-12 validator is built
  per (version, apiVersion, kind) and cached, so a build with 50 objects takes
  milliseconds instead of re-reading the 1.4 MB definitions file per object.
- `validate_custom`: custom resources (a group with a dot that is not a built-in
  `*.k8s.io` group) against the CRDs in a directory, with the API server's
  structural rules approximated: objects are closed unless the CRD preserves
  unknown fields, `nullable` is honoured and null values are dropped first. An
  apiVersion/kind with no CRD in the directory is an error.

Recipe and measurements: ../shared/docs/tooling.md ("kubernetes-validate" and
"jsonschema for CRs"). Not enforced by either: CEL rules (`x-kubernetes-validations`)
and value ranges; compose.verify.policy checks the ones that matter.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import jsonschema
import yaml

from compose.core.errors import InvalidInput
from compose.core.findings import Finding, obj_id

DEFAULT_KUBE_VERSIONS: tuple[str, ...] = ("1.30", "1.33")
CRD_DIR_ENV = "VLLM_COMPOSE_CRD_DIR"

_SCHEMA_ROOT = "kubernetes-json-schema"
_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# DNS-1123 names (the API server validates these; the OpenAPI schema does not).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Kinds whose names are labels (<= 63 chars), not subdomains: (pattern, rule name).
_LABEL_NAMED_KINDS = {"Namespace": (_DNS1123_LABEL, "DNS-1123 label"),
                      "Service": (_DNS1035_LABEL, "DNS-1035 label (starts with a letter)")}


# --------------------------------------------------------------------------- helpers


def split_api_version(api_version: str) -> tuple[str, str]:
    """"apps/v1" -> ("apps", "v1"); "v1" -> ("", "v1")."""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def _minor(version: str) -> str:
    m = re.match(r"^v?(\d+)\.(\d+)(\.\d+)?([-+].*)?$", str(version).strip())
    if not m:
        raise InvalidInput(
            f"invalid Kubernetes version {version!r}; pass a minor version such as 1.33"
        )
    return f"{int(m.group(1))}.{int(m.group(2))}"


def _vkey(minor: str) -> tuple[int, ...]:
    return tuple(int(x) for x in minor.split("."))


def _schema_base():
    from importlib.resources import files

    return files("kubernetes_validate").joinpath(_SCHEMA_ROOT)


@lru_cache(maxsize=None)
def supported_kube_versions() -> tuple[str, ...]:
    """Kubernetes minor versions whose schemas ship with kubernetes-validate."""
    out = set()
    for entry in _schema_base().iterdir():
        m = re.match(r"^v(\d+\.\d+)\.\d+-local-strict$", entry.name)
        if m:
            out.add(m.group(1))
    return tuple(sorted(out, key=_vkey))


@lru_cache(maxsize=None)
def _schema_dir(minor: str):
    versions = supported_kube_versions()
    if minor not in versions:
        raise InvalidInput(
            f"no schemas for Kubernetes {minor} in kubernetes-validate; "
            f"pass a --kube-version between {versions[0]} and {versions[-1]}"
        )
    for entry in _schema_base().iterdir():
        if re.match(rf"^v{re.escape(minor)}\.\d+-local-strict$", entry.name):
            return entry
    raise AssertionError(minor)  # pragma: no cover


@lru_cache(maxsize=None)
def _definitions(minor: str):
    from referencing import Resource

    data = json.loads(_schema_dir(minor).joinpath("_definitions.json").read_text())
    return Resource.from_contents(data)


@lru_cache(maxsize=None)
def core_groups() -> frozenset[str]:
    """API groups served by Kubernetes itself (from the newest shipped OpenAPI)."""
    newest = supported_kube_versions()[-1]
    defs = _definitions(newest).contents.get("$defs", {})
    groups = {
        gvk["group"]
        for schema in defs.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }
    return frozenset(groups)


def is_core(api_version: str) -> bool:
    """True for built-in APIs ("v1", "apps/v1", "policy/v1", "node.k8s.io/v1", ...).

    A dotted group that Kubernetes does not serve itself (keda.sh,
    gateway.networking.k8s.io, snapshot.storage.k8s.io, ...) is a custom resource.
    """
    group, _ = split_api_version(api_version)
    return "." not in group or group in core_groups()


@lru_cache(maxsize=None)
def _core_validator(minor: str, api_version: str, kind: str):
    """A cached strict Draft 2020-12 validator, or None if the kind has no schema."""
    from referencing import Registry, Resource

    group, version = split_api_version(api_version)
    group_prefix = group.split(".")[0]
    stem = f"{kind.lower()}-{group_prefix}-{version}" if group else f"{kind.lower()}-{version}"
    path = _schema_dir(minor).joinpath(f"{stem}.json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # Only top-level kinds: a definition file such as affinity-v1.json has no
    # apiVersion/kind enum matching this object.
    kinds = ((schema.get("properties") or {}).get("kind") or {}).get("enum") or []
    if kind not in kinds:
        return None
    registry = Registry().with_resource(_DEFS_ID, _definitions(minor))
    registry = Resource.from_contents(schema) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _path(parts: Iterable, doc=None) -> str:
    """Dotted path; list items that have a `name` are shown by name
    (`spec.template.spec.containers[vllm].args`), like compose.verify.policy does."""
    out, node = "", doc
    for p in parts:
        if isinstance(p, int):
            item = node[p] if isinstance(node, list) and -len(node) <= p < len(node) else None
            label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else p
            out += f"[{label}]"
            node = item
        else:
            out += f".{p}" if out else str(p)
            node = node.get(p) if isinstance(node, dict) else None
    return out or "(root)"


def _metadata_findings(doc: dict, source: str, check: str) -> list[Finding]:
    """Name and label rules the API server enforces but the OpenAPI schema does not."""
    out: list[Finding] = []
    oid = obj_id(doc)
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return [Finding(source, oid, "metadata.name", "the object has no metadata.name",
                        "give every object a name", check)]
    name = str(meta["name"])
    kind = doc.get("kind", "")
    if kind in _LABEL_NAMED_KINDS:
        pattern, rule_name = _LABEL_NAMED_KINDS[kind]
        if len(name) > 63 or not pattern.match(name):
            out.append(Finding(
                source, oid, "metadata.name",
                f"{kind} name {name!r} is not a {rule_name}: lowercase alphanumerics and '-', at most 63 characters",
                "shorten or rename it (the overlay's namePrefix counts)", check))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        out.append(Finding(
            source, oid, "metadata.name",
            f"name {name!r} is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', at most 253 characters)",
            "rename the object", check))
    ns = meta.get("namespace")
    if ns is not None and (len(str(ns)) > 63 or not _DNS1123_LABEL.match(str(ns))):
        out.append(Finding(source, oid, "metadata.namespace",
                           f"namespace {ns!r} is not a DNS-1123 label", "use a valid namespace", check))
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, lname = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or len(lname) > 63 \
                or not _LABEL_NAME.match(lname):
            out.append(Finding(source, oid, f"metadata.labels.{key}", f"invalid label key {key!r}",
                               "use [prefix/]name with name <= 63 alphanumerics, '-', '_' or '.'", check))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(Finding(source, oid, f"metadata.labels.{key}", f"invalid label value {value!r}",
                               "label values are strings of at most 63 alphanumerics, '-', '_' or '.'", check))
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            out.append(Finding(source, oid, f"metadata.annotations.{key}",
                               f"annotation value {value!r} is not a string", "quote the value", check))
    return out


# --------------------------------------------------------------------------- core


def validate_core(
    docs: list[dict], source: str, kube_versions: Iterable[str] = DEFAULT_KUBE_VERSIONS
) -> list[Finding]:
    """Strict schema check of every built-in object, for each Kubernetes minor version.

    Custom resources are skipped here (see `validate_custom`). An error that occurs
    in several versions is reported once, naming the versions.
    """
    minors = [_minor(v) for v in kube_versions]
    for m in minors:
        _schema_dir(m)  # fail early and clearly on an unsupported version
    out: list[Finding] = []
    for doc in docs:
        if not isinstance(doc, dict):
            out.append(Finding(source, "-", "-", f"a rendered document is not a mapping: {doc!r:.60}",
                               "fix the YAML", "schema"))
            continue
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        oid = obj_id(doc)
        if not api_version or not kind:
            out.append(Finding(source, oid, "apiVersion" if not api_version else "kind",
                               "object has no apiVersion/kind", "set both", "schema"))
            continue
        if not is_core(api_version):
            continue
        out.extend(_metadata_findings(doc, source, "schema"))
        # (field, message) -> versions it occurs in, in order of first appearance.
        seen: dict[tuple[str, str], list[str]] = {}
        for m in minors:
            validator = _core_validator(m, api_version, kind)
            if validator is None:
                seen.setdefault(("apiVersion", f"no schema for {kind} in {api_version} "
                                 "(a removed, not-yet-served or misspelled API)"), []).append(m)
                continue
            for err in validator.iter_errors(doc):
                seen.setdefault((_path(err.absolute_path, doc), err.message), []).append(m)
        for (field, message), versions in seen.items():
            fix = ("use an apiVersion/kind that Kubernetes " + ", ".join(versions) + " serves"
                   if field == "apiVersion" and message.startswith("no schema")
                   else "correct the field to match the Kubernetes API")
            out.append(Finding(source, oid, field,
                               f"{message} (Kubernetes {', '.join(versions)})", fix, "schema"))
    return out


# --------------------------------------------------------------------------- CRDs

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_KEYS = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def to_strict(node):
    """Approximate the API server's structural-schema behaviour for jsonschema.

    Objects with `properties` are closed unless they preserve unknown fields, and
    `nullable: true` admits null.
    """
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for k in _SCHEMA_MAPS:
        if isinstance(node.get(k), dict):
            out[k] = {n: to_strict(s) for n, s in node[k].items()}
    for k in _SCHEMA_KEYS:
        if isinstance(node.get(k), dict):
            out[k] = to_strict(node[k])
    for k in _SCHEMA_LISTS:
        if isinstance(node.get(k), list):
            out[k] = [to_strict(s) for s in node[k]]
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in out):
        out["additionalProperties"] = False
    return out


def drop_nulls(o):
    """The API server prunes null values of non-nullable fields before validation."""
    if isinstance(o, dict):
        return {k: drop_nulls(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [drop_nulls(v) for v in o]
    return o


def default_crd_dir(repo: Path | str | None = None) -> Path:
    """`$VLLM_COMPOSE_CRD_DIR`, else `../shared/crds` beside the repository root.

    The repository is `repo`, else the one around the current directory (or
    `$VLLM_COMPOSE_REPO`): never the directory compose is installed in, so a second
    checkout (or a wheel in site-packages) finds its own CRDs. Raises InvalidInput (a
    ComposeError) when neither exists.
    """
    env = os.environ.get(CRD_DIR_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise InvalidInput(
                f"{CRD_DIR_ENV}={env} is not a directory; point it (or --crd-dir) "
                "at a directory of CustomResourceDefinition YAML files"
            )
        return path
    from compose.core.repo import find_root

    root = Path(repo).resolve() if repo is not None else find_root()
    candidate = root.parent / "shared" / "crds"
    if candidate.is_dir():
        return candidate
    raise InvalidInput(
        f"no CRD directory found (looked for ${CRD_DIR_ENV} and {candidate}); "
        "pass --crd-dir DIR (or set VLLM_COMPOSE_CRD_DIR) to a directory of CustomResourceDefinition YAML files"
    )


def _crd_files(resolved: str) -> list[Path]:
    return [f for f in sorted(Path(resolved).rglob("*.y*ml")) if f.suffix in (".yaml", ".yml")]


def _crd_text(f: Path) -> str:
    """A file of the CRD directory as text; not UTF-8 or unreadable is one InvalidInput line."""
    try:
        return f.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"{f}: not UTF-8 text (byte {err.start}), so not a CRD file; remove it from the CRD "
                           "directory or point --crd-dir elsewhere") from None
    except OSError as err:
        raise InvalidInput(f"{f}: cannot read it ({err.strerror or err}); fix it or point --crd-dir elsewhere") from None


@lru_cache(maxsize=256)
def _file_validators(path: str, mtime_ns: int, size: int) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """The validators of every CRD version in one file (cached while the file is unchanged)."""
    f = Path(path)
    out: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
    try:
        docs = list(yaml.load_all(_crd_text(f), Loader=_Loader))
    except yaml.YAMLError as err:
        raise InvalidInput(f"{f}: malformed CRD YAML ({' '.join(str(err).split())})") from err
    for d in docs:
        if not isinstance(d, dict) or d.get("kind") != "CustomResourceDefinition":
            continue
        spec = d.get("spec") or {}
        for v in spec.get("versions") or []:
            raw = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"}
            schema = to_strict(raw)
            props = dict(schema.get("properties") or {})
            props["metadata"] = {"type": "object"}  # names/labels: _metadata_findings
            # The API server always accepts these at the root; some CRDs (Istio's) leave
            # them out of their schema, which the closed root would then reject.
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            schema["properties"] = props
            key = (f"{spec['group']}/{v['name']}", spec["names"]["kind"])
            out[key] = jsonschema.Draft4Validator(schema)
    return out


def _validators_of(files: Iterable[Path]) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    out: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
    for f in files:
        st = f.stat()
        out.update(_file_validators(str(f), st.st_mtime_ns, st.st_size))
    return out


def _load_crd_validators(resolved: str) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    return _validators_of(_crd_files(resolved))


# A CRD names its kind on a line of its own (`    kind: ScaledObject`). Schema fields
# called `kind` match too, which only makes the candidate list longer; a kind found in
# none of the candidates falls back to reading every file, so the answer is the same.
_KIND_LINE = re.compile(r"^[ \t]*kind:[ \t]*[\'\"]?([A-Za-z][A-Za-z0-9]*)[\'\"]?[ \t]*$", re.MULTILINE)


@lru_cache(maxsize=8)
def _kind_index(resolved: str, stamp: tuple) -> dict[str, tuple[Path, ...]]:
    index: dict[str, list[Path]] = {}
    for f in _crd_files(resolved):
        for kind in set(_KIND_LINE.findall(_crd_text(f))):
            index.setdefault(kind, []).append(f)
    return {k: tuple(v) for k, v in index.items()}


def load_crd_validators(
    crd_dir: Path | str, kinds: Iterable[tuple[str, str]] | None = None
) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """{(apiVersion, kind): validator} for the CRD versions under `crd_dir` (cached).

    With `kinds`, only the files that may define those (apiVersion, kind) pairs are parsed
    (the CRD directory holds megabytes of schemas a repository rarely uses); if one is
    not found there, every file is read, exactly as without `kinds`."""
    path = Path(crd_dir)
    if not path.is_dir():
        raise InvalidInput(
            f"CRD directory {path} does not exist; pass --crd-dir DIR (or set "
            f"{CRD_DIR_ENV}) to a directory of CustomResourceDefinition YAML files"
        )
    resolved = str(path.resolve())
    if kinds is not None:
        wanted = set(kinds)
        stamp = tuple((str(f), f.stat().st_mtime_ns) for f in _crd_files(resolved))
        index = _kind_index(resolved, stamp)
        candidates = sorted({f for _, kind in wanted for f in index.get(kind, ())})
        validators = _validators_of(candidates)
        if wanted <= validators.keys():
            return validators
    validators = _load_crd_validators(resolved)
    if not validators:
        raise InvalidInput(f"no CustomResourceDefinitions found under {path}; pass --crd-dir DIR with CRD YAML files")
    return validators


def validate_custom(docs: list[dict], source: str, crd_dir: Path | str | None = None) -> list[Finding]:
    """Validate every custom resource in `docs` against its CRD; built-in kinds are skipped."""
    customs = [d for d in docs if isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
               and not is_core(d["apiVersion"])]
    if crd_dir is not None and not Path(crd_dir).is_dir():
        load_crd_validators(crd_dir)  # raises the "pass --crd-dir" error even with nothing to check
    if not customs:
        return []
    wanted = {(d["apiVersion"], d["kind"]) for d in customs}
    validators = load_crd_validators(crd_dir if crd_dir is not None else default_crd_dir(), wanted)
    out: list[Finding] = []
    for doc in customs:
        oid = obj_id(doc)
        key = (doc["apiVersion"], doc["kind"])
        out.extend(_metadata_findings(doc, source, "crd"))
        validator = validators.get(key)
        if validator is None:
            same_kind = sorted(a for a, k in validators if k == doc["kind"])
            hint = (f"the CRDs serve {doc['kind']} as {', '.join(same_kind)}" if same_kind
                    else "add its CRD to the CRD directory or fix the apiVersion/kind")
            out.append(Finding(source, oid, "apiVersion",
                               f"unknown custom resource {doc['apiVersion']}/{doc['kind']}: no CRD defines it",
                               hint, "crd"))
            continue
        clean = drop_nulls(doc)
        errors = sorted(validator.iter_errors(clean), key=lambda e: list(map(str, e.absolute_path)))
        for err in errors:
            out.append(Finding(source, oid, _path(err.absolute_path, clean), err.message,
                               "correct the field to match the CRD schema", "crd"))
    return out
