"""The hostile-input suite (issue 9): every failure seen with ~250 careless or hostile
inputs, and the class it stands for, as a test that must keep passing.

Classes, in this order: data loss, half-writes, tracebacks (one line and exit 2
instead), internal errors (exit 3), hangs, accepted-but-wrong values, permissions,
misleading output, a corrupted checkout. Kill-during-write tests are in
test_transaction.py; the property-based fuzzer is test_fuzz.py.

Commands run through `compose.cli.run` (what the console script calls), in process,
unless they need a process of their own (concurrency, read-only mounts, timing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from compose.core import kustomize, yamlio
from compose.core.errors import EXIT_INTERNAL, EXIT_INVALID
from composer_helpers import REPO, cli, compose_subprocess, full_repo, git_status, leftovers, snapshot

pytestmark = pytest.mark.usefixtures("kubectl")

NEW = ("new-model", "qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--name", "q")
SHA = "1" * 40


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return full_repo(tmp_path)


def one_line_error(res, code: int = EXIT_INVALID) -> str:
    """Exit `code`, exactly one stderr line starting with `error: `, no traceback; the line."""
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


def write_config(root: Path, rel: str, cfg: dict) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg))
    return path


def catalog_config(slug: str = "qwen2.5-7b", **changes) -> dict:
    from compose.plan import catalog

    cfg = catalog.config_for(slug)
    cfg.pop("_name_or_path", None)
    cfg.update(changes)
    return cfg


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


# =========================================================================== data loss


def test_regen_never_writes_another_overlay(repo):
    """inputs that say env: prod, name: 70b used to rewrite ten files of overlays/prod-70b."""
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    edit(plan, "  env: dev\n  gpu", "  env: prod\n  gpu")
    edit(plan, "  name: 8b\n", "  name: 70b\n")
    before = snapshot(repo)
    line = one_line_error(cli("regen", "dev-8b", repo=repo))
    assert "produce overlay prod-70b, not dev-8b" in line and "nothing was written" in line
    assert snapshot(repo) == before


def test_a_malformed_kustomization_elsewhere_stops_new_model_before_it_writes(repo):
    """overlayinfo swallowed the parse error and new-model rewrote dev-8b's GitOps files
    without ignoreDifferences and the KEDA health check."""
    (repo / "overlays" / "dev-8b" / "kustomization.yaml").write_text("resources: [\n  - ../../base/vllm\n")
    before = snapshot(repo)
    line = one_line_error(cli(*NEW, repo=repo))
    assert "overlays/dev-8b/kustomization.yaml" in line and "malformed YAML" in line
    assert snapshot(repo) == before
    app = yaml.safe_load((repo / "argocd" / "applications" / "dev-8b.yaml").read_text())
    assert app["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/replicas"]
    flux = yaml.safe_load((repo / "flux" / "models" / "dev-8b.yaml").read_text())
    assert flux["spec"]["healthCheckExprs"][0]["kind"] == "ScaledObject"


@pytest.mark.parametrize("out", [
    "argocd/applications", "argocd", "flux", "flux/models", "overlays", "overlays/dev-8b", "base", "components",
    "components/monitoring", ".", ".git", ".compose", "clusters/gpu", "clusters",
])
def test_build_out_never_overlaps_a_generated_tree(repo, out):
    assert cli("gitops", "flux", "--out", "clusters/gpu", repo=repo).exit_code == 0  # a recorded tree
    before = snapshot(repo)
    line = one_line_error(cli("build", "--all", "--out", str(repo / out), repo=repo))
    assert "invalid --out" in line
    assert snapshot(repo) == before


def test_build_out_never_overwrites_a_file_it_did_not_render(repo):
    out = repo / "rendered"
    out.mkdir()
    (out / "dev-8b.yaml").write_text("my notes\n")
    line = one_line_error(cli("build", "--all", "--out", str(out), repo=repo))
    assert "was not rendered by compose build" in line
    assert (out / "dev-8b.yaml").read_text() == "my notes\n" and not (out / "prod-70b.yaml").exists()


# =========================================================================== half-writes


def test_a_failing_gitops_refresh_leaves_no_overlay_behind(repo):
    """The overlay was renamed into place first, and flux/kustomization.yaml then listed a missing file."""
    (repo / "flux" / "models" / "dev-q.yaml").write_text("# mine\nkind: Kustomization\n")  # not compose's
    before = snapshot(repo)
    line = one_line_error(cli(*NEW, repo=repo))
    assert "flux/models/dev-q.yaml" in line
    assert snapshot(repo) == before and not (repo / "overlays" / "dev-q").exists()


def test_an_overlay_flux_cannot_time_leaves_new_model_unwritten(repo):
    hand = repo / "overlays" / "dev-hand"
    shutil.copytree(repo / "overlays" / "dev-8b", hand)
    (hand / "compose-plan.yaml").unlink()  # hand-made: no planner budget for Flux's timeout
    before = snapshot(repo)
    line = one_line_error(cli(*NEW, repo=repo))
    assert "dev-hand" in line and "startup budget" in line
    assert snapshot(repo) == before


def test_gitops_writes_every_file_or_none(repo, monkeypatch):
    """`gitops flux` updated four files, then crashed on the fifth."""
    from compose.core import transaction

    before = snapshot(repo)
    monkeypatch.setenv(transaction.FAULT_ENV, "applying:5")
    monkeypatch.setenv(transaction.FAULT_ACTION_ENV, "oserror")
    line = one_line_error(cli("gitops", "flux", "--revision", "v2", repo=repo))
    assert "nothing was changed" in line
    assert snapshot(repo) == before and leftovers(repo) == []


def test_four_concurrent_new_models_of_one_name(repo):
    """One wins; the other three used to crash with OSError: Directory not empty."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "compose", *NEW, "--repo", str(repo)], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2, 2, 2], results
    for code, err in results:
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
            assert "already exists" in lines[0] or "another compose command" in lines[0]
    assert leftovers(repo) == []
    assert kustomize.build(repo / "overlays" / "dev-q").docs


# =========================================================================== tracebacks -> one line


@pytest.mark.parametrize("change, field", [
    ({"quantization_config": {"quant_method": "awq", "bits": "x"}}, "quantization_config.bits"),
    ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [0, 0]}}, "weight_block_size"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": float("inf")}}, "rope_scaling.factor"),
    ({"torch_dtype": ["bfloat16"]}, "torch_dtype"),
    ({"vocab_size": 10**30}, "vocab_size"),
    ({"quantization_config": {"quant_method": "gptq", "bits": -4}}, "quantization_config.bits"),
    ({"tie_word_embeddings": "false"}, "tie_word_embeddings"),
])
def test_a_bad_config_json_is_one_line(repo, change, field):
    write_config(repo, "models/m/config.json", catalog_config(**change))
    before = snapshot(repo)
    line = one_line_error(cli("new-model", str(repo / "models/m/config.json"), "--gpu", "l4", "--hf-repo", "me/m",
                              "--revision", SHA, repo=repo))
    assert "models/m/config.json" in line and field in line
    assert snapshot(repo) == before


@pytest.mark.parametrize("args, needle", [
    (("plan", "llama-3.1-8b", "--gpu-memory-gib", "1e300"), "--gpu-memory-gib"),
    (("plan", "llama-3.1-8b", "--gpu-memory-gib", "nan"), "--gpu-memory-gib"),
    (("plan", "x" * 300, "--gpu", "l4"), "too long"),
    (("plan", "x" * 2000, "--gpu", "l4"), "characters"),
    (("new-model", "x" * 300), "too long"),
    (("new-model", "x" * 2000), "characters"),
    (("new-model", "a/" * 200 + "config.json"), "config.json"),
    (("new-model", "llama-3.1-8b\x01"), "control characters"),
    (("new-model", "llama-3.1-8b", "--gpu-memory-utilization", "nan"), "--gpu-memory-utilization"),
    (("new-model", "llama-3.1-8b", "--target-rps", "inf"), "--target-rps"),
    (("regen", "x" * 300), "no overlay"),
    (("check", "x" * 5000), "no overlay"),
    (("gitops", "argocd", "--out", "README.md"), "it is a file"),
    (("gitops", "flux", "--addon", "x" * 5000), "--addon"),
])
def test_hostile_options_are_one_line(repo, args, needle):
    (repo / "README.md").write_text("# the project\n")
    before = snapshot(repo)
    line = one_line_error(cli(*args, repo=None if args[0] == "plan" else repo))
    assert needle in line, line
    assert snapshot(repo) == before


@pytest.mark.parametrize("value", ["0", "8193", "1e9", "x", "-5", str(1 << 25)])
@pytest.mark.parametrize("command", ["new-model", "plan"])
def test_an_out_of_range_max_output_tokens_is_one_line(repo, command, value):
    """--max-output-tokens is 1 to --max-model-len (8192 here): anything else, one line, exit 2, nothing written."""
    args = (command, "llama-3.1-8b", "--gpu", "l4", "--max-model-len", "8192", "--max-output-tokens", value)
    before = snapshot(repo)
    line = one_line_error(cli(*args, repo=None if command == "plan" else repo))
    assert "--max-output-tokens" in line, line
    assert snapshot(repo) == before


@pytest.mark.parametrize("value, needle", [
    ("0", "inputs.max_output_tokens"), ("1.0e+9", "inputs.max_output_tokens"), ("x", "inputs.max_output_tokens"),
    ("40000", "--max-output-tokens 40000 exceeds --max-model-len 32768"),
])
def test_a_bad_max_output_tokens_in_compose_plan_yaml_is_one_line(repo, value, needle):
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    plan.write_text(plan.read_text().replace("  spot: false\n", f"  spot: false\n  max_output_tokens: {value}\n"))
    before = snapshot(repo)
    line = one_line_error(cli("regen", "dev-8b", repo=repo))
    assert needle in line, line
    assert snapshot(repo) == before


