"""base/vllm carries the planner's numbers for its documented reference request."""

from __future__ import annotations

from pathlib import Path

import pytest

from compose.core import kustomize

from compose.generate import overlay

from compose.verify import checks

pytestmark = pytest.mark.usefixtures("kubectl")


def test_base_matches_the_reference_plan(repo_root):
    docs = kustomize.build(repo_root / "base" / "vllm").docs
    assert checks.base_consistency(repo_root, docs, "base/vllm") == []


def test_a_drifted_base_number_is_reported(repo_root, tmp_path):
    docs = kustomize.build(repo_root / "base" / "vllm").docs
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] += 1
    (so,) = [d for d in docs if d["kind"] == "ScaledObject"]
    so["spec"]["triggers"][0]["metadata"]["threshold"] = "999"
    findings = checks.base_consistency(repo_root, docs, "base/vllm")
    fields = sorted(f.field for f in findings)
    assert fields == ["spec.template.spec.terminationGracePeriodSeconds", "spec.triggers[0].metadata.threshold"]
    assert all("--max-model-len 8192" in f.fix for f in findings)


def test_the_base_documents_its_reference_request(repo_root):
    text = (repo_root / "base" / "vllm" / "kustomization.yaml").read_text()
    ref = overlay.BASE_REFERENCE
    assert f"compose plan {ref.model} --gpu {ref.gpu} --max-model-len {ref.max_model_len}" in text
    assert Path(repo_root / "base" / "README.md").read_text().count("Single replica") >= 1
