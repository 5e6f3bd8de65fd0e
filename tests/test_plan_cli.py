"""`compose plan`, `compose models`, `compose gpus` through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from compose.plan import catalog
from compose.cli import app
from compose.core.errors import EXIT_INVALID

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_plan_table_picks_a_tp_that_fits_and_explains_every_number():
    res = run("plan", "llama-3.1-70b", "--gpu", "h100-80gb")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("llama-3.1-70b on h100-80gb") and "TP 4, fits" in lines[0]
    rows = {line.split()[0]: line for line in lines[3:] if line.strip()}
    for key in ("tensor_parallel_size", "kv_cache_gib_per_gpu", "kv_cache_tokens", "max_num_seqs",
                "startup_budget_seconds", "termination_grace_period_seconds", "keda_queue_threshold"):
        assert key in rows, key
        assert len(rows[key].split()) > 2, f"{key} has no explanation"


def test_plan_json_for_a_config_path(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(catalog.config_for("qwen2.5-32b")))
    res = run("plan", str(tmp_path / "config.json"), "--gpu-memory-gib", "79.18",
              "--tensor-parallel-size", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["tensor_parallel_size"] == 2 and d["fits"] is True
    assert d["gpu"] == "custom" and d["request"]["gpu_memory_gib"] == 79.18
    # No Hub id in the config: the slug (DNS-1123, from the directory name) names the directory.
    assert d["revision"] is None and d["hf_repo"] is None
    assert d["model_dir"] == f"/models/{d['slug']}" and ".." not in d["model_dir"]


def test_not_fitting_table_is_one_line_on_stderr_exit_2():
    res = run("plan", "llama-3.1-70b", "--gpu", "h100-80gb", "--tensor-parallel-size", "1")
    assert res.exit_code == EXIT_INVALID
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "--tensor-parallel-size (4 fits)" in lines[0]


def test_not_fitting_json_prints_the_plan_and_exits_2():
    res = run("plan", "llama-3.1-8b", "--gpu", "rtx-4090", "--format", "json")
    assert res.exit_code == EXIT_INVALID
    d = json.loads(res.stdout)
    assert d["fits"] is False and "--max-model-len" in d["reason"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (("plan", "no-such-model", "--gpu", "l4"), "unknown model 'no-such-model'"),
        (("plan", "llama-3.1-8b", "--gpu", "v100"), "unknown GPU 'v100'"),
        (("plan", "llama-3.1-70b", "--gpu", "h100-80gb", "--tensor-parallel-size", "3"), "does not divide"),
        (("plan", "llama-3.1-8b", "--gpu", "l4", "--max-model-len", "-5"), "--max-model-len"),
        (("plan", "llama-3.1-8b", "--gpu", "l4", "--gpus-per-node", "100000000"), "--gpus-per-node"),
        (("plan", "llama-3.1-8b", "--gpu-memory-gib", "1e300"), "--gpu-memory-gib"),
        (("plan", "llama-3.1-8b", "--gpu", "l4", "--vllm-version", "0.1." + "a" * 25 + "!"), "invalid vLLM version"),
        (("plan", "llama-3.1-8b", "--gpu", "l4", "--output-tokens", "0"), "--output-tokens"),
        (("plan", "llama-3.1-8b"), "--gpu"),
        (("plan", "./missing/config.json", "--gpu", "l4"), "no such file"),
        # the way out when the expert-parallel choice is what rules the size out
        (("plan", "qwen3-235b-a22b-fp8", "--gpu", "h100-80gb", "-tp", "8", "--no-expert-parallel"),
         "without expert parallelism: [1, 2, 4]; TP 8 works with --enable-expert-parallel"),
        # a shortfall is said as a positive number, not as a negative KV cache
        (("plan", "llama-3.1-70b", "--gpu", "h100-80gb", "--gpus-per-node", "3"),
         "weights, activation and overheads exceed the budget by 0.29 GiB"),
        (("plan", "/dev/zero", "--gpu", "l4"), "/dev/zero: not a regular file"),
        # a TP beyond the node's GPUs: the way out is a TP the node can run, not a shorter context at TP 2
        (("plan", "qwen2.5-7b", "--gpu", "l4", "--gpus-per-node", "1", "-tp", "2"),
         "TP 2 needs 2 GPUs but a l4 node has 1; way out: a --tensor-parallel-size up to 1 (1 fits)"),
        (("plan", "llama-3.1-8b", "--gpu", "h100-80gb", "-tp", "2", "--enable-expert-parallel"),
         "expert parallelism needs a mixture-of-experts model; valid sizes on one node: [1, 2, 4, 8]"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle):
    from composer_helpers import cli

    res = cli(*args)  # the console entry point: usage errors are one line there too
    assert res.exit_code == EXIT_INVALID
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_malformed_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 64,')
    res = run("plan", str(bad), "--gpu-memory-gib", "79.18")
    assert res.exit_code == EXIT_INVALID
    assert res.stderr.startswith("error: ") and "malformed JSON" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_every_command_help_has_an_example():
    for cmd in ("plan", "models", "gpus"):
        res = run(cmd, "--help")
        assert res.exit_code == 0 and "Example" in res.stdout, cmd


def test_models_and_gpus_list_the_catalogs():
    models = run("models")
    assert models.exit_code == 0 and "llama-3.1-405b-fp8" in models.stdout
    listed = json.loads(run("models", "--format", "json").stdout)
    assert {m["slug"] for m in listed} == {m.slug for m in catalog.models()}
    gpus = json.loads(run("gpus", "--format", "json").stdout)
    l4 = next(g for g in gpus if g["name"] == "l4")
    assert l4["gke_accelerator"] == "nvidia-l4" and l4["aks"] == []
    assert "h100-80gb" in run("gpus").stdout


STANDARD_CONFIGS = {
    "llama": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
              "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
              "max_position_embeddings": 2048, "torch_dtype": "bfloat16"},
    "qwen2": catalog.config_for("qwen2.5-7b"),
    "mixtral": catalog.config_for("mixtral-8x7b"),
    "gemma2": catalog.config_for("gemma-2-9b"),
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "vocab_size": 50304, "max_position_embeddings": 2048,
                 "rotary_pct": 0.25, "torch_dtype": "float16"},
}


@pytest.mark.parametrize("name", sorted(STANDARD_CONFIGS))
def test_any_standard_decoder_config_plans_as_json(tmp_path, name):
    (tmp_path / "config.json").write_text(json.dumps(STANDARD_CONFIGS[name]))
    res = run("plan", str(tmp_path / "config.json"), "--gpu-memory-gib", "79.18", "--tensor-parallel-size", "2",
              "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["fits"] is True and d["tensor_parallel_size"] == 2 and d["kv_cache_tokens"] > 0


# --------------------------------------------------------------------------- issue 13 catalog models

NEW_MODELS = {
    "gpt-oss-20b": "h100-80gb", "gpt-oss-120b": "h100-80gb", "deepseek-v3": "h200", "deepseek-r1": "b200",
    "gemma-3-27b": "h100-80gb", "llama-4-scout": "h200", "llama-4-maverick": "h200",
    "qwen3-235b-a22b-fp8": "h100-80gb", "qwen3-30b-a3b-fp8": "l40s", "qwen3-next-80b-a3b": "h100-80gb",
    "qwen2.5-vl-7b": "l4", "mistral-small-3.1-24b": "h100-80gb", "mistral-small-3.2-24b": "rtx-pro-6000",
    "phi-4": "l40s",
}


@pytest.mark.parametrize("model, gpu", sorted(NEW_MODELS.items()))
def test_plan_covers_each_new_model_with_its_layer_groups(model, gpu):
    length = min(32768, catalog.get_model(model).context_length)
    res = run("plan", model, "--gpu", gpu, "--max-model-len", str(length))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "fits" in lines[0]
    group_rows = [line for line in lines if line.startswith("  kind ")]
    assert group_rows, "no kv_layer_groups rows"
    kinds = {row.split(",")[0].split()[-1] for row in group_rows}
    expected = {k for k in catalog.get_model(model).architecture().kinds}
    assert kinds == expected
    assert any(line.startswith("  sampler_warmup:") for line in lines)


def test_plan_json_carries_layer_groups_and_profile_terms():
    res = run("plan", "gemma-3-27b", "--gpu", "h100-80gb", "--format", "json")
    d = json.loads(res.stdout)
    assert [g["kind"] for g in d["kv_layer_groups"]] == ["sliding", "full"]
    sliding = d["kv_layer_groups"][0]
    assert sliding["window"] == 1024 and sliding["groups"] == 6 and sliding["layers"] == 52
    assert d["profile_terms_gib"]["mm_encoder_outputs"] > 0
    assert d["explanations"]["kv_layer_groups"].startswith("7 groups")


def test_deepseek_r1_larger_than_an_h100_node_names_the_ways_out():
    res = run("plan", "deepseek-r1", "--gpu", "h100-80gb")
    assert res.exit_code == EXIT_INVALID
    line = res.stderr.strip()
    assert "no --tensor-parallel-size up to 8 fits on one h100-80gb node" in line
    assert "--gpu h200 fits at TP 8" in line
    assert "pipeline parallelism across 2 h100-80gb nodes" in line and "LeaderWorkerSet" in line


def test_expert_parallel_option():
    res = run("plan", "qwen3-30b-a3b", "--gpu", "l4", "-tp", "4", "--enable-expert-parallel", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["enable_expert_parallel"] is True and d["request"]["enable_expert_parallel"] is True