BILLION_LAUGHS = "x-a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"x-{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("mutate, needle", [
    (lambda t: t.replace("  spot: false\n", "  spot: false\n  replicas: 5\n"), "inputs.replicas must be a string"),
    (lambda t: t[: t.index("inputs:")] + "inputs: []\n" + t[t.index("overlay:"):], "inputs must be a mapping"),
    (lambda t: t.replace("  monitoring: true", "  monitoring: 'false'"), "inputs.monitoring must be a boolean"),
    (lambda t: t.replace("  spot: false\n", "  spot: false\n  colour: blue\n"), "inputs.colour is not a known field"),
    (lambda t: t.replace("  max_model_len: 32768", "  max_model_len: 1.0e+300"), "inputs.max_model_len"),
    (lambda t: t.replace("kind: OverlayPlan", "kind: Other"), "kind"),
    (lambda t: t + "\0", "malformed YAML"),
    # libyaml's composer recursed in C: a segfault (exit 139), no line at all
    pytest.param(lambda t: t + "x-deep: " + "[" * 100000 + "]" * 100000 + "\n", "nested more than 500 levels",
                 id="deep"),
    # aliases expanding to 9**9 values: 6 to 23 s and 400 MB per command; one more level, minutes
    pytest.param(lambda t: BILLION_LAUGHS + t, "billion laughs", id="billion-laughs"),
])
def test_a_bad_compose_plan_yaml_is_one_line(repo, mutate, needle):
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    plan.write_text(mutate(plan.read_text()))
    before = snapshot(repo)
    for args in (("regen", "dev-8b"), ("regen", "--all"), ("gitops", "argocd")):
        line = one_line_error(cli(*args, repo=repo))
        assert "overlays/dev-8b/compose-plan.yaml" in line and needle in line, line
    assert snapshot(repo) == before


@pytest.mark.parametrize("content, needle", [
    (b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: a\nnamespace: b\n", "duplicate key"),
    (b"kind: Kustomization\nnamespace: \xff\xfe\n", "not UTF-8"),
    (b"kind: Kustomization\nresources: ../../base/vllm\n", "resources must be a list"),
    pytest.param(b"kind: Kustomization\nx:\n" + b"- " * 100000 + b"y\n", "nested more than 500 levels", id="deep"),
])
def test_a_bad_kustomization_is_one_line(repo, content, needle):
    (repo / "overlays" / "dev-8b" / "kustomization.yaml").write_bytes(content)
    before = snapshot(repo)
    for args in (("regen", "dev-8b"), ("gitops", "flux"), NEW):
        line = one_line_error(cli(*args, repo=repo))
        assert "overlays/dev-8b/kustomization.yaml" in line and needle in line, (args, line)
    assert snapshot(repo) == before


@pytest.mark.parametrize("where", ["overlays/dev-8b/patch-storage.yaml", "components/monitoring/podmonitor.yaml"])
def test_a_billion_laughs_file_kustomize_reads_is_one_line_in_time(repo, where):
    """A 511-byte alias bomb in a patch file ran `kubectl kustomize` out of memory: check,
    list and build hung past a minute. Every file a kustomization hands kustomize is now
    held to compose's own YAML bounds first."""
    target = repo / where
    if not target.is_file():  # a component file: whichever the monitoring component lists first
        target = next(p for p in sorted((repo / "components" / "monitoring").glob("*.yaml"))
                      if p.name != "kustomization.yaml")
    target.write_text(target.read_text() + "\n---\n" + BILLION_LAUGHS)
    before = snapshot(repo)
    for args in (("build", "dev-8b"), ("check", "dev-8b")):
        start = time.perf_counter()
        res = cli(*args, repo=repo)
        assert time.perf_counter() - start < 20, args
        assert res.exit_code in (1, 2) and "billion laughs" in res.output, (args, res.output)
        if res.exit_code == 2:
            one_line_error(res)
    assert snapshot(repo) == before


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_state_directory_that_is_not_a_directory_is_named(repo, tmp_path, kind):
    """`.compose` as a file said "cannot write to the repository (File exists) ... fix the
    permissions"; as a link it put the lock and journals wherever it pointed."""
    state = repo / ".compose"
    shutil.rmtree(state, ignore_errors=True)
    if kind == "file":
        state.write_text("x\n")
    else:
        (tmp_path / "elsewhere").mkdir()
        state.symlink_to(tmp_path / "elsewhere")
    line = one_line_error(cli("regen", "--all", repo=repo))
    assert ".compose in" in line and ("a file" if kind == "file" else "a symbolic link") in line, line
    assert kind == "file" or not list((tmp_path / "elsewhere").iterdir())


def test_a_generated_file_that_links_outside_is_named_in_the_refusal(repo, tmp_path):
    """regen refused correctly but named compose-plan.yaml and only the link's target."""
    victim = tmp_path / "victim.yaml"
    victim.write_text("# Generated by compose (patch-alerts.yaml) for overlay dev-8b.\n")
    link = repo / "overlays" / "dev-8b" / "patch-alerts.yaml"
    link.unlink()
    link.symlink_to(victim)
    line = one_line_error(cli("regen", "dev-8b", repo=repo))
    assert f"not overlays/dev-8b/patch-alerts.yaml (a link to {victim})" in line, line
    assert victim.read_text().startswith("# Generated by compose (patch-alerts.yaml)")


def test_a_byte_order_mark_does_not_make_a_generated_file_look_hand_written(repo):
    """An editor's BOM in front of the header: `regen` said compose had not generated the
    overlay (and named a --name regen does not take) while `check` passed it."""
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    generated = plan.read_text()
    plan.write_text("\ufeff" + generated)
    assert cli("regen", "--all", "--check", repo=repo).exit_code == 1  # drift, not "not ours"
    res = cli("regen", "dev-8b", repo=repo)
    assert res.exit_code == 0 and plan.read_text() == generated, res.output


def test_a_crd_directory_with_a_file_that_is_not_utf8_is_one_line(repo, tmp_path):
    """`check --crd-dir /tmp` (any directory holding a binary *.yaml) was exit 3."""
    crds = tmp_path / "crds"
    shutil.copytree(Path(os.environ.get("VLLM_COMPOSE_CRD_DIR", REPO.parent / "shared" / "crds")), crds)
    (crds / "latin1.yaml").write_bytes(b"kind: Foo\n\xff\xfe\n")
    line = one_line_error(cli("check", "dev-8b", "--crd-dir", str(crds), repo=repo))
    assert "latin1.yaml: not UTF-8" in line, line


def test_a_diff_never_puts_control_characters_on_the_terminal_and_keeps_git_line_ends(repo):
    """A hand-edited README with an OSC title sequence, BEL, clear-screen and U+202E: the
    `regen --check` diff printed them raw. A form feed or U+2028 split lines git does not
    split, and the "git apply-able" diff came out corrupt."""
    readme = repo / "overlays" / "dev-8b" / "README.md"
    generated = readme.read_text()
    readme.write_text(generated.replace("\n", "\x1b]0;PWNED\x07\x1b[2J\u202e evil\n", 2))
    res = cli("regen", "--all", "--check", repo=repo)
    assert res.exit_code == 1 and "\\u001b]0;PWNED\\u0007" in res.output, res.output
    assert not any(c in res.output for c in ("\x1b", "\x07", "\u202e")), repr(res.output[:300])
    assert "control characters shown escaped" in res.output
    readme.write_text(generated.replace("# dev-8b", "# dev\f-8b\u2028x", 1))
    res = cli("regen", "dev-8b", "--dry-run", repo=repo)
    hunk = [line for line in res.stdout.splitlines() if line.startswith(("-# dev", "+# dev"))]
    assert hunk == ["-# dev\\u000c-8b\\u2028x", "+# dev-8b"], res.stdout


def test_an_unexpected_error_is_one_line_with_the_saved_traceback(repo, monkeypatch):
    from compose.publish import regenerate

    def broken(*a, **k):
        return 1 / 0

    monkeypatch.setattr(regenerate, "regen", broken)
    line = one_line_error(cli("regen", "--all", repo=repo), EXIT_INTERNAL)
    assert "internal error (ZeroDivisionError" in line
    saved = Path(re.search(r"the full traceback is in (\S+);", line).group(1))
    assert "Traceback" in saved.read_text() and "ZeroDivisionError" in saved.read_text()
    saved.unlink()


# =========================================================================== hangs


def test_the_ambiguous_string_regex_is_linear_and_unchanged():
    long = "1" * 40000 + "x"
    start = time.perf_counter()
    assert not yamlio.needs_quotes(long) and yamlio.needs_quotes("1" * 40000)
    assert not yamlio.needs_quotes("http://" + "1" * 40000)
    assert time.perf_counter() - start < 0.2


OLD_AMBIGUOUS = re.compile(  # the quadratic pattern it replaced, to compare languages
    r"^(?:y|n|yes|no|on|off|true|false|null|~|"
    r"[-+]?(?:\d[\d_]*)?\.?\d*(?:[eE][-+]?\d+)?|0x[0-9a-fA-F_]+|0o?[0-7_]+|[-+]?\.(?:inf|nan))$",
    re.IGNORECASE,
)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789_.eE+-xXoOinfaINF yn~", max_size=12))
def test_the_linear_regex_accepts_exactly_what_the_old_one_did(text):
    if "\n" not in text and text:
        assert yamlio.needs_quotes(text) == bool(OLD_AMBIGUOUS.match(text))


@pytest.mark.parametrize("args", [
    ("new-model", "llama-3.1-8b", "--gpu", "l4", "--prometheus-url", "http://p/" + "a" * 40000),
    ("new-model", "llama-3.1-8b", "--gpu", "l4", "--revision", "a" * 40000),
    ("new-model", "llama-3.1-8b", "--gpu", "l4", "--hf-repo", "a/" + "b" * 40000),
    ("gitops", "flux", "--revision", "a" * 40000),
    ("gitops", "flux", "--repo-url", "https://h/" + "a" * 40000),
    ("gitops", "flux", "--repo-url", "https://a@" + ":1" * 20000 + "/x y"),
    ("plan", "llama-3.1-8b", "--gpu", "l4", "--vllm-version", "0.1." + "a" * 25 + "!"),
    ("plan", "llama-3.1-8b", "--gpu", "l4", "--vllm-version", "0.1." + "a" * 40000 + "!"),
    ("plan", "llama-3.1-8b", "--gpu", "l4", "--gpus-per-node", "100000000"),
    ("check", "--all", "--kube-version", "1." + "1" * 40000 + "x"),
])
def test_hostile_lengths_are_refused_in_well_under_a_second(repo, args):
    start = time.perf_counter()
    res = cli(*args, repo=None if args[0] == "plan" else repo)
    elapsed = time.perf_counter() - start
    one_line_error(res)
    assert elapsed < 3, f"{elapsed:.1f} s"  # planning included; the regexes themselves take milliseconds


def test_the_input_regexes_themselves_take_milliseconds():
    from compose.core.errors import InvalidInput
    from compose.plan import catalog, planner
    from compose.publish import gitops

    checks = [
        lambda: planner.parse_version("0.1." + "a" * 40000 + "!"),
        lambda: gitops.check_repo_url("https://a@" + ":1" * 20000 + "/x y", "flux"),
        lambda: gitops.check_revision("a" * 40000 + "/"),
        lambda: catalog.check_hub_id("a" * 40000 + "/b-"),
        lambda: catalog.check_revision("a" * 40000 + "."),
    ]
    for check in checks:
        start = time.perf_counter()
        with pytest.raises(InvalidInput):
            check()
        assert time.perf_counter() - start < 0.1


# =========================================================================== accepted, but wrong


@pytest.mark.parametrize("args, needle", [
    (("--replicas", "1:99999999999999999999"), "--replicas"),
    (("--replicas", "1:1001"), "1000"),
    (("--target-rps", "1e9"), "--target-rps"),
    (("--target-rps", "50000"), "at most 1000"),
])
def test_values_it_used_to_write_are_refused(repo, args, needle):
    before = snapshot(repo)
    line = one_line_error(cli("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", *args, repo=repo))
    assert needle in line
    if args == ("--target-rps", "50000"):  # the derived maxReplicaCount: a way out, not 173,044,268
        assert "lower --target-rps" in line
    assert snapshot(repo) == before


def test_a_local_config_needs_a_hub_id_and_a_revision(repo):
    """It used to download HF_MODEL_ID=<directory name> at revision main."""
    write_config(repo, "models/my-model/config.json", catalog_config())
    before = snapshot(repo)
    line = one_line_error(cli("new-model", "models/my-model/config.json", "--gpu", "l4", repo=repo))
    assert "--hf-repo" in line and "--revision" in line
    assert snapshot(repo) == before
    res = cli("new-model", "models/my-model/config.json", "--gpu", "l4", "--cloud", "gke", "--hf-repo", "me/my-model",
              "--revision", SHA, "--name", "mine", repo=repo)
    assert res.exit_code == 0, res.output
    env = _init_env(repo / "overlays" / "dev-mine")
    assert env["HF_MODEL_ID"] == "me/my-model" and env["HF_REVISION"] == SHA
    assert env["MODEL_DIR"] == "/models/me/my-model"
    assert cli("regen", "--all", "--check", repo=repo).exit_code == 0


def test_name_or_path_that_is_a_path_never_becomes_one(repo):
    write_config(repo, "models/x/config.json", catalog_config(_name_or_path="../.."))
    plan = cli("plan", str(repo / "models/x/config.json"), "--gpu", "l4", "--format", "json")
    doc = json.loads(plan.stdout)
    assert doc["hf_repo"] is None and ".." not in doc["model_dir"]
    line = one_line_error(cli("new-model", "models/x/config.json", "--gpu", "l4", "--revision", SHA, repo=repo))
    assert "--hf-repo" in line
    res = cli("new-model", "models/x/config.json", "--gpu", "l4", "--revision", SHA, "--hf-repo", "org/x",
              "--name", "x", repo=repo)
    assert res.exit_code == 0, res.output
    assert _init_env(repo / "overlays" / "dev-x")["MODEL_DIR"] == "/models/org/x"


def test_a_hostile_directory_name_never_reaches_promql_or_yaml(repo, tmp_path):
    from prometheus_harness import promtool_check_rules, rule_file_text

    write_config(repo, "models/evil{{ .Foo/config.json", catalog_config())
    res = cli("new-model", "models/evil{{ .Foo/config.json", "--gpu", "l4", "--hf-repo", "org/evil",
              "--revision", SHA, repo=repo)
    assert res.exit_code == 0, res.output
    (directory,) = [d for d in (repo / "overlays").iterdir() if d.name.startswith("dev-evil")]
    for f in directory.glob("*.yaml"):
        if f.name != "compose-plan.yaml":  # the plan file records the input path, as a quoted YAML string
            assert "{{" not in f.read_text(), f.name
    assert yaml.safe_load((directory / "compose-plan.yaml").read_text())["inputs"]["model"] == \
        "models/evil{{ .Foo/config.json"
    # The README's command line quotes the path for the shell.
    assert "compose new-model 'models/evil{{ .Foo/config.json' " in (directory / "README.md").read_text()
    rule = [d for d in kustomize.build(directory).docs if d["kind"] == "PrometheusRule"][0]
    if shutil.which("promtool"):
        rules = tmp_path / "rules.yaml"
        rules.write_text(rule_file_text(rule))
        proc = promtool_check_rules(rules)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_config_outside_the_repository_is_refused_and_inside_is_relative(repo, tmp_path):
    outside = write_config(tmp_path, "elsewhere/config.json", catalog_config())
    line = one_line_error(cli("new-model", str(outside), "--gpu", "l4", "--hf-repo", "me/m", "--revision", SHA,
                              repo=repo))
    assert "outside the repository" in line and "copy it into the repository" in line
    inside = write_config(repo, "models/m/config.json", catalog_config())
    res = cli("new-model", str(inside), "--gpu", "l4", "--hf-repo", "me/m", "--revision", SHA, "--name", "m",
              repo=repo)
    assert res.exit_code == 0, res.output
    inputs = yaml.safe_load((repo / "overlays/dev-m/compose-plan.yaml").read_text())["inputs"]
    assert inputs["model"] == "models/m/config.json"


def test_a_recorded_path_that_leaves_the_repository_is_refused(repo, tmp_path):
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    write_config(tmp_path, "c/config.json", catalog_config())
    edit(plan, "  model: llama-3.1-8b", f"  model: ../{tmp_path.name}/c/config.json")
    rel = os.path.relpath(tmp_path / "c" / "config.json", repo)
    plan.write_text(plan.read_text().replace(f"../{tmp_path.name}/c/config.json", rel))
    line = one_line_error(cli("regen", "dev-8b", repo=repo))
    assert "leaves the repository" in line


def _init_env(directory: Path) -> dict:
    dep = [d for d in kustomize.build(directory).docs if d["kind"] == "Deployment"][0]
    (init,) = [c for c in dep["spec"]["template"]["spec"]["initContainers"] if c["name"] == "download-weights"]
    return {e["name"]: e.get("value") for e in init["env"]}


# =========================================================================== permissions


@pytest.mark.parametrize("umask, files, dirs", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_written_files_follow_the_umask_and_keep_their_mode(repo, umask, files, dirs):
    """Every write used to leave 0700 directories and 0600 files, and an update dropped 0644."""
    os.chmod(repo / "overlays" / "dev-8b" / "patch-resources.yaml", 0o640)
    edit(repo / "overlays" / "dev-8b" / "patch-resources.yaml", "nvidia.com/gpu: '1'", "nvidia.com/gpu: '2'")
    old = os.umask(umask)
    try:
        assert cli(*NEW, repo=repo).exit_code == 0
        assert cli("regen", "dev-8b", repo=repo).exit_code == 0
    finally:
        os.umask(old)
    d = repo / "overlays" / "dev-q"
    assert d.stat().st_mode & 0o777 == dirs
    assert {f.stat().st_mode & 0o777 for f in d.iterdir()} == {files}
    assert (repo / "flux" / "models" / "dev-q.yaml").stat().st_mode & 0o777 == files
    assert (repo / "overlays" / "dev-8b" / "patch-resources.yaml").stat().st_mode & 0o777 == 0o640


def run_readonly(root: Path, *args: str) -> subprocess.CompletedProcess:
    """compose on a read-only checkout: a read-only bind mount as root, `chmod a-w` otherwise."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "compose", *args, "--repo", str(root)]
    if os.geteuid() != 0:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        finally:
            for p in [root, *root.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
    if shutil.which("unshare") is None:
        pytest.skip("unshare not available to mount the checkout read-only (a kernel privilege, allowed in CI)")
    script = 'mount --bind -o ro "$1" "$1" || exit 97; shift; exec "$@"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(root), *command], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 97 or "unshare failed" in proc.stderr:
        pytest.skip("cannot mount the checkout read-only here (no mount namespace: a kernel privilege, allowed in CI)")
    return proc


@pytest.mark.parametrize("args", [
    NEW, ("regen", "--all"), ("regen", "dev-8b"), ("gitops", "flux", "--revision", "v2"),
    ("build", "--all", "--out", "rendered"),
])
def test_a_read_only_checkout_is_one_line(repo, args):
    edit(repo / "overlays" / "dev-8b" / "patch-resources.yaml", "nvidia.com/gpu: '1'", "nvidia.com/gpu: '2'")
    before = snapshot(repo)
    args = tuple(str(repo / a) if a == "rendered" else a for a in args)
    proc = run_readonly(repo, *args)
    assert proc.returncode == EXIT_INVALID, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert "writable" in lines[0] or "read-only" in lines[0].lower()
    assert snapshot(repo) == before


def test_a_preview_works_on_a_read_only_checkout(repo):
    proc = run_readonly(repo, *NEW, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would create overlays/dev-q/kustomization.yaml" in proc.stdout


# =========================================================================== misleading output


def test_dry_run_prints_a_diff_that_git_apply_turns_into_the_real_change(repo, tmp_path):
    """It printed `+++ b/<absolute path>` headers, then `created` for files it did not write."""
    twin = tmp_path / "twin"
    shutil.copytree(repo, twin, symlinks=True)
    res = cli(*NEW, "--dry-run", repo=repo)
    assert res.exit_code == 0, res.output
    assert str(repo) not in res.stdout and "created " not in res.stdout
    assert "would create overlays/dev-q/kustomization.yaml" in res.stdout
    assert "would update flux/kustomization.yaml" in res.stdout
    assert git_status(repo) == []  # wrote nothing
    patch = tmp_path / "change.patch"
    patch.write_text(res.stdout)
    proc = subprocess.run(["git", "apply", str(patch)], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert cli(*NEW, repo=twin).exit_code == 0
    assert snapshot(repo) == snapshot(twin)


def test_a_clean_regen_check_prints_one_line(repo):
    res = cli("regen", "--all", "--check", repo=repo)
    assert res.exit_code == 0
    assert len(res.stdout.strip().splitlines()) == 1 and res.stderr == ""
    assert "up to date" in res.stdout


def test_regen_check_prints_only_the_drift_and_one_summary_line(repo):
    edit(repo / "overlays" / "dev-8b" / "patch-resources.yaml", "nvidia.com/gpu: '1'", "nvidia.com/gpu: '2'")
    res = cli("regen", "--all", "--check", repo=repo)
    assert res.exit_code == 1 and res.stdout == ""
    assert "unchanged" not in res.stderr
    assert res.stderr.count("diff --git") == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: 1 of ")


def test_gitops_never_points_at_a_readme_nobody_wrote(repo):
    (repo / "flux" / "README.md").unlink()
    res = cli("gitops", "flux", "--out", "clusters/gpu", repo=repo)
    assert res.exit_code == 0, res.output
    assert "README" not in res.stdout
    res = cli("gitops", "argocd", "--out", "clusters/argo", repo=repo)
    assert "clusters/argo/README.md" not in (repo / "clusters/argo/root.yaml").read_text()
    assert "(see argocd/README.md)" in (repo / "clusters/argo/root.yaml").read_text()  # it exists


def test_crds_are_found_beside_the_repository_not_beside_compose(tmp_path, monkeypatch):
    from compose.core.errors import InvalidInput
    from compose.verify import validate

    monkeypatch.delenv("VLLM_COMPOSE_CRD_DIR", raising=False)
    second = tmp_path / "second"
    second.mkdir()
    root = full_repo(second, "repo")
    (second / "shared" / "crds").mkdir(parents=True)
    assert validate.default_crd_dir(root) == second / "shared" / "crds"
    lonely = full_repo(tmp_path, "lonely")
    with pytest.raises(InvalidInput) as err:
        validate.default_crd_dir(lonely)
    assert str(tmp_path / "shared" / "crds") in str(err.value)
    assert str(REPO.parent) not in str(err.value)


# =========================================================================== a corrupted checkout


@pytest.mark.parametrize("broken", ["kustomization.yaml", "patch-storage.yaml", "compose-plan.yaml"])
def test_no_command_changes_another_overlay_of_a_corrupted_checkout(repo, tmp_path, broken):
    (repo / "overlays" / "dev-8b" / broken).write_text("a: [\n")
    before = snapshot(repo)
    others = lambda snap: {k: v for k, v in snap.items() if not k.startswith(("overlays/dev-8b/", "rendered/"))}  # noqa: E731
    commands = [
        NEW, ("regen", "prod-70b"), ("regen", "--all"), ("regen", "--all", "--check"), ("gitops", "argocd"),
        ("gitops", "flux"), ("build", "--all", "--out", str(tmp_path / "rendered")), ("build", "prod-70b"),
        ("check", "--all", "--crd-dir", str(Path(os.environ.get("VLLM_COMPOSE_CRD_DIR", REPO.parent / "shared/crds")))),
        ("list", "--no-check"),
    ]
    for args in commands:
        res = cli(*args, repo=repo)
        assert res.exit_code in (0, 1, 2), (args, res.output)
        assert "Traceback" not in res.output, args
        if res.exit_code == 2:
            one_line_error(res)
        assert others(snapshot(repo)) == others(before), args
        assert snapshot(repo) == before, args  # nothing at all here: every writer needs dev-8b
    assert leftovers(repo) == []


def test_list_survives_a_plan_section_without_its_figures(repo):
    """Found by the fuzzer: `plan: {}` made `compose list` fail with KeyError (exit 3)."""
    plan = repo / "overlays" / "dev-8b" / "compose-plan.yaml"
    doc = yaml.safe_load(plan.read_text())
    doc["plan"] = {}
    plan.write_text("# Generated by compose (compose-plan.yaml) for overlay dev-8b.\n" + yaml.safe_dump(doc))
    res = cli("list", "--no-check", repo=repo)
    assert res.exit_code == 0, res.output
    (row,) = [line for line in res.stdout.splitlines() if line.startswith("dev-8b")]
    assert " ? " in row and "llama-3.1-8b" in row


def _plant_journal(repo: Path, doc: object) -> Path:
    tdir = repo / ".compose" / "txn-planted"
    tdir.mkdir(parents=True)
    (tdir / "journal.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return tdir


ENTRY = {"path": "overlays/dev-8b/README.md", "new": "aGk=", "mode": 0o644, "old": None}


@pytest.mark.parametrize("doc, needle", [
    # recovery wrote wherever a planted or corrupted journal said, with any mode bits
    ({"state": "commit", "entries": [dict(ENTRY, path="{outside}/EVIL")]}, "outside the transaction's scope"),
    ({"state": "commit", "entries": [dict(ENTRY, path="../../../{outside}/EVIL2")]}, "outside the transaction's scope"),
    ({"state": "commit", "scope": [".git"], "entries": [dict(ENTRY, path=".git/hooks/pre-commit")]}, "is in .git/"),
    ({"state": "commit", "scope": ["/"], "entries": [dict(ENTRY, path="{outside}/EVIL3")]}, "whole file system"),
    ({"state": "commit", "entries": [dict(ENTRY, mode="rw")]}, "is not a file mode"),
    ({"state": "commit", "entries": [dict(ENTRY, new="!!!")]}, "not valid base64"),
    # ... and a malformed one was exit 3 on every command until removed by hand
    ("{}", "entries is not a list"),
    ("[1, 2]", "not a JSON object"),
    ('"commit"', "not a JSON object"),
    ({"state": "commit"}, "entries is not a list"),
    ({"entries": "abc"}, "entries is not a list"),
    ({"state": "commit", "entries": [{"path": "overlays/x", "mode": 420}]}, "lacks path, new or mode"),
    ({"state": "commit", "entries": [dict(ENTRY, path=None)]}, "is not a path"),
    ({"state": "commit", "entries": [], "created_dirs": 5}, "created_dirs is not a list"),
])
def test_a_planted_or_corrupted_journal_is_one_line_and_acts_on_nothing(repo, tmp_path, doc, needle):
    outside = tmp_path / "outside"
    outside.mkdir()
    if not isinstance(doc, str):
        doc = json.loads(json.dumps(doc).replace("{outside}", str(outside).lstrip("/") if "../" in json.dumps(doc)
                                                  else str(outside)))
    tdir = _plant_journal(repo, doc)
    before = snapshot(repo)
    for args in (("list", "--no-check"), ("regen", "--all", "--check")):
        line = one_line_error(cli(*args, repo=repo))
        assert needle in line and "txn-planted" in line and "move" in line, line
    assert not list(outside.iterdir()) and snapshot(repo) == before and tdir.is_dir()
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_a_journal_of_a_real_interrupted_run_still_recovers(repo):
    """The checks accept what compose itself writes (format 2, with its scope)."""
    from compose.core.transaction import Transaction

    readme = repo / "overlays" / "dev-8b" / "README.md"
    generated = readme.read_text()
    readme.write_text(generated + "hand edit\n")  # so regen has a file to write back
    env = {**os.environ, "VLLM_COMPOSE_FAULT": "committed"}
    proc = subprocess.run([sys.executable, "-m", "compose", "regen", "--all"], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0  # killed at the commit point: the journal is there, nothing applied
    assert list((repo / ".compose").glob("txn-*/journal.json"))
    res = cli("list", "--no-check", repo=repo)
    assert res.exit_code == 0 and "note: completed an interrupted `compose regen --all`" in res.stderr, res.output
    assert not list((repo / ".compose").glob("txn-*")) and readme.read_text() == generated
    assert Transaction


def test_leftover_names_outside_the_generated_trees_are_never_deleted(repo):
    """Any `.X.md.abcdefgh.tmp` or `.X.yaml.compose-tmp` anywhere in the repository (docs/,
    base/, a user's own directory: another tool's atomic write in progress) was deleted,
    silently, by every command, `check` and `list` included."""
    mine = [repo / "docs" / ".guide.md.abcdefgh.tmp", repo / "base" / ".my.yaml.compose-tmp"]
    for path in mine:
        path.parent.mkdir(exist_ok=True)
        path.write_text("precious\n")
    ours = repo / "overlays" / "dev-8b" / ".README.md.abcdefgh.tmp"
    ours.write_text("# Generated by compose\n")
    res = cli("list", "--no-check", repo=repo)
    assert res.exit_code == 0, res.output
    assert all(p.read_text() == "precious\n" for p in mine)
    assert not ours.exists() and "note: removed overlays/dev-8b/.README.md.abcdefgh.tmp" in res.stderr, res.stderr


# =========================================================================== issues 10-14: the options and commands
# added after issue 9 (placement, security, doctor/status, the planner's catalogs, routing
# and canaries) hold the same guarantees: a bad value is one line and exit 2, nothing is
# written, nothing hangs, a credential is never echoed, a bug is exit 3 with the traceback.

CLOSED_PORT_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:%d"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def routed_template(tmp_path_factory) -> Path:
    from composer_helpers import routed_full_repo

    return routed_full_repo(tmp_path_factory.mktemp("routed"))


@pytest.fixture(scope="module")
def canary_template(tmp_path_factory) -> Path:
    from composer_helpers import routed_full_repo

    return routed_full_repo(tmp_path_factory.mktemp("canary"), canary=True)


@pytest.fixture()
def routed(routed_template, tmp_path) -> Path:
    from composer_helpers import copy_repo

    return copy_repo(routed_template, tmp_path / "routed")


@pytest.fixture()
def with_canary(canary_template, tmp_path) -> Path:
    from composer_helpers import copy_repo

    return copy_repo(canary_template, tmp_path / "with-canary")


ROUTED_NAME = "dev-qwen2-5-7b"
IMAGE = "vllm/vllm-openai:v0.33.0-cu130"
TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "A1b2C3"  # the shape of a GitHub token, not a real one


@pytest.mark.parametrize("args, needle", [
    (("canary", "start", "dev-nothing", "--image", IMAGE, "--weight", "10"), "no overlay 'dev-nothing'"),
    (("canary", "start", "../../etc", "--image", IMAGE, "--weight", "10"), "no overlay"),
    (("canary", "start", "x" * 40000, "--image", IMAGE, "--weight", "10"), "no overlay"),
    (("canary", "start", "dev-8b", "--image", IMAGE, "--weight", "10"), "no route to split"),
    (("canary", "start", ROUTED_NAME, "--weight", "10"), "must change something"),
    (("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "101"), "--weight"),
    (("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "-1"), "--weight"),
    (("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "10", "--replicas", "5"), "--replicas"),
    (("canary", "start", ROUTED_NAME, "--image", "vllm/vllm-openai:latest", "--weight", "10"), "floating tag"),
    (("canary", "start", ROUTED_NAME, "--image", "x" * 40000, "--weight", "10"), "--image"),
    (("canary", "start", ROUTED_NAME, "--vllm-version", "../../../etc/passwd", "--weight", "10"), "--vllm-version"),
    (("canary", "start", ROUTED_NAME, "--vllm-version", "0." * 20000, "--weight", "10"), "--vllm-version"),
    (("canary", "start", ROUTED_NAME, "--revision", "main", "--weight", "10"), "40-character"),
    (("canary", "start", ROUTED_NAME, "--set", "x" * 40000 + "=1", "--weight", "10"), "invalid --set"),
    (("canary", "start", ROUTED_NAME, "--set", "max_model_len=" + "9" * 40000, "--weight", "10"), "takes a int"),
    (("canary", "start", ROUTED_NAME, "--set", "max_model_len=99999999999", "--weight", "10"), "--max-model-len"),
    (("canary", "start", ROUTED_NAME, "--set", "gpu_memory_utilization=nan", "--weight", "10"),
     "--gpu-memory-utilization"),
    (("canary", "start", ROUTED_NAME, "--set", "gpu=../../x", "--weight", "10"), "unknown GPU"),
    (("canary", "start", ROUTED_NAME, "--set", "kv_cache_dtype=int4", "--weight", "10"), "--kv-cache-dtype"),
    (("canary", "start", ROUTED_NAME, *["--set", "spot=false"] * 17, "--weight", "10"), "at most 16"),
    (("canary", "set-weight", ROUTED_NAME, "101"), "less than or equal to 100"),
    (("canary", "set-weight", ROUTED_NAME, "50"), "has no canary running"),
    (("canary", "promote", ROUTED_NAME), "has no canary running"),
    (("canary", "abort", ROUTED_NAME), "has no canary running"),
    (("canary", "promote", "x" * 40000), "no overlay"),
])
def test_bad_canary_commands_are_one_line_and_write_nothing(routed, args, needle):
    before = snapshot(routed)
    start = time.perf_counter()
    line = one_line_error(cli(*args, repo=routed))
    assert time.perf_counter() - start < 5
    assert needle in line, line
    assert len(line) < 1200, len(line)
    assert snapshot(routed) == before and leftovers(routed) == []


@pytest.mark.parametrize("image", [
    f"user:{TOKEN}@ghcr.io/me/vllm:v1", f"https://me:{TOKEN}@ghcr.io/me/vllm:v1", f"ghcr.io/me/vllm:{TOKEN}",
    "me:hunter2@registry.example.com/vllm:v1",
])
def test_credentials_in_image_are_refused_and_never_echoed(routed, image):
    before = snapshot(routed)
    for args in (("new-model", "llama-3.1-8b", "--cloud", "gke", "--gpu", "l4", "--image", image),
                 ("canary", "start", ROUTED_NAME, "--image", image, "--weight", "10")):
        line = one_line_error(cli(*args, repo=routed))
        assert "credentials" in line, line
        assert TOKEN not in line and "hunter2" not in line, line
    assert snapshot(routed) == before


def test_a_canary_of_a_hand_written_overlay_is_refused(routed):
    d = routed / "overlays" / ROUTED_NAME
    for f in d.iterdir():  # a person took the whole overlay over: no generated headers
        f.write_text("\n".join(line for line in f.read_text().splitlines() if "Generated by compose" not in line))
    before = snapshot(routed)
    line = one_line_error(cli("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "10", repo=routed))
    assert "was not generated by compose" in line
    assert snapshot(routed) == before


def test_a_hand_written_canary_directory_is_never_deleted(with_canary):
    notes = with_canary / "overlays" / f"{ROUTED_NAME}-canary" / "NOTES.md"
    notes.write_text("my notes\n")
    before = snapshot(with_canary)
    for command in ("promote", "abort"):
        line = one_line_error(cli("canary", command, ROUTED_NAME, repo=with_canary))
        assert "compose did not generate (NOTES.md)" in line, line
    assert snapshot(with_canary) == before


def test_a_canary_whose_change_would_not_build_writes_nothing(with_canary):
    """The transaction builds the stable overlay in its view: a hand-added patch that no
    longer applies stops set-weight before anything is written."""
    k = with_canary / "overlays" / ROUTED_NAME / "kustomization.yaml"
    lines = k.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("patches:"))
    indent = lines[at + 1][: len(lines[at + 1]) - len(lines[at + 1].lstrip())]
    lines.insert(at + 1, f"{indent}- path: patch-mine.yaml\n")
    k.write_text("".join(lines))
    before = snapshot(with_canary)
    line = one_line_error(cli("canary", "set-weight", ROUTED_NAME, "50", repo=with_canary))
    assert "would not build" in line and "patch-mine.yaml" in line, line
    assert snapshot(with_canary) == before and leftovers(with_canary) == []


def test_a_canary_command_waits_for_the_lock_then_fails_with_one_line(with_canary, monkeypatch):
    import fcntl

    from compose.core import transaction

    lock = transaction.state_dir(with_canary) / transaction.LOCK_FILE
    lock.parent.mkdir(exist_ok=True)
    before = snapshot(with_canary)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = compose_subprocess(with_canary, "canary", "set-weight", ROUTED_NAME, "50",
                                 env={transaction.LOCK_TIMEOUT_ENV: "0.3"})
    assert res.returncode == EXIT_INVALID and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "another compose command" in res.stderr
    assert snapshot(with_canary) == before


@pytest.mark.parametrize("args", [
    ("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "10"),
    ("canary", "promote", ROUTED_NAME),
])
def test_a_canary_command_on_a_read_only_checkout_is_one_line(routed, with_canary, args):
    root = with_canary if args[1] == "promote" else routed
    before = snapshot(root)
    proc = run_readonly(root, *args)
    assert proc.returncode == EXIT_INVALID, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("args, needle", [
    (("--gateway", "../x"), "--gateway"),
    (("--gateway", "a/b/c"), "NAMESPACE/NAME"),
    (("--gateway", "gw/" + "x" * 40000), "--gateway"),
    (("--gateway", "gateway-system/inference", "--hostname", "a." * 20000 + "!"), "--hostname"),
    (("--gateway", "gateway-system/inference", "--hostname", "evil{{ .Foo }}.com"), "--hostname"),
    (("--allow-from", "x" * 40000), "--allow-from"),
    (("--allow-from", "Kube_System"), "--allow-from"),
    (tuple(x for i in range(33) for x in ("--allow-from", f"ns{i}")), "at most 32"),
    (("--api-key-secret", "../x"), "--api-key-secret"),
    (("--api-key-secret", "s" * 40000), "--api-key-secret"),
    (("--image-digest", "sha256:" + "g" * 64), "--image-digest"),
    (("--image-digest", "sha256:" + "a" * 40000), "--image-digest"),
    (("--image", "vllm/vllm-openai"), "pinned reference"),
    (("--revision", "refs/heads/main"), "40-character"),
    (("--single-replica-reason", "x" * 40000), "--single-replica-reason"),
    (("--single-replica-reason", "ok\x1b[31m red"), "printable"),
    (("--single-replica-reason", "two\nlines"), "one line"),
    (("--gpus-per-node", "17"), "--gpus-per-node"),
    (("--gpus-per-node", "100000000"), "--gpus-per-node"),
    (("--prometheus-url", f"https://{TOKEN}@prom.example.com"), "credentials"),
    (("--prometheus-url", "file:///etc/passwd"), "--prometheus-url"),
])
def test_hostile_values_of_the_new_model_options_are_one_line(routed, args, needle):
    before = snapshot(routed)
    start = time.perf_counter()
    line = one_line_error(cli("new-model", "llama-3.1-8b", "--cloud", "gke", "--gpu", "l4", *args, repo=routed))
    assert time.perf_counter() - start < 3
    assert needle in line, line
    assert len(line) < 1200 and TOKEN not in line, line
    assert snapshot(routed) == before


def test_allow_from_a_platform_namespace_is_a_clients_choice(routed):
    """--allow-from names where *clients* run, not a namespace the overlay owns: kube-system
    is accepted (a cluster's ingress controller may live there) and written as given; the
    reserved-namespace refusal is for --namespace, which the overlay owns."""
    res = cli("new-model", "llama-3.1-8b", "--cloud", "gke", "--gpu", "l4", "--allow-from", "kube-system",
              repo=routed)
    assert res.exit_code == 0, res.output
    policy = (routed / "overlays" / "dev-llama-3-1-8b" / "patch-network-policy.yaml").read_text()
    assert "kube-system" in policy
    line = one_line_error(cli("new-model", "llama-3.1-8b", "--cloud", "gke", "--gpu", "l4", "--name", "ks",
                              "--namespace", "kube-system", repo=routed))
    assert "Kubernetes' own" in line


@pytest.mark.parametrize("mutate, needle", [
    (lambda t: t.replace("  gateway: gateway-system/inference\n", "  gateway: ../../x\n"), "inputs.gateway"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         "  gateway: gateway-system/inference\n  canary_weight: 400\n"), "inputs.canary_weight"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         "  gateway: gateway-system/inference\n  router: nginx\n"), "inputs.router"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         "  gateway: gateway-system/inference\n  allow_from: kube-system\n"), "inputs.allow_from"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         f"  gateway: gateway-system/inference\n  image: 'me:{TOKEN}@ghcr.io/x:v1'\n"),
     "inputs.image"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         "  gateway: gateway-system/inference\n  gpus_per_node: 'four'\n"),
     "inputs.gpus_per_node must be an integer"),
    (lambda t: t.replace("  gateway: gateway-system/inference\n",
                         "  gateway: gateway-system/inference\n  shared_cache: 'yes'\n"),
     "inputs.shared_cache must be a boolean"),
])
def test_a_bad_recorded_routing_or_security_input_is_one_line(routed, mutate, needle):
    plan = routed / "overlays" / ROUTED_NAME / "compose-plan.yaml"
    plan.write_text(mutate(plan.read_text()))
    before = snapshot(routed)
    for args in (("regen", ROUTED_NAME), ("regen", "--all"),
                 ("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "10")):
        line = one_line_error(cli(*args, repo=routed))
        assert f"overlays/{ROUTED_NAME}/compose-plan.yaml" in line and needle in line, (args, line)
        assert TOKEN not in line
    assert snapshot(routed) == before


@pytest.mark.parametrize("args, needle", [
    (("plan", "llama-3.1-8b", "--gpu", "l4", "--storage", "x" * 40000), "unknown storage"),
    (("plan", "llama-3.1-8b", "--gpu", "l4", "--concurrent-loads", "1001"), "--concurrent-loads"),
    (("plan", "llama-3.1-8b", "--gpu", "l4", "--concurrent-loads", "0"), "--concurrent-loads"),
    (("plan", "llama-3.1-8b", "--gpu", "l4", "--gpus-per-node", "65"), "--gpus-per-node"),
])
def test_hostile_plan_storage_and_loads_are_one_line(args, needle):
    start = time.perf_counter()
    line = one_line_error(cli(*args))
    assert time.perf_counter() - start < 3 and needle in line and len(line) < 1200, line


# ----------------------------------------------------------------- doctor and status, no cluster reachable


@pytest.fixture()
def closed_kubeconfig(tmp_path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(CLOSED_PORT_KUBECONFIG % closed_port())
    return path


@pytest.mark.parametrize("args, needle", [
    (("doctor", "dev-8b", "--kubeconfig", "{missing}"), "no such file"),
    (("doctor", "dev-8b", "--kubeconfig", "{garbage}"), "kubeconfig"),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}", "--timeout", "1"), "cannot reach the cluster"),
    (("status", "--all", "--kubeconfig", "{closed}", "--timeout", "1"), "cannot reach the cluster"),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}", "--context", "x" * 40000), "--context"),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}", "--context", "nope"), "no such context"),
    (("doctor", "dev-8b", "--kubeconfig", "k" * 40000), "--kubeconfig"),
    (("doctor", "x" * 40000, "--kubeconfig", "{closed}"), "no overlay"),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}", "--timeout", "0"), "--timeout"),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}", "--timeout", "601"), "--timeout"),
    (("status", "dev-8b", "--kubeconfig", "{closed}", "--interval", "1e9"), "--interval"),
    (("status", "dev-8b", "--kubeconfig", "{closed}", "--prometheus-url", "file:///etc/passwd"), "--prometheus-url"),
    (("status", "dev-8b", "--kubeconfig", "{closed}", "--watch", "--format", "json"), "--watch"),
])
def test_doctor_and_status_without_a_cluster_are_one_line(repo, tmp_path, closed_kubeconfig, args, needle):
    (tmp_path / "garbage").write_text("clusters: [\n")
    paths = {"{missing}": str(tmp_path / "missing"), "{garbage}": str(tmp_path / "garbage"),
             "{closed}": str(closed_kubeconfig)}
    args = tuple(paths.get(a, a) for a in args)
    before = snapshot(repo)
    start = time.perf_counter()
    line = one_line_error(cli(*args, repo=repo))
    assert time.perf_counter() - start < 10
    assert needle in line and len(line) < 1200, line
    assert snapshot(repo) == before


@pytest.mark.parametrize("command, target", [
    (("doctor", "dev-8b", "--kubeconfig", "{closed}"), ("compose.cluster.target", "load")),
    (("status", "--all", "--kubeconfig", "{closed}"), ("compose.cluster.target", "from_directory")),
    (("doctor", "dev-8b", "--kubeconfig", "{closed}"), ("compose.cluster.kube", "connect")),
    (("canary", "set-weight", ROUTED_NAME, "50"), ("compose.publish.canary", "plan_set_weight")),
    (("canary", "promote", ROUTED_NAME), ("compose.publish.canary", "_checker")),
    (("canary", "start", ROUTED_NAME, "--image", IMAGE, "--weight", "10"), ("compose.publish.gitops", "stage_all")),
])
def test_a_bug_in_doctor_status_or_canary_is_exit_3_with_the_saved_traceback(request, closed_kubeconfig,
                                                                              monkeypatch, command, target):
    import importlib

    with_canary = request.getfixturevalue("routed" if command[1] == "start" else "with_canary")

    def broken(*a, **k):
        raise KeyError("a bug")

    monkeypatch.setattr(importlib.import_module(target[0]), target[1], broken)
    command = tuple(str(closed_kubeconfig) if a == "{closed}" else a for a in command)
    before = snapshot(with_canary)
    line = one_line_error(cli(*command, repo=with_canary), EXIT_INTERNAL)
    assert "internal error (KeyError" in line
    saved = Path(re.search(r"the full traceback is in (\S+);", line).group(1))
    assert "Traceback" in saved.read_text() and "a bug" in saved.read_text()
    saved.unlink()
    assert snapshot(with_canary) == before and leftovers(with_canary) == []


# ---------------------------------------------------------- doctor and status against a hostile API server


class _HostileApi:
    """An HTTP server on loopback that answers every GET the way `mode` says."""

    def __init__(self, mode: str, tls_dir: Path | None = None):
        import http.server
        import socketserver
        import threading
        import urllib.parse

        def status(h, code: int, message: str, headers: dict | None = None):
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                               "code": code}).encode()
            h.send_response(code)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        def handle(h):
            path = h.path
            version = json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}).encode()
            if mode == "slow" and path.startswith("/version"):
                time.sleep(30)
            if mode == "401":  # a rejection whose message would rewrite the terminal, 5 MB long
                return status(h, 401, "Unauthorized \u001b[2J\u001b]0;pwned\u0007 \u202eevil " + "A" * 5_000_000)
            if mode == "retry-after" and not path.startswith("/version"):
                return status(h, 503, "come back in an hour", {"Retry-After": "3600"})
            if mode in ("empty", "slow", "retry-after", "pages"):
                if path.startswith("/version"):
                    return send(h, version)
                if mode == "pages" and "limit=" in path:  # one item a page, a new continue token each time
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
                    n = int((query.get("continue") or ["0"])[0]) + 1
                    return send(h, json.dumps({"items": [{"metadata": {"name": f"n{n}", "namespace": "x"}}],
                                               "metadata": {"continue": str(n)}}).encode())
                if "limit=" in path:
                    return send(h, json.dumps({"items": []}).encode())
                return status(h, 404, "not found")
            if mode.startswith("prom-"):  # a cluster with one ScaledObject; `mode` is Prometheus'
                if path.startswith("/api/v1/query"):
                    return respond(h, mode[len("prom-"):])
                if "/scaledobjects/" in path:
                    return send(h, json.dumps({"metadata": {"name": "x"}, "status": {}}).encode())
                if path.startswith("/version"):
                    return send(h, json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}).encode())
                return send(h, json.dumps({"items": []}).encode())
            return respond(h, mode)

        def send(h, body):
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        def respond(h, mode):
            path = h.path
            if mode == "trickle":  # headers, then a byte every 0.2 s: no socket timeout ever trips
                h.send_response(200)
                h.send_header("Content-Length", "100000")
                h.end_headers()
                try:
                    for _ in range(500):
                        h.wfile.write(b" ")
                        h.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
                return
            if mode == "huge":
                h.send_response(200)
                h.end_headers()
                try:
                    h.wfile.write(b'{"gitVersion": "')
                    for _ in range(200):
                        h.wfile.write(b"a" * 2**20)
                except OSError:
                    pass
                return
            if mode == "deep":
                body = b"[" * 100000 + b"]" * 100000
            elif path.startswith("/version") and mode == "bidi":  # a version that rewrites the terminal
                body = json.dumps({"major": "1", "minor": "30", "gitVersion": BIDI_VERSION}).encode()
            elif path.startswith("/version"):
                body = json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}).encode()
            elif mode == "malformed" and "limit=" in path:  # items a real API server never sends
                body = json.dumps({"items": MALFORMED_ITEMS}).encode()
            elif mode == "malformed":
                body = json.dumps({"apiVersion": "v1", "kind": "X", "metadata": "x", "spec": [], "status": "y"}).encode()
            elif mode == "endless" and "limit=" in path:
                body = json.dumps({"items": [], "metadata": {"continue": "again"}}).encode()
            else:
                body = b"[1, 2, 3]"
            send(h, body)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            do_GET = handle

            def log_message(self, *a):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_dir is not None:  # a self-signed certificate for 127.0.0.1
            import ssl

            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                            str(tls_dir / "key.pem"), "-out", str(tls_dir / "cert.pem")], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


BIDI_VERSION = "v1.30.0\u202e\u0000\u001b[2J\u001b]0;pwned\u0007"
MALFORMED_ITEMS = [
    {"kind": "Pod"},                                                    # no metadata at all
    {"metadata": [], "spec": "s", "status": 1},                         # metadata a list
    {"metadata": {"name": 5, "labels": ["a"], "annotations": "b"}},     # name a number, labels a list
    {"metadata": {"name": "ok", "namespace": 7, "labels": {"a": 1}}, "spec": {"containers": "c"},
     "status": {"conditions": "Ready", "containerStatuses": [1, None]}},
]


def test_what_a_hostile_api_server_says_is_printed_never_obeyed(repo, tmp_path):
    """doctor printed the server's gitVersion as is: a right-to-left override, NUL and
    escape sequences (clear the screen, set the window title) reached the terminal."""
    api = _HostileApi("bidi")
    try:
        kc = _kubeconfig(tmp_path, api.url)
        res = compose_subprocess(repo, "doctor", "dev-8b", "--kubeconfig", str(kc), "--timeout", "2", timeout=60)
    finally:
        api.close()
    out = res.stdout + res.stderr
    assert res.returncode in (0, 1), out
    assert "v1.30.0\\u202e\\u0000\\u001b[2J" in out, out
    assert not any(c in out for c in ("\u202e", "\x00", "\x1b", "\x07")), repr(out[:400])


def _kubeconfig(tmp_path: Path, server: str, user: str = "{token: t}") -> Path:
    path = tmp_path / "kubeconfig-hostile"
    path.write_text(CLOSED_PORT_KUBECONFIG.replace('"https://127.0.0.1:%d"', json.dumps(server))
                    .replace("{token: t}", user))
    return path


@pytest.mark.parametrize("mode, code, needle", [
    ("trickle", EXIT_INVALID, "timed out"),       # hung for as long as the server kept trickling
    ("huge", 1, "more than 128 MiB"),             # read all of it into memory (1 GB for 1 GB)
    ("deep", 1, "not JSON"),                      # RecursionError: exit 3, "internal error"
    ("endless", 0, "the list never ends"),        # the same continue token forever: a hang
    ("array", 0, "not an object"),                # [1, 2, 3] where an object belongs
    ("malformed", 0, "malformed"),                # objects without metadata, labels as lists: exit 3
])
def test_doctor_against_a_hostile_api_server_is_bounded(repo, tmp_path, mode, code, needle):
    api = _HostileApi(mode)
    try:
        kc = _kubeconfig(tmp_path, api.url)
        before = snapshot(repo)
        start = time.perf_counter()
        res = cli("doctor", "dev-8b", "--kubeconfig", str(kc), "--timeout", "1", repo=repo)
        assert time.perf_counter() - start < 20, mode
    finally:
        api.close()
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if code:
        assert needle in one_line_error(res, code)
    else:
        assert res.exit_code in (0, 1) and needle in res.stdout, res.output
    assert snapshot(repo) == before


@pytest.mark.parametrize("server, user, needle", [
    ("https://admin:hunter2@127.0.0.1:{port}", "{token: t}", "cannot reach the cluster at https://***@127.0.0.1"),
    ("ht!tp://[::1", "{token: t}", "is not an https:// URL"),
    ("", "{token: t}", "is not an https:// URL"),
    # the exec plugin runs (kubectl would run it too); what it prints is held to the ExecCredential protocol
    ("https://127.0.0.1:{port}", "{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: /bin/sh, "
     "args: ['-c', 'echo {}']}}", "printed no ExecCredential"),
])
def test_a_hostile_kubeconfig_is_one_line_in_a_process_of_its_own(repo, tmp_path, server, user, needle):
    """Credentials in the server URL were echoed; a bad scheme or the exec plugin's
    logging.error() (which configures logging onto stderr, then urllib3 logs each retry)
    gave several stderr lines."""
    kc = _kubeconfig(tmp_path, server.format(port=closed_port()), user)
    res = compose_subprocess(repo, "doctor", "dev-8b", "--kubeconfig", str(kc), "--timeout", "1", timeout=60)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == EXIT_INVALID and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0] and "hunter2" not in res.stderr + res.stdout, lines[0]


@pytest.mark.parametrize("out", ["clusters/a\nb", "clusters/\u202eevil", "clusters/\x1b[31mred", "c/" * 600])
def test_gitops_out_with_control_characters_is_one_line(repo, out):
    """A newline in --out was blamed on a generated file ("malformed YAML ... fix the
    file"); a right-to-left override was accepted, written and echoed."""
    before = snapshot(repo)
    line = one_line_error(cli("gitops", "flux", "--out", out, repo=repo))
    assert "invalid --out" in line and "printable" in line and "\u202e" not in line, line
    assert snapshot(repo) == before and leftovers(repo) == []


# ------------------------------------------- doctor and status: credentials and the client's side doors
# (the second hostile pass: what the kubernetes client reads, writes and runs on our behalf)

SECRET_TOKEN = "SECRETTOKEN123"
PLUGIN = "{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: %s}}"


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("how", ["inline", "token-file-crlf", "exec-plugin"])
def test_a_token_with_a_line_break_is_one_line_and_never_printed(repo, tmp_path, how):
    """urllib3 refuses the header "Bearer SECRETTOKEN123\n" and quotes it; the quote was the
    error line, token and all (a `token: |` block, a tokenFile saved on Windows, a plugin
    that ends its token with a newline)."""
    if how == "inline":
        user = '{token: "%s\\n"}' % SECRET_TOKEN
    elif how == "token-file-crlf":
        (tmp_path / "token").write_bytes(SECRET_TOKEN.encode() + b"\r\n")
        user = "{tokenFile: %s}" % (tmp_path / "token")
    else:
        (tmp_path / "credential.json").write_text(json.dumps({
            "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
            "status": {"token": SECRET_TOKEN + "\n"}}))
        user = PLUGIN % _script(tmp_path, "plugin", f"cat {tmp_path / 'credential.json'}")
    api = _HostileApi("empty")
    try:
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url, user)), "--timeout", "2",
                  repo=repo)
    finally:
        api.close()
    line = one_line_error(res)
    assert "line break" in line and SECRET_TOKEN not in res.output, res.output


@pytest.mark.parametrize("field, target", [
    ("tokenFile", "/dev/zero"),     # read whole by the client: minutes, then the OOM killer
    ("tokenFile", "fifo"),          # read forever
    ("client-key", "/dev/zero"),
    ("tokenFile", "directory"),
])
def test_a_credential_file_that_is_not_a_file_is_one_line(repo, tmp_path, field, target):
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    elif target == "directory":
        (tmp_path / "directory").mkdir()
    path = target if target.startswith("/") else str(tmp_path / target)
    api = _HostileApi("empty")
    try:
        start = time.perf_counter()
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url, "{%s: %s}" % (field, path))),
                  "--timeout", "2", repo=repo)
        assert time.perf_counter() - start < 20
    finally:
        api.close()
    assert "is not a regular file" in one_line_error(res)


