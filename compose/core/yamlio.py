"""YAML reading and writing with one fixed style.

- Reading rendered output and CRDs: PyYAML's C loader, with duplicate keys rejected.
- Writing generated files: sorted keys, 2-space indent, block style, no wrapping.
- Round-trip editing of files people also edit (kustomization.yaml): ruamel.yaml.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from compose.core.errors import InvalidInput

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Loader):  # type: ignore[misc, valid-type]
    """Safe loader that rejects duplicate mapping keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


MAX_DEPTH = 500  # nesting levels; far deeper than any manifest, far shallower than the C parser's stack
MAX_CHARS = 4 * 1024 * 1024  # one file of hand-editable YAML; compose's own are kilobytes (6 MB took 40 s)
MAX_NODES = 5_000_000  # nodes once aliases are expanded ("billion laughs")


def guard(text: str, source: str) -> None:
    """Refuse YAML that would exhaust the stack (libyaml's composer recurses in C and
    segfaults past ~50,000 levels) or expand aliases into billions of nodes. One pass
    over the parser's events: linear in the text."""
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"{source}: {len(text):,} characters of YAML, more than {MAX_CHARS // 2**20} Mi; "
                           "compose's files are kilobytes: fix or replace the file")
    sizes: dict[str, int] = {}
    stack: list[list] = [[0, None]]
    total = 0
    starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, starts):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise InvalidInput(f"{source}: YAML nested more than {MAX_DEPTH} levels deep; fix the file")
            continue
        if isinstance(event, ends):
            count, anchor = stack.pop()
            if anchor:
                sizes[anchor] = count
            n = count
        elif isinstance(event, yaml.ScalarEvent):
            n = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            n = sizes.get(event.anchor, 1)
            total += n
        else:
            continue
        stack[-1][0] += n
        if isinstance(event, yaml.ScalarEvent):
            total += 1
        if total > MAX_NODES or stack[-1][0] > MAX_NODES:
            raise InvalidInput(f"{source}: YAML aliases expand to more than {MAX_NODES:,} values "
                               "(a \"billion laughs\" file); write the values out or fix the file")


def load_all(text: str, source: str = "<string>", trusted: bool = False) -> list[Any]:
    """Parse a multi-document YAML string; empty documents are dropped. Unless `trusted`
    (kustomize's own output), the text is first checked for depth and alias expansion."""
    try:
        if not trusted:
            guard(text, source)
        return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as err:
        raise InvalidInput(f"{source}: malformed YAML ({_one_line(err)[:300]}); fix the file") from None
    except RecursionError:
        raise InvalidInput(f"{source}: malformed YAML (nested too deeply); fix the file") from None


def load(text: str, source: str = "<string>") -> Any:
    docs = load_all(text, source)
    if len(docs) != 1:
        raise InvalidInput(f"{source}: expected one YAML document, found {len(docs)}")
    return docs[0]


def read_text(path: Path | str, source: str | None = None) -> str:
    """A file compose reads, as text; unreadable or non-UTF-8 is one InvalidInput line."""
    shown = source or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"{shown}: not UTF-8 text (byte {err.start}); fix or replace the file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{shown}: a directory where a file should be; move it away") from None
    except OSError as err:
        raise InvalidInput(f"{shown}: cannot read it ({err.strerror or err}); check the path and permissions") from None


def load_file(path: Path, source: str | None = None) -> Any:
    return load(read_text(path, source), source or str(path))


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


class _Dumper(yaml.SafeDumper):
    pass


# Plain scalars that some YAML 1.1 reader (kustomize's Go YAML among them) takes
# for a bool, null or number: `y`, `no`, `on`, `~`, `123`, `1e3`, `0x1f`, `.5`, ...
# The number branch is written so that no two quantifiers compete for the same
# characters: the match is linear in the length of the string (the earlier
# `(?:\d[\d_]*)?\.?\d*` was quadratic: 80 s for a 40,000-character URL). It accepts
# exactly the same strings; tests/test_hostile.py compares the two.
_AMBIGUOUS = re.compile(
    r"(?:y|n|yes|no|on|off|true|false|null|~|"
    r"[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][-+]?\d+)?|0x[0-9a-fA-F_]+|0o?[0-7_]+|[-+]?\.(?:inf|nan))",
    re.IGNORECASE,
)


def needs_quotes(value: str) -> bool:
    """True if `value` must be quoted to stay a string for every YAML 1.1/1.2 reader."""
    return value == "" or _AMBIGUOUS.fullmatch(value) is not None


def _str_representer(dumper, data: str):
    if "\n" in data:
        style = "|"
    elif needs_quotes(data):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)

# Keys that read best first, in this order; every other key is sorted.
_FIRST = ("apiVersion", "kind", "metadata", "name")


def _ordered_items(mapping: dict):
    first = [k for k in _FIRST if k in mapping]
    rest = sorted((k for k in mapping if k not in _FIRST), key=str)
    return [(k, mapping[k]) for k in first + rest]


def _dict_representer(dumper, data: dict):
    return dumper.represent_mapping("tag:yaml.org,2002:map", _ordered_items(data))


class _IndentDumper(_Dumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def dump(obj: Any, sort_keys: bool = True) -> str:
    """Dump one document with the project's fixed style.

    With `sort_keys`, mappings are sorted except that apiVersion, kind, metadata
    and name come first, as people write Kubernetes objects.
    """
    dumper = _SortedDumper if sort_keys else _IndentDumper
    return yaml.dump(
        obj,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        width=4096,
        allow_unicode=True,
        indent=2,
    )


class _SortedDumper(_IndentDumper):
    pass


_SortedDumper.add_representer(dict, _dict_representer)


def dump_all(objs: Iterable[Any], sort_keys: bool = True) -> str:
    return "---\n".join(dump(o, sort_keys=sort_keys) for o in objs)


def roundtrip():
    """A ruamel.yaml round-trip instance with the repository's list style."""
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def roundtrip_load(text: str, source: str = "<string>"):
    """Round-trip parse (comments kept) of a file people edit; it must also pass the
    strict loader first, so duplicate keys are one InvalidInput line, not a traceback."""
    load_all(text, source)
    y = roundtrip()
    try:
        return y.load(text)
    except Exception as err:  # ruamel raises its own hierarchy
        raise InvalidInput(f"{source}: malformed YAML ({_one_line(err)[:300]}); fix the file") from None


def quote_ambiguous(node):
    """Wrap strings a YAML 1.1 reader would mistype in quotes, for ruamel round-trip dumps."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString

    if isinstance(node, dict):
        for k in list(node):
            node[k] = quote_ambiguous(node[k])
        return node
    if isinstance(node, list):
        for i, v in enumerate(node):
            node[i] = quote_ambiguous(v)
        return node
    if isinstance(node, str) and not isinstance(node, ScalarString) and needs_quotes(node):
        return DoubleQuotedScalarString(node)
    return node


def roundtrip_dump(data) -> str:
    data = quote_ambiguous(data)
    y = roundtrip()
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()
