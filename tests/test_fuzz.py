"""Property-based fuzzing of every command (issue 9), with a fixed seed.

Hypothesis draws options for new-model, plan, regen, build, check, list, gitops,
models and gpus (valid values, boundary values, absurd numbers, NaN, random text,
paths that leave the repository, ...), and mutates config.json and compose-plan.yaml
files. Every run must:

- end with exit 0, 1 or 2, never a traceback; exit 2 is exactly one `error:` line;
- finish within RUN_SECONDS;
- leave the checkout unchanged, or (exit 0 of a writing command) changed only inside
  the directories that command owns, with nothing left behind, and idempotent: the
  matching `--check` finds nothing to do.

Hypothesis favours edge cases, so with its own values almost every run is refused at
the first option; the write paths would go untested. The `*_hostile` and plan tests use
Hypothesis' values; test_fuzz_new_model, test_fuzz_plan_mostly_valid and test_fuzz_gitops
draw arguments from value lists with known odds (`sampled_argv`, a Hypothesis-seeded
Random), so that a third to a half of their runs succeed and write.

The commands run in process (compose.cli.run) on one git checkout per test, reset with
git after a run that changed it. Budget: FUZZ_EXAMPLES examples in total (default
3000), split over the tests by SHARES (by cost: a run that writes builds with
kustomize); raise it for a deep local run, e.g.
`FUZZ_EXAMPLES=40000 python -m pytest tests/test_fuzz.py`. Seeds are fixed
(derandomize=True), so CI sees the same examples every time; run with
`--hypothesis-show-statistics` to see the exit codes each test reached.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from composer_helpers import cli, full_repo, git, leftovers

pytestmark = pytest.mark.usefixtures("kubectl")

BUDGET = int(os.environ.get("FUZZ_EXAMPLES", "3000"))
# Shares follow the cost of one example: planning-only runs are cheap, writes build with kustomize.
SHARES = {"new_model": 0.03, "new_model_hostile": 0.17, "plan": 0.22, "plan_valid": 0.12, "gitops": 0.05,
          "other": 0.06, "config": 0.23, "plan_file": 0.10, "canary": 0.007, "cluster": 0.013}
RUN_SECONDS = 30.0
SHA = "0123456789abcdef0123456789abcdef01234567"


def budget(name: str) -> int:
    return max(10, int(BUDGET * SHARES[name]))


def fuzz_settings(name: str):
    return settings(
        max_examples=budget(name), deadline=None, derandomize=True, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------- the checkout


GOOD_CONFIG = "models/good/config.json"


def _qwen_config() -> dict:
    from compose.plan import catalog

    return {**catalog.config_for("qwen2.5-7b"), "_name_or_path": "Qwen/Qwen2.5-7B-Instruct"}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = full_repo(tmp_path_factory.mktemp("fuzz"))
    (root / "models" / "good").mkdir(parents=True)
    (root / GOOD_CONFIG).write_text(json.dumps(_qwen_config(), indent=1))
    (root / "README.md").write_text("# project\n")  # a file where `gitops --out README.md` would write
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "fuzz baseline")
    _BASELINE[str(root)] = fingerprint(root)
    return root


def fingerprint(root: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, mode) of every file outside .git/ and .compose/: a rewrite with the
    same bytes counts as a change too (compose must not touch a file it leaves as it is)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".compose")]
        for name in filenames:
            st_ = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st_.st_size, st_.st_mtime_ns, st_.st_mode)
    return out


_BASELINE: dict[str, dict] = {}


def changed_paths(root: Path) -> list[str]:
    """Paths that differ from the committed tree (added, removed, rewritten), without git."""
    base = _BASELINE.setdefault(str(root), fingerprint(root))
    now = fingerprint(root)
    return sorted(k for k in set(base) | set(now) if base.get(k) != now.get(k))


def reset(root: Path, changed: list[str] | None = None) -> None:
    """Back to the committed tree (after a run that changed it; `changed`: already known)."""
    if changed is None:
        changed = changed_paths(root)
    if changed:
        git(root, "checkout", "-q", "--", ".")
        git(root, "clean", "-fdq")
        _BASELINE[str(root)] = fingerprint(root)


def run_checked(root: Path, argv: list[str], repo: bool = True):
    """Run one command and check the properties every run must have; returns the result."""
    start = time.monotonic()
    res = cli(*argv, repo=root if repo else None)
    elapsed = time.monotonic() - start
    assert elapsed < RUN_SECONDS, f"{argv[:3]} took {elapsed:.1f} s"
    assert res.exit_code in (0, 1, 2), (argv, res.output[-2000:])
    assert "Traceback" not in res.output, (argv, res.output[-2000:])
    if res.exit_code == 2:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, res.stderr[-2000:])
    elif res.exit_code == 1:
        assert res.stderr.strip().splitlines()[-1].startswith("error: "), (argv, res.stderr[-2000:])
    assert leftovers(root) == [], argv
    event(f"{argv[0] if argv else '-'}: exit {res.exit_code}")  # --hypothesis-show-statistics
    return res


def inside(paths: list[str], owned: list[str]) -> bool:
    return all(any(p == o or p.startswith(o.rstrip("/") + "/") for o in owned) for p in paths)


# --------------------------------------------------------------------------- values

numbers = st.one_of(
    st.integers(-3, 80).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0", "1", "64", "65", "1000", "1001", "16777216", "16777217", "99999999999999999999"]),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e300", "1e-300", "0.5", "0.05", "1.0", "", "x", "1e9", "-0"]),
)
texts = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["", " ", "..", "../x", "/etc", "a/b", "-x", "x" * 300, "{{ .Foo }}", "y", "no", "1e3", "é",
                     "UPPER", "a_b", "prod-70b", "dev-8b", "8b"]),
)
urls = st.one_of(
    texts,
    st.sampled_from(["http://prom:9090", "https://prom.example.com/x", "http://a:99999", "ftp://x/y",
                     "http://[::1]:9090", "http://a b", "https://h/" + "a" * 3000, "ssh://git@h/o/r.git",
                     "git@github.com:o/r.git", "https://github.com/o/r.git", "https://a@" + ":1" * 500 + "/x y"]),
)
revisions = st.one_of(texts, st.sampled_from([SHA, "main", "refs/tags/v1", "a//b", "x.lock", "../x", "a" * 300]))
hub_ids = st.one_of(texts, st.sampled_from(["Qwen/Qwen2.5-7B-Instruct", "me/m", "a--b/c", "../..", "a/b/c", "org/x"]))
DIGEST = "sha256:" + "0123456789abcdef" * 4
TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "A1b2C3"  # the shape of a GitHub token, not a real one
GATEWAY = "gateway-system/inference"
GOOD_IMAGES = ["vllm/vllm-openai:v0.33.0-cu130", "v0.33.1", "registry.example.com/m/vllm:v1",
               f"vllm/vllm-openai:v0.33.0@{DIGEST}"]
BAD_IMAGES = ["vllm/vllm-openai:latest", "vllm/vllm-openai", f"me:{TOKEN}@ghcr.io/x:v1", "UPPER:v1", "x" * 600,
              "a@b/c:v1"]
images = st.sampled_from(GOOD_IMAGES + BAD_IMAGES)
gateways = st.sampled_from([GATEWAY, "gw/x", "../x", "a/b/c", "nope", "gw/" + "x" * 300, "Gw/x"])


def optional(flag: str, values):
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


def flags(*pairs) -> st.SearchStrategy[list[str]]:
    return st.tuples(*pairs).map(lambda parts: [x for part in parts for x in part])


def sampled_argv(rnd, command: list[str], options, switches=(), hostile: float = 0.06, present: float = 0.4):
    """Arguments drawn with known odds from a Hypothesis-seeded Random: each option present
    with `present`, its value hostile with `hostile` (Hypothesis alone favours edge cases, so
    almost nothing would pass validation and the write paths would go untested)."""
    argv = list(command)
    for flag, valid, bad in options:
        if flag is None or rnd.random() < present:
            value = rnd.choice(bad) if rnd.random() < hostile else rnd.choice(valid)
            argv += [value] if flag is None else [flag, value]
    argv += [s_ for s_ in switches if rnd.random() < 0.2]
    return argv


HOSTILE_NUMBERS = ["0", "-1", "65", "1e300", "nan", "inf", "x", "", "99999999999999999999", "1.5"]
HOSTILE_TEXT = ["", " ", "..", "../x", "/etc", "a/b", "-x", "x" * 300, "{{ .Foo }}", "UPPER", "a_b", "é", "\x01"]


# --------------------------------------------------------------------------- new-model


new_model_argv = st.tuples(
    st.one_of(st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "no-such-model", GOOD_CONFIG,
                               "models/missing/config.json", "/etc/passwd", "models", "../../x"]), texts),
    flags(
        optional("--env", st.sampled_from(["dev", "staging", "prod", "qa", ""])),
        optional("--cloud", st.sampled_from(["eks", "gke", "aks", "k3s", "azure"])),
        optional("--gpu", st.one_of(st.sampled_from(["l4", "a100-80gb", "h100-80gb", "t4", "nope"]), texts)),
        optional("--name", texts),
        optional("--namespace", texts),
        optional("--max-model-len", numbers),
        optional("--target-rps", numbers),
        optional("--prompt-tokens", numbers),
        optional("--output-tokens", numbers),
        optional("--max-output-tokens", numbers),
        optional("--replicas", st.one_of(st.sampled_from(["1:3", "2:2", "3:1", "0:1", "1:1001", "x", "1:"]), texts)),
        optional("--tensor-parallel-size", numbers),
        optional("--gpu-memory-utilization", numbers),
        optional("--kv-cache-dtype", st.sampled_from(["auto", "fp8", "int4"])),
        optional("--prometheus-url", urls),
        optional("--hf-repo", hub_ids),
        optional("--revision", revisions),
    ),
    flags(  # issues 10, 11 and 14
        optional("--gpus-per-node", numbers),
        optional("--single-replica-reason", st.one_of(texts, st.sampled_from(["batch only", "x" * 40000, "a\nb"]))),
        optional("--image", st.one_of(texts, images)),
        optional("--gateway", st.one_of(texts, gateways)),
        optional("--hostname", st.one_of(texts, st.sampled_from(["llm.example.com", "*.example.com", "a." * 200]))),
        optional("--route-match", st.sampled_from(["header", "path", "both", "all"])),
        optional("--router", st.sampled_from(["service", "inference-pool", "nginx"])),
        optional("--mesh", st.sampled_from(["istio", "linkerd"])),
        optional("--image-digest", st.one_of(texts, st.sampled_from([DIGEST, "sha256:" + "g" * 64]))),
        optional("--api-key-secret", texts),
        optional("--allow-from", texts),
    ),
    st.lists(st.sampled_from(["--spot", "--no-monitoring", "--dry-run", "--force", "--network-policy",
                              "--no-network-policy"]), max_size=3, unique=True),
).map(lambda t: ["new-model", t[0], *t[1], *t[2], *t[3]])

NEW_MODEL_OPTIONS = [
    (None, ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", GOOD_CONFIG], ["no-such-model", "/etc/passwd", "../../x"]),
    ("--env", ["dev", "staging", "prod"], ["qa", ""]),
    ("--cloud", ["eks", "gke", "aks", "k3s"], ["azure"]),
    ("--gpu", ["l4", "a100-80gb", "h100-80gb"], ["t4", "nope", *HOSTILE_TEXT]),
    ("--name", ["a", "b2", "mine"], HOSTILE_TEXT),
    ("--namespace", ["team-a", "ns"], HOSTILE_TEXT),
    ("--max-model-len", ["2048", "4096", "8192", "16384"], HOSTILE_NUMBERS),
    ("--target-rps", ["0.5", "5", "20", "60"], HOSTILE_NUMBERS),
    ("--prompt-tokens", ["256", "1024"], HOSTILE_NUMBERS),
    ("--output-tokens", ["128", "256"], HOSTILE_NUMBERS),
    ("--max-output-tokens", ["512", "2048"], HOSTILE_NUMBERS),
    ("--replicas", ["1:3", "2:4", "1:1"], ["3:1", "0:1", "1:1001", "x", "1:"]),
    ("--tensor-parallel-size", ["1", "2", "4"], HOSTILE_NUMBERS),
    ("--gpu-memory-utilization", ["0.8", "0.85", "0.9", "0.95"], HOSTILE_NUMBERS),
    ("--kv-cache-dtype", ["auto", "fp8"], ["int4"]),
    ("--prometheus-url", ["http://prom:9090", "https://prom.example.com/x"], ["ftp://x/y", "http://a b", *HOSTILE_TEXT]),
    ("--hf-repo", ["me/m", "org/x-1"], ["a--b/c", "../..", "a/b/c", *HOSTILE_TEXT]),
    ("--revision", [SHA], ["main", "v1.0", "a//b", "x.lock", "../x", "a" * 300]),
    # issues 10, 11 and 14
    ("--gpus-per-node", ["1", "2", "4", "8"], ["0", "17", "100000000", *HOSTILE_NUMBERS]),
    ("--single-replica-reason", ["batch only; a cold start is fine"], ["x" * 40000, "a\nb", "\x1b[31m", *HOSTILE_TEXT]),
    ("--image", GOOD_IMAGES, BAD_IMAGES),
    ("--gateway", [GATEWAY, "gw/shared"], ["../x", "a/b/c", "nope", "gw/" + "x" * 300, *HOSTILE_TEXT]),
    ("--hostname", ["llm.example.com", "*.example.com"], ["a." * 200, "evil{{ .Foo }}", *HOSTILE_TEXT]),
    ("--route-match", ["header", "path", "both"], ["all"]),
    ("--router", ["service", "inference-pool"], ["nginx"]),
    ("--mesh", ["istio"], ["linkerd"]),
    ("--image-digest", [DIGEST], ["sha256:" + "g" * 64, "sha256:" + "a" * 40000, *HOSTILE_TEXT]),
    ("--api-key-secret", ["vllm-api-key", "keys.v1"], ["../x", "s" * 300, *HOSTILE_TEXT]),
    ("--allow-from", ["gateway", "team-a", "kube-system"], ["x" * 40000, *HOSTILE_TEXT]),
]


def _new_model_property(checkout: Path, argv: list[str]) -> None:
    changed = None
    try:
        res = run_checked(checkout, argv)
        changed = changed_paths(checkout)
        if res.exit_code != 0 or "--dry-run" in argv:
            assert changed == [], (argv, changed)
            return
        overlays = {p.split("/")[1] for p in changed if p.startswith("overlays/")}
        assert len(overlays) == 1, changed
        (name,) = overlays
        assert inside(changed, [f"overlays/{name}", "argocd", "flux"]), changed
        again = run_checked(checkout, ["regen", name, "--check"])
        assert again.exit_code == 0, again.output
    finally:
        reset(checkout, changed)


@fuzz_settings("new_model")
@given(rnd=st.randoms(use_true_random=True))
def test_fuzz_new_model(checkout, rnd):
    """Mostly valid options: many runs write an overlay and the GitOps files that list it."""
    argv = sampled_argv(rnd, ["new-model"], NEW_MODEL_OPTIONS, ("--spot", "--no-monitoring", "--dry-run", "--force",
                                                                "--network-policy", "--no-network-policy"),
                        present=0.25)
    _new_model_property(checkout, argv)


@fuzz_settings("new_model_hostile")
@given(argv=new_model_argv)
def test_fuzz_new_model_hostile(checkout, argv):
    """Hypothesis' own values (edge cases first): almost every run must be refused with one line."""
    _new_model_property(checkout, argv)