@pytest.mark.parametrize("body, needle", [
    ("sleep 1000", "did not finish within"),
    ("exec cat /dev/zero", "printed more than 1 MiB"),
    ("echo not json", "not JSON"),
    ("echo denied >&2; exit 7", "exited 7: denied"),
])
def test_an_exec_credential_plugin_is_bounded_in_time_and_output(repo, tmp_path, body, needle):
    """The client ran the plugin with no time or output limit (a hung `aws eks get-token`
    hung doctor; `cat /dev/zero` ate the memory), then logged its failure and went on
    without a token."""
    plugin = _script(tmp_path, "plugin", body)
    api = _HostileApi("empty")
    try:
        start = time.perf_counter()
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url, PLUGIN % plugin)),
                  "--timeout", "1", repo=repo)
        assert time.perf_counter() - start < 20
    finally:
        api.close()
    assert needle in one_line_error(res)
    assert not subprocess.run(["pgrep", "-f", str(plugin)], capture_output=True).stdout  # its group was killed


def test_an_exec_credential_plugin_that_answers_is_used(repo, tmp_path):
    plugin = _script(tmp_path, "plugin", "printf '%s'" % json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
        "status": {"token": SECRET_TOKEN}}))
    api = _HostileApi("empty")
    try:
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url, PLUGIN % plugin)),
                  "--timeout", "2", repo=repo)
    finally:
        api.close()
    assert res.exit_code in (0, 1) and "doctor dev-8b" in res.stdout and SECRET_TOKEN not in res.output, res.output


