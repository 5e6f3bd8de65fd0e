"""A finding: one problem in one object, with the fix. Checks collect all of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Finding:
    source: str  # the overlay/base directory (or file) that produced the object
    obj: str  # "Kind/name" (namespace-less), or "-" for a source-level problem
    field: str  # dotted path, e.g. "spec.template.spec.containers[vllm].args"
    problem: str  # what is wrong
    fix: str  # how to fix it
    check: str = "policy"  # which check: schema | crd | policy | plan | build

    def __str__(self) -> str:
        return f"{self.source}: {self.obj} {self.field}: {self.problem} (fix: {self.fix}) [{self.check}]"

    def to_dict(self) -> dict:
        return asdict(self)


def obj_id(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"