# --------------------------------------------------------------------------- plan (read-only)


STORAGES = ["efs", "filestore-basic-hdd", "filestore-basic-ssd", "azure-files-standard", "azure-files-premium",
            "local-path", "local-nvme"]
plan_argv = st.tuples(
    st.one_of(st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-7b", GOOD_CONFIG]), texts),
    flags(
        optional("--gpu", st.one_of(st.sampled_from(["l4", "h100-80gb", "a100-80gb", "rtx-4090"]), texts)),
        optional("--gpu-memory-gib", numbers),
        optional("--tensor-parallel-size", numbers),
        optional("--gpu-memory-utilization", numbers),
        optional("--max-model-len", numbers),
        optional("--max-num-batched-tokens", numbers),
        optional("--max-num-seqs", numbers),
        optional("--kv-cache-dtype", st.sampled_from(["auto", "fp8", "fp8_e5m2", "int8", ""])),
        optional("--gpus-per-node", numbers),
        optional("--prompt-tokens", numbers),
        optional("--output-tokens", numbers),
        optional("--max-output-tokens", numbers),
        optional("--target-rps", numbers),
        optional("--spot-notice-seconds", numbers),
        optional("--vllm-version", st.one_of(texts, st.sampled_from(["0.33.0", "v0.11", "0.6.4.post1", "0.1." + "a" * 30 + "!"]))),
        optional("--hf-repo", hub_ids),
        optional("--revision", revisions),
        optional("--format", st.sampled_from(["table", "json", "xml"])),
        optional("--storage", st.one_of(texts, st.sampled_from(STORAGES))),
        optional("--concurrent-loads", numbers),
    ),
    st.lists(st.sampled_from(["--enable-expert-parallel", "--no-expert-parallel"]), max_size=1),
).map(lambda t: ["plan", t[0], *t[1], *t[2]])

PLAN_OPTIONS = [
    (None, ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-7b", GOOD_CONFIG], ["no-such", *HOSTILE_TEXT]),
    ("--gpu", ["l4", "h100-80gb", "a100-80gb", "rtx-4090"], ["nope", *HOSTILE_TEXT]),
    ("--tensor-parallel-size", ["1", "2", "4", "8"], HOSTILE_NUMBERS),
    ("--gpu-memory-utilization", ["0.8", "0.9", "0.95"], HOSTILE_NUMBERS),
    ("--max-model-len", ["4096", "8192", "32768"], HOSTILE_NUMBERS),
    ("--max-num-batched-tokens", ["2048", "8192"], HOSTILE_NUMBERS),
    ("--max-num-seqs", ["64", "256"], HOSTILE_NUMBERS),
    ("--kv-cache-dtype", ["auto", "fp8", "fp8_e5m2"], ["int8", ""]),
    ("--gpus-per-node", ["1", "4", "8"], HOSTILE_NUMBERS),
    ("--prompt-tokens", ["128", "1024"], HOSTILE_NUMBERS),
    ("--output-tokens", ["64", "256"], HOSTILE_NUMBERS),
    ("--max-output-tokens", ["512", "2048"], HOSTILE_NUMBERS),
    ("--target-rps", ["1", "10", "100"], HOSTILE_NUMBERS),
    ("--spot-notice-seconds", ["15", "30", "120"], HOSTILE_NUMBERS),
    ("--vllm-version", ["0.33.0", "v0.11", "0.6.4.post1"], ["0.1." + "a" * 30 + "!", *HOSTILE_TEXT]),
    ("--format", ["table", "json"], ["xml"]),
    ("--storage", STORAGES, ["nvme", "x" * 40000, *HOSTILE_TEXT]),
    ("--concurrent-loads", ["1", "2", "8", "1000"], ["1001", *HOSTILE_NUMBERS]),
]


@fuzz_settings("plan_valid")
@given(rnd=st.randoms(use_true_random=True))
def test_fuzz_plan_mostly_valid(checkout, rnd):
    """Mostly valid plans: the planner's own failure modes (does not fit, bad TP) stay one line."""
    argv = sampled_argv(rnd, ["plan"], PLAN_OPTIONS, ("--enable-expert-parallel", "--no-expert-parallel"), present=0.3)
    if "--gpu" not in argv:
        argv += ["--gpu", "h100-80gb"]
    cwd = os.getcwd()
    os.chdir(checkout)
    try:
        res = run_checked(checkout, argv, repo=False)
    finally:
        os.chdir(cwd)
    if res.exit_code == 0 and "json" in argv:
        doc = json.loads(res.stdout)
        assert doc["fits"] and doc["tensor_parallel_size"] >= 1 and ".." not in doc["model_dir"]


@fuzz_settings("plan")
@given(argv=st.one_of(plan_argv, st.sampled_from([["models"], ["gpus"], ["models", "--format", "json"],
                                                   ["gpus", "--format", "yaml"], ["--version"], []])))
def test_fuzz_plan_models_gpus(checkout, argv):
    cwd = os.getcwd()
    os.chdir(checkout)  # a relative config path is read from here
    try:
        run_checked(checkout, argv, repo=False)
    finally:
        os.chdir(cwd)
    assert changed_paths(checkout) == []


# --------------------------------------------------------------------------- gitops


GITOPS_OPTIONS = [
    (None, ["argocd", "flux"], ["helm", *HOSTILE_TEXT]),
    ("--repo-url", ["https://github.com/o/r.git", "ssh://git@h/o/r.git", "git@github.com:o/r.git"],
     ["ftp://x/y", "http://a b", "https://h/" + "a" * 3000, "https://a@" + ":1" * 500 + "/x y", *HOSTILE_TEXT]),
    ("--revision", ["main", "refs/tags/v1.2.0", SHA], ["a//b", "../x", "a" * 300, *HOSTILE_TEXT]),
    ("--out", ["argocd", "flux", "clusters/a", "clusters/b"],
     ["README.md", "overlays/x", "argocd/applications", "..", "/tmp", "flux/models", *HOSTILE_TEXT]),
    ("--addon", ["base/nvidia-device-plugin"], ["base/vllm", "overlays/dev-8b", "base/nope", "/etc", *HOSTILE_TEXT]),
    ("--secret-ref", ["flux-system"], HOSTILE_TEXT),
]


@fuzz_settings("gitops")
@given(rnd=st.randoms(use_true_random=True))
def test_fuzz_gitops(checkout, rnd):
    argv = sampled_argv(rnd, ["gitops"], GITOPS_OPTIONS, ("--no-addons", "--dry-run", "--check"), hostile=0.1,
                        present=0.3)
    changed = None
    try:
        res = run_checked(checkout, argv)
        changed = changed_paths(checkout)
        if res.exit_code != 0 or "--dry-run" in argv or "--check" in argv:
            assert changed == [], (argv, changed)
            return
        if not changed:
            return
        settings_files = [p for p in changed if p.endswith("compose-gitops.yaml")]
        if settings_files:
            (settings_file,) = settings_files
            out = yaml.safe_load((checkout / settings_file).read_text())["out"]
        else:  # options unchanged, overlays unchanged: only an existing tree can have been rewritten
            out = changed[0].split("/")[0]
        assert inside(changed, [out]), (argv, changed)
        assert run_checked(checkout, ["gitops", argv[1], "--out", out, "--check"]).exit_code == 0
    finally:
        reset(checkout, changed)


# --------------------------------------------------------------------------- regen, build, check, list


other_argv = st.one_of(
    st.tuples(st.just("regen"), st.one_of(st.sampled_from([["dev-8b"], ["prod-70b"], ["--all"], ["nope"], []]),
                                          texts.map(lambda t: [t])),
              st.lists(st.sampled_from(["--check", "--dry-run"]), max_size=2, unique=True)),
    st.tuples(st.just("build"), st.one_of(st.sampled_from([["dev-8b"], ["--all"], []]), texts.map(lambda t: [t])),
              st.one_of(st.just([]), st.sampled_from(["rendered", "argocd", "overlays", ".", "flux/x", "r/s"]).map(
                  lambda o: ["--out", o]))),
    st.tuples(st.just("check"), st.one_of(st.sampled_from([["dev-8b"], ["nope"], []]), texts.map(lambda t: [t])),
              optional("--kube-version", st.one_of(st.sampled_from(["1.30", "1.12", "v1.33.1"]), texts))),
    st.tuples(st.just("list"), st.just(["--no-check"]), st.just([])),
).map(lambda t: [t[0], *t[1], *t[2]])


@fuzz_settings("other")
@given(argv=other_argv)
def test_fuzz_regen_build_check_list(checkout, argv):
    cwd = os.getcwd()
    os.chdir(checkout)  # build --out is relative to the current directory
    changed = None
    try:
        res = run_checked(checkout, argv)
        changed = changed_paths(checkout)
        writes = res.exit_code == 0 and not {"--check", "--dry-run"} & set(argv)
        if argv[0] == "build" and "--out" in argv and writes:
            out = argv[argv.index("--out") + 1]
            assert inside(changed, [out]), changed
        elif argv[0] == "regen" and writes:
            assert changed == [], changed  # the committed overlays are current
        else:
            assert changed == [], (argv, changed)
    finally:
        os.chdir(cwd)
        reset(checkout, changed)


# --------------------------------------------------------------------------- canary


@pytest.fixture(scope="module")
def canary_checkouts(tmp_path_factory) -> dict[str, Path]:
    """Two checkouts with a model behind a Gateway: one without a canary (for start), one with
    its canary running at 10 % (for set-weight, promote and abort); committed."""
    from composer_helpers import routed_full_repo

    out = {}
    for running in (False, True):
        root = routed_full_repo(tmp_path_factory.mktemp("fuzz-canary"), canary=running)
        _BASELINE[str(root)] = fingerprint(root)
        out["running" if running else "stable"] = root
    return out


CANARY_STABLE = "dev-qwen2-5-7b"
CANARY_OVERLAY = [CANARY_STABLE, CANARY_STABLE + "-canary", "overlays/" + CANARY_STABLE]
CANARY_BAD_OVERLAY = ["dev-8b", "dev-nothing", "../x", "x" * 40000, *HOSTILE_TEXT]
CANARY_START_OPTIONS = [
    (None, CANARY_OVERLAY, CANARY_BAD_OVERLAY),
    ("--weight", ["0", "10", "50", "100"], ["101", "-1", "1e3", *HOSTILE_NUMBERS]),
    ("--image", GOOD_IMAGES, BAD_IMAGES),
    ("--revision", ["1" * 40], ["main", "a" * 300, *HOSTILE_TEXT]),
    ("--set", ["max_model_len=16384", "gpu_memory_utilization=0.85", "kv_cache_dtype=fp8", "spot=true",
               "prompt_tokens=2048"],
     ["max_model_len=" + "9" * 40000, "gpu=../x", "colour=blue", "=", "max_model_len=1e400", "spot=maybe",
      "x" * 40000 + "=1", "gpu_memory_utilization=nan", "tensor_parallel_size=65"]),
    ("--replicas", ["1", "2", "4"], ["0", "5", *HOSTILE_NUMBERS]),
]
CANARY_OTHER = [
    ("set-weight", [(None, CANARY_OVERLAY, CANARY_BAD_OVERLAY), (None, ["0", "35", "100"], ["101", "-5", "x"])]),
    ("promote", [(None, CANARY_OVERLAY, CANARY_BAD_OVERLAY)]),
    ("abort", [(None, CANARY_OVERLAY, CANARY_BAD_OVERLAY)]),
]


@fuzz_settings("canary")
@given(rnd=st.randoms(use_true_random=True))
def test_fuzz_canary(canary_checkouts, rnd):
    """canary start on a routed model, or set-weight/promote/abort on a running canary: one
    line and nothing written, or exactly the two overlays and the GitOps trees, idempotent."""
    if rnd.random() < 0.5:
        root = canary_checkouts["stable"]
        argv = sampled_argv(rnd, ["canary", "start"], CANARY_START_OPTIONS, ("--dry-run",), hostile=0.12, present=0.5)
        if "--image" not in argv and "--revision" not in argv and "--set" not in argv and rnd.random() < 0.8:
            argv += ["--image", GOOD_IMAGES[0]]
        if "--weight" not in argv and rnd.random() < 0.9:
            argv += ["--weight", "10"]
    else:
        root = canary_checkouts["running"]
        command, options = rnd.choice(CANARY_OTHER)
        argv = sampled_argv(rnd, ["canary", command], options, ("--dry-run",), hostile=0.12, present=1.0)
    changed = None
    try:
        res = run_checked(root, argv)
        changed = changed_paths(root)
        if res.exit_code != 0 or "--dry-run" in argv:
            assert changed == [], (argv, changed)
            return
        assert changed, argv
        assert inside(changed, [f"overlays/{CANARY_STABLE}", f"overlays/{CANARY_STABLE}-canary", "argocd", "flux"]), \
            (argv, changed)
        again = run_checked(root, ["regen", "--all", "--check"])
        assert again.exit_code == 0, (argv, again.output[-2000:])
    finally:
        reset(root, changed)


# --------------------------------------------------------------------------- doctor and status, no cluster


@pytest.fixture(scope="module")
def closed_kubeconfig(tmp_path_factory) -> Path:
    """A kubeconfig whose server is a loopback port nothing listens on: every run ends at
    the first request, refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n")
    return path


CLUSTER_SECONDS = 15.0


@fuzz_settings("cluster")
@given(rnd=st.randoms(use_true_random=True))
def test_fuzz_doctor_status(checkout, closed_kubeconfig, rnd):
    """doctor and status with hostile arguments and no cluster reachable: exit 2 with one
    line (or a usage error), quickly, and nothing written."""
    kube = str(closed_kubeconfig)
    common = [
        ("--kubeconfig", [kube], [kube + ".missing", "/etc", "k" * 5000, *HOSTILE_TEXT]),
        ("--context", ["ctx"], ["nope", "x" * 40000, *HOSTILE_TEXT]),
        ("--timeout", ["1", "2"], ["0", "601", "1e9", *HOSTILE_NUMBERS]),
        ("--format", ["text", "json"], ["xml"]),
    ]
    if rnd.random() < 0.5:
        argv = sampled_argv(rnd, ["doctor"], [(None, ["dev-8b", "prod-70b"], ["nope", "x" * 5000, *HOSTILE_TEXT]),
                                               *common, ("--gitops", ["argocd", "flux"], ["helm"])],
                            ("--strict",), hostile=0.2, present=0.5)
    else:
        overlay = [(None, ["dev-8b", "prod-70b"], ["nope", "x" * 5000, *HOSTILE_TEXT])] if rnd.random() < 0.7 else []
        argv = sampled_argv(rnd, ["status"], [*overlay, *common,
                                               ("--interval", ["1", "5"], ["0", "1e9", *HOSTILE_NUMBERS]),
                                               ("--prometheus-url", ["http://127.0.0.1:1"],
                                                ["file:///etc/passwd", "x" * 5000, *HOSTILE_TEXT])],
                            ("--all", "--no-logs"), hostile=0.2, present=0.5)
    if "--kubeconfig" not in argv:
        argv += ["--kubeconfig", kube]
    if "--timeout" not in argv:
        argv += ["--timeout", "1"]
    start = time.monotonic()
    res = run_checked(checkout, argv)
    assert time.monotonic() - start < CLUSTER_SECONDS, argv[:4]
    assert res.exit_code == 2, (argv[:6], res.output[-2000:])  # no cluster: never "ok", never "findings"
    assert changed_paths(checkout) == []


# --------------------------------------------------------------------------- mutated config.json


def _mutations(value_strategy):
    return st.lists(st.tuples(st.sampled_from(sorted(_qwen_config()) + ["quantization_config", "rope_scaling",
                                                                          "sliding_window", "num_local_experts",
                                                                          "layer_types", "head_dim"]),
                              value_strategy), min_size=1, max_size=4)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False),
              st.sampled_from([0, 1, -1, 2, 8, 64, 2**31, float("inf"), "false", "true", "bfloat16", "x"]), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(
        st.sampled_from(["quant_method", "bits", "group_size", "weight_block_size", "factor", "rope_type", "x"]),
        children, max_size=4)),
    max_leaves=8,
)


def _dump(cfg: dict) -> str:
    return json.dumps(cfg, allow_nan=True)


@fuzz_settings("config")
@given(changes=_mutations(json_values), writes=st.integers(0, 9))
def test_fuzz_mutated_config_json(checkout, changes, writes):
    cfg = _qwen_config()
    for key, value in changes:
        cfg[key] = value
    path = checkout / "models" / "mut" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump(cfg))
    try:
        plan = run_checked(checkout, ["plan", str(path), "--gpu", "h100-80gb", "--format", "json"], repo=False)
        if plan.exit_code == 0:
            doc = json.loads(plan.stdout)
            assert all(math.isfinite(doc[k]) for k in ("weights_gib_total", "kv_cache_gib_per_gpu"))
            assert ".." not in doc["model_dir"]
        if writes == 0:  # one in ten goes on to write an overlay
            res = run_checked(checkout, ["new-model", str(path), "--gpu", "h100-80gb", "--name", "mut",
                                         "--revision", SHA])
            changed = [p for p in changed_paths(checkout) if not p.startswith("models/")]
            assert (changed == []) == (res.exit_code != 0), (changes, changed)
            assert inside(changed, ["overlays/dev-mut", "argocd", "flux"]), changed
    finally:
        path.unlink(missing_ok=True)
        if writes == 0:
            reset(checkout)


# --------------------------------------------------------------------------- mutated compose-plan.yaml


plan_file_paths = st.sampled_from([
    ("inputs", "replicas"), ("inputs", "monitoring"), ("inputs", "spot"), ("inputs", "env"), ("inputs", "name"),
    ("inputs", "max_model_len"), ("inputs", "target_rps"), ("inputs", "gpu"), ("inputs", "model"),
    ("inputs", "cloud"), ("inputs", "namespace"), ("inputs", "prometheus_url"), ("inputs", "hf_repo"),
    ("inputs", "revision"), ("inputs", "unknown"), ("inputs",), ("plan",), ("overlay",), ("overlay", "namespace"),
    ("plan", "startup_budget_seconds"), ("plan", "served_model_name"), ("kind",), ("apiVersion",), ("extra",),
])
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
yaml_values = st.one_of(json_values, st.sampled_from(["false", "prod", "70b", "dev", "8b", "1:3", 5, [], {}, None,
                                                       "../../x", "llama-3.1-8b", 1e400, "http://p:1"]))
# Values a person might well write there, so that regen also succeeds and writes.
PLAN_FILE_VALID = {
    ("inputs", "replicas"): ["1:2", "1:4"], ("inputs", "monitoring"): [True, False], ("inputs", "spot"): [False],
    ("inputs", "max_model_len"): [4096, 8192, 16384], ("inputs", "target_rps"): [1.0, 5, 12.5],
    ("inputs", "gpu"): ["rtx-4090", "l4"], ("inputs", "namespace"): ["dev-8b", "team-a"],
    ("inputs", "prometheus_url"): ["http://prom:9090"], ("inputs", "revision"): [SHA],
    ("inputs", "name"): ["8b"], ("inputs", "env"): ["dev"], ("plan", "startup_budget_seconds"): [300],
}


def plan_file_edits(rnd, drawn: list) -> list:
    """(path, value, delete): a plausible value for 70 % of the paths that have one, else
    Hypothesis' value; one edit in six deletes the key instead."""
    out = []
    for path, hostile in drawn:
        valid = PLAN_FILE_VALID.get(path)
        value = rnd.choice(valid) if valid and rnd.random() < 0.7 else hostile
        out.append((path, value, rnd.random() < 1 / 6))
    return out


@fuzz_settings("plan_file")
@given(drawn=st.lists(st.tuples(plan_file_paths, yaml_values), min_size=1, max_size=3),
       rnd=st.randoms(use_true_random=True),
       command=st.sampled_from([["regen", "dev-8b"], ["regen", "dev-8b", "--check"], ["gitops", "flux", "--check"],
                                ["regen", "--all", "--check"], ["list", "--no-check"]]))
def test_fuzz_mutated_compose_plan_yaml(checkout, drawn, rnd, command):
    edits = plan_file_edits(rnd, drawn)
    path = checkout / "overlays" / "dev-8b" / "compose-plan.yaml"
    original = path.read_bytes()
    stat = path.stat()
    text = original.decode()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    doc = yaml.load(text, Loader=_Loader)
    for keys, value, delete in edits:
        node = doc
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if delete:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
    mutated = header + yaml.dump(doc, Dumper=_Dumper, allow_unicode=True)
    path.write_text(mutated)
    everything = None
    try:
        res = run_checked(checkout, command)
        everything = changed_paths(checkout)
        changed = [p for p in everything if p != "overlays/dev-8b/compose-plan.yaml"]
        if res.exit_code == 0 and command == ["regen", "dev-8b"]:
            assert inside(changed, ["overlays/dev-8b"]), changed  # never another overlay
        else:
            assert changed == [] and path.read_text() == mutated, (command, changed)
    finally:
        if everything == ["overlays/dev-8b/compose-plan.yaml"]:  # only the mutation: put it back as it was
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        else:
            reset(checkout, everything)