def test_embedded_keys_never_touch_the_disk(repo, tmp_path):
    """client-key-data was written to $TMPDIR/tmpXXXX for the whole run and removed only at a
    clean exit: a SIGKILL left the private key on disk. It now lives in an in-memory file."""
    import base64

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    api = _HostileApi("slow", tls_dir=tmp_path)  # /version takes 30 s: the process is killed while it waits
    try:
        # the server's own certificate and key double as the client's (the client only loads them)
        cert, key = (base64.b64encode((tmp_path / f).read_bytes()).decode() for f in ("cert.pem", "key.pem"))
        kc = _kubeconfig(tmp_path, api.url, "{client-certificate-data: %s, client-key-data: %s}" % (cert, key))
        kc.write_text(kc.read_text().replace('cluster: {server:', "cluster: {insecure-skip-tls-verify: true, server:"))
        proc = subprocess.Popen([sys.executable, "-m", "compose", "doctor", "dev-8b", "--kubeconfig", str(kc),
                                 "--timeout", "60"], cwd=repo, env={**os.environ, "TMPDIR": str(tmpdir)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("memfd" in p for p in _open_files(proc.pid)):
            time.sleep(0.05)
        time.sleep(1)  # well into the request, which waits for /version
        assert any("memfd" in p for p in _open_files(proc.pid)), _open_files(proc.pid)  # the key, in memory
        assert not list(tmpdir.iterdir())
        proc.kill()
        proc.wait()
    finally:
        api.close()
    assert not list(tmpdir.iterdir())


def _open_files(pid: int) -> list[str]:
    try:
        return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return []


def test_a_socks_proxy_without_its_module_is_one_line(repo, tmp_path):
    """exit 3 (ModuleNotFoundError: socks), after urllib3's own warning on stderr."""
    kc = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    kc.write_text(kc.read_text().replace('cluster: {server:', "cluster: {proxy-url: 'socks5://127.0.0.1:1', server:"))
    res = compose_subprocess(repo, "doctor", "dev-8b", "--kubeconfig", str(kc), timeout=60)  # warnings reach stderr
    assert res.returncode == EXIT_INVALID and res.stderr.count("\n") == 1 and "urllib3[socks]" in res.stderr, res.stderr


def test_a_hostile_rejection_is_escaped_and_cut_to_one_short_line(repo, tmp_path):
    """A 401 whose message cleared the screen and reversed the text, 5 MB of it on one line."""
    api = _HostileApi("401")
    try:
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url)), "--timeout", "2", repo=repo)
    finally:
        api.close()
    line = one_line_error(res)
    assert "rejected the credentials" in line and "\\u001b[2J" in line and "\\u202e" in line, line[:300]
    assert not any(c in line for c in ("\x1b", "\u202e", "\x07")) and len(line) < 2100


