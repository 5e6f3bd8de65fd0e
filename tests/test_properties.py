"""Property tests: random names and options never corrupt the repository.

For any input, `compose new-model` either writes one valid overlay under
overlays/ or fails with one clean line and exit 2, and it never writes outside
overlays/ (nor leaves a staging directory behind).
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from compose.core import kustomize

from compose.generate import overlay
from composer_helpers import run, scratch_repo, snapshot

pytestmark = pytest.mark.usefixtures("kubectl")

name_text = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["../x", "..", "a/b", "/etc", ".hidden", "UPPER", "x" * 64, "-lead", "trail-", "a_b", "é"]),
    st.text(min_size=1, max_size=12),
)
options = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "no-such-model", "../../etc/passwd"]),
        "env": st.sampled_from(["dev", "staging", "prod", "qa"]),
        "cloud": st.sampled_from(["eks", "gke", "aks", "k3s"]),
        "gpu": st.sampled_from([None, "l4", "a100-80gb", "h100-80gb", "t4", "nope"]),
        "spot": st.booleans(),
        "name": st.one_of(st.none(), name_text),
        "namespace": st.one_of(st.none(), name_text),
        "max_model_len": st.one_of(st.none(), st.sampled_from([-5, 1, 4096, 8192, 10**7])),
        "replicas": st.one_of(st.none(), st.sampled_from(["1:3", "2:2", "3:1", "0:1", "x", "1:"])),
    }
)


def argv(o: dict) -> list[str]:
    args = ["new-model", o["model"], "--env", o["env"], "--cloud", o["cloud"]]
    for flag, key in (("--gpu", "gpu"), ("--name", "name"), ("--namespace", "namespace"),
                      ("--max-model-len", "max_model_len"), ("--replicas", "replicas")):
        if o[key] is not None:
            args += [flag, str(o[key])]
    if o["spot"]:
        args.append("--spot")
    return args


def outside_overlays(repo):
    """Every file beside and in the repository except overlays/ and compose's own .compose/ state."""
    return {k: v for k, v in snapshot(repo.parent).items()
            if not k.startswith(("repo/overlays/", "repo/.compose/"))}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return scratch_repo(tmp_path_factory.mktemp("prop"))


@settings(max_examples=int(__import__("os").environ.get("PROPERTY_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(o=options)
def test_new_model_writes_a_valid_overlay_or_fails_cleanly(repo, o):
    outside_before = outside_overlays(repo)
    overlays_before = sorted(p.name for p in (repo / "overlays").iterdir())
    res = run(*argv(o), repo=repo)
    outside_after = outside_overlays(repo)
    assert outside_after == outside_before, "wrote outside overlays/"
    entries = sorted(p.name for p in (repo / "overlays").iterdir())
    assert not [e for e in entries if e.startswith(".")], "left a staging directory behind"
    if res.exit_code == 0:
        (new,) = set(entries) - set(overlays_before)
        d = repo / "overlays" / new
        assert overlay.owned(d)
        docs = kustomize.build(d).docs
        assert {x["kind"] for x in docs} >= {"Deployment", "Service", "ScaledObject", "PersistentVolumeClaim"}
        shutil.rmtree(d)
        event("wrote an overlay")
    else:
        event(f"failed: {res.stderr.strip()[:40]}")
    if res.exit_code != 0:
        assert res.exit_code == 2, res.output
        assert entries == overlays_before
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(("error: ", "Usage:")) or "Usage:" in res.stderr, res.stderr
        assert "Traceback" not in res.output