def test_a_server_that_says_retry_in_an_hour_is_a_finding_not_a_wait(repo, tmp_path):
    """urllib3 honoured Retry-After: 3600 until the request's deadline, for every request."""
    api = _HostileApi("retry-after")
    try:
        start = time.perf_counter()
        res = cli("doctor", "dev-8b", "--kubeconfig", str(_kubeconfig(tmp_path, api.url)), "--timeout", "5", repo=repo)
        elapsed = time.perf_counter() - start
    finally:
        api.close()
    assert res.exit_code in (0, 1) and "HTTP 503: come back in an hour" in res.stdout, res.output
    assert elapsed < 15, elapsed


def test_a_list_that_pages_forever_is_cut_off_by_time(tmp_path):
    """New continue tokens forever, each page on time: doctor sent 4,010 GETs over 182 s at
    --timeout 1. A list now gets LIST_BUDGET requests' worth of --timeout."""
    from compose.cluster import kube
    from compose.core.errors import ClusterApiError

    api = _HostileApi("pages")
    try:
        cluster = kube.connect(_kubeconfig(tmp_path, api.url), timeout=(0.1, 0.1))
        start = time.perf_counter()
        with pytest.raises(ClusterApiError, match="still paging after"):
            list(cluster.iter("/api/v1/pods"))
        assert time.perf_counter() - start < kube.LIST_BUDGET * 0.2 + 3
    finally:
        api.close()


def test_insecure_skip_tls_verify_prints_no_warning_per_request(repo, tmp_path):
    """32 lines of InsecureRequestWarning on stderr, one per request."""
    api = _HostileApi("empty", tls_dir=tmp_path)
    try:
        kc = _kubeconfig(tmp_path, api.url)
        kc.write_text(kc.read_text().replace('cluster: {server:', "cluster: {insecure-skip-tls-verify: true, server:"))
        res = compose_subprocess(repo, "doctor", "dev-8b", "--kubeconfig", str(kc), "--timeout", "2", timeout=60)
    finally:
        api.close()
    assert res.returncode in (0, 1) and "doctor dev-8b" in res.stdout, res.stdout + res.stderr
    assert "Warning" not in res.stderr and not res.stderr.strip(), res.stderr


@pytest.mark.parametrize("mode, needle", [
    ("array", "not a Prometheus query answer"),     # AttributeError: exit 3, "internal error"
    ("trickle", "no full answer in 10s"),           # hung for as long as the server trickled
    ("huge", "more than 128 MiB"),                  # read all of it: 6 GB for 3 GB
])
def test_status_against_a_hostile_prometheus_is_bounded(repo, tmp_path, mode, needle):
    api = _HostileApi("prom-" + mode)
    try:
        kc = _kubeconfig(tmp_path, api.url)
        start = time.perf_counter()
        res = cli("status", "dev-8b", "--kubeconfig", str(kc), "--timeout", "1", "--prometheus-url", api.url,
                  repo=repo)
        assert time.perf_counter() - start < 20, mode
    finally:
        api.close()
    assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
    assert needle in res.stdout, res.stdout


def test_status_against_an_api_server_that_answers_malformed_objects_is_one_finding(repo, tmp_path):
    """A pod without metadata, labels as a list, conditions as a string: `status` died with
    AttributeError (exit 3, "internal error"). Every answer is now held to the JSON types of
    the kubernetes client's models before a check reads it (kube.malformed)."""
    api = _HostileApi("malformed")
    try:
        kc = _kubeconfig(tmp_path, api.url)
        res = cli("status", "dev-8b", "--kubeconfig", str(kc), "--timeout", "1", repo=repo)
    finally:
        api.close()
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    assert res.exit_code in (0, 1) and "malformed object" in res.output, res.output


@pytest.mark.parametrize("doc, path, problem", [
    ({"items": [{"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}, "/api/v1/pods", None),
    ({"items": [{"metadata": {"name": "p"}, "status": {"conditions": "Ready"}}]}, "/api/v1/pods",
     "items[0].status.conditions is not a list"),
    ({"items": [{"metadata": {"name": "n", "labels": ["x"]}}]}, "/api/v1/nodes", "items[0].metadata.labels is not an object"),
    ({"items": [{"metadata": {"name": "n"}, "status": {"allocatable": {"nvidia.com/gpu": 8}}}]}, "/api/v1/nodes",
     "items[0].status.allocatable.nvidia.com/gpu is not a Kubernetes quantity"),
    ({"metadata": {"name": "s"}, "data": {"token": "aGY="}}, "/api/v1/namespaces/x/secrets/s", None),
    ({"metadata": {"name": 5}}, "/apis/keda.sh/v1alpha1/namespaces/x/scaledobjects/s", "metadata.name is not a string"),
    ({"metadata": {"name": "s"}, "spec": {"anything": [1, "x"]}}, "/apis/keda.sh/v1alpha1/namespaces/x/scaledobjects/s",
     None),  # a custom resource's spec is its own
    ({"metadata": {"name": "s"}, "spec": "x"}, "/apis/keda.sh/v1alpha1/namespaces/x/scaledobjects/s",
     "spec is not an object"),  # ... but an object, by API convention
    ({"metadata": {"name": "s"}, "status": {"conditions": [{"type": "Ready", "status": True}]}},
     "/apis/keda.sh/v1alpha1/namespaces/x/scaledobjects/s", "status.conditions[0].status is not a string"),
    ({"resources": [{"name": 0}]}, "/apis/keda.sh/v1alpha1", "resources[0].name is not a string"),  # discovery
    ({"spec": {"containers": [{"name": "c", "restartCount": True}]}}, "/api/v1/namespaces/x/pods/p", None),
    ({"status": {"containerStatuses": [{"name": "c", "restartCount": True}]}}, "/api/v1/namespaces/x/pods/p",
     "status.containerStatuses[0].restartCount is not an integer"),
    # null means unset (dropped), but not as a list element; timestamps carry a zone; quantities parse
    ({"status": {"containerStatuses": [{"name": "c", "restartCount": None}]}}, "/api/v1/namespaces/x/pods/p", None),
    ({"spec": {"containers": [None]}}, "/api/v1/namespaces/x/pods/p", "spec.containers[0] is null"),
    ({"status": {"containerStatuses": [{"restartCount": 1}]}}, "/api/v1/namespaces/x/pods/p",
     "status.containerStatuses[0].name is missing"),
    ({"metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00"}}, "/api/v1/namespaces/x/pods/p",
     "metadata.creationTimestamp is not an RFC 3339 time with a zone"),
    ({"metadata": {"name": "n"}, "status": {"allocatable": {"memory": "Infinity"}}}, "/api/v1/nodes/n",
     "status.allocatable.memory is not a Kubernetes quantity"),
    ({"metadata": {"name": "n"}, "status": {"allocatable": {"nvidia.com/gpu": "1e999999999"}}}, "/api/v1/nodes/n",
     "status.allocatable.nvidia.com/gpu is not a Kubernetes quantity"),
])
def test_malformed_holds_answers_to_the_kubernetes_json_types(doc, path, problem):
    from compose.cluster import kube

    assert kube.malformed(doc, path) == problem


def test_malformed_walks_a_deep_answer_without_recursion():
    from compose.cluster import kube

    deep: object = "leaf"
    for _ in range(50_000):
        deep = [deep]
    assert kube.malformed({"metadata": {"name": "x", "finalizers": deep}}, "/api/v1/namespaces/x") == (
        "metadata.finalizers[0] is not a string")


@pytest.mark.parametrize("kind", ["file", "link"])
@pytest.mark.parametrize("args", [("gitops", "flux"), ("gitops", "argocd"), NEW, ("regen", "--all"), ("list",)])
def test_a_generated_tree_that_is_a_file_or_a_link_is_one_line(repo, tmp_path, kind, args):
    """overlays/ as a file: `gitops flux` exited 0 and deleted every flux/models file.
    overlays/ as a link to a directory outside: `new-model` wrote there and stripped
    every other overlay's Application of ignoreDifferences."""
    overlays = repo / "overlays"
    outside = tmp_path / "elsewhere"
    shutil.move(str(overlays), str(outside))
    if kind == "file":
        overlays.write_text("oops\n")
    else:
        overlays.symlink_to(outside)
    before, outside_before = snapshot(repo), sorted(p.name for p in outside.iterdir())
    line = one_line_error(cli(*args, repo=repo))
    assert "overlays" in line and ("not a directory" if kind == "file" else "symbolic link") in line, line
    assert snapshot(repo) == before and sorted(p.name for p in outside.iterdir()) == outside_before



@pytest.mark.parametrize("extra, needle", [
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 500 levels"),   # RecursionError: exit 3
    (BILLION_LAUGHS, "billion laughs"),
    ("x: '" + "a" * (1024 * 1024) + "'\n", "more than 1 MiB"),                 # 44 s per load at 5 MB
    ("y: [" + ", ".join(["{name: c, context: {cluster: c, user: u}}"] * 18000) + "]\n", None),
], ids=["deep", "billion-laughs", "1-MiB", "18000-contexts"])
def test_a_hostile_kubeconfig_file_is_refused_before_the_client_reads_it(repo, tmp_path, closed_kubeconfig,
                                                                        extra, needle):
    text = closed_kubeconfig.read_text()
    if needle is None:  # 18,000 contexts: the client's linear lookups took minutes
        text, needle = text.replace("contexts: [", extra[len("y: ["):-2] .join(["contexts: [", ", "]), 1), \
            "18,001 contexts, more than 1000"
    else:
        text += extra
    closed_kubeconfig.write_text(text)
    start = time.perf_counter()
    line = one_line_error(cli("doctor", "dev-8b", "--kubeconfig", str(closed_kubeconfig), "--timeout", "1",
                              repo=repo))
    assert time.perf_counter() - start < 10 and needle in line and len(line) < 1200, line
