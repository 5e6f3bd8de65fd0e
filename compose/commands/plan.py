"""Commands: plan, models, gpus (the capacity planner and its catalogs)."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Optional

import typer

from compose.commands import echo, edge
from compose.core.errors import EXIT_INVALID


class Fmt(str, Enum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("models")(models_cmd)
    app.command("gpus")(gpus_cmd)


@edge
def plan_cmd(
    model: str = typer.Argument(..., help="Catalog slug (see `compose models`), a config.json, or a directory holding one."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Catalog GPU (see `compose gpus`)."),
    gpu_memory_gib: Optional[float] = typer.Option(
        None, "--gpu-memory-gib", min=0.0, max=1024.0, help="Total GiB of another GPU, as CUDA reports it (up to 1024)."),
    tensor_parallel_size: Optional[int] = typer.Option(
        None, "--tensor-parallel-size", "-tp", min=1, max=64, help="1 to 64; default: the smallest that fits on one node."),
    gpu_memory_utilization: Optional[float] = typer.Option(
        None, "--gpu-memory-utilization", min=0.05, max=1.0,
        help="Fraction of each GPU vLLM may use, 0.05 to 1 (default: vLLM's, 0.92 in 0.33)."),
    max_model_len: Optional[int] = typer.Option(
        None, "--max-model-len", min=1, max=1 << 24, help="1 to 16777216; default: the model's context length."),
    max_num_batched_tokens: Optional[int] = typer.Option(
        None, "--max-num-batched-tokens", min=1, max=1 << 24, help="1 to 16777216; default: vLLM's for the GPU."),
    max_num_seqs: Optional[int] = typer.Option(
        None, "--max-num-seqs", min=1, max=1 << 16, help="1 to 65536; default: vLLM's, capped by the KV cache."),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto or fp8."),
    enable_expert_parallel: Optional[bool] = typer.Option(
        None, "--enable-expert-parallel/--no-expert-parallel",
        help="Deal MoE experts out whole over the GPUs (default: only when TP cannot split them)."),
    gpus_per_node: Optional[int] = typer.Option(
        None, "--gpus-per-node", min=1, max=64, help="1 to 64; default: from the GPU catalog."),
    prompt_tokens: Optional[int] = typer.Option(
        None, "--prompt-tokens", min=1, max=1 << 24, help="Request profile: prompt length (default 1024, at most 16777216)."),
    output_tokens: Optional[int] = typer.Option(
        None, "--output-tokens", min=1, max=1 << 24, help="Request profile: typical output tokens (default 256, at most 16777216); not a limit."),
    max_output_tokens: Optional[int] = typer.Option(
        None, "--max-output-tokens", min=1, max=1 << 24,
        help="Cap every answer at N output tokens (vLLM max_new_tokens), 1 to --max-model-len; default: not capped."),
    target_rps: Optional[float] = typer.Option(
        None, "--target-rps", min=0.0, max=100_000.0, help="Requests per second to size replicas for (up to 100000)."),
    spot_notice_seconds: Optional[int] = typer.Option(
        None, "--spot-notice-seconds", min=1, max=3600,
        help="The preemption notice, for the drain explanation (up to 3600)."),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Where the weights are read from at start-up: efs, filestore-basic-hdd, "
        "filestore-basic-ssd, azure-files-standard, azure-files-premium, local-path, local-nvme (default)."),
    concurrent_loads: Optional[int] = typer.Option(
        None, "--concurrent-loads", min=1, max=1000, help="Replicas loading from that storage at once, 1 to 1000 (default 1)."),
    vllm_version: Optional[str] = typer.Option(
        None, "--vllm-version", help="vLLM version to model, X.Y.Z (default 0.33.0; at most 64 characters)."),
    hf_repo: Optional[str] = typer.Option(None, "--hf-repo", help="Hugging Face repository ORG/NAME to record in the plan."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Hub revision (commit SHA) to record in the plan."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json."),
) -> None:
    """Size a vLLM deployment: TP, KV cache, batch limits, budgets, resources.

    \b
    Examples:
      compose plan llama-3.1-70b --gpu h100-80gb
      compose plan ./my-model/config.json --gpu-memory-gib 79.18 --tensor-parallel-size 2 --format json
      compose plan llama-3.1-8b --gpu l4 --max-model-len 8192 --target-rps 5

    Exit code 2 when the model does not fit (the JSON is still printed, with fits=false;
    the reason is the one error line on stderr).
    """
    from compose.plan import planner

    given = dict(
        model=model, gpu=gpu, gpu_memory_gib=gpu_memory_gib, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
        max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs, kv_cache_dtype=kv_cache_dtype,
        enable_expert_parallel=enable_expert_parallel,
        gpus_per_node=gpus_per_node, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
        max_output_tokens=max_output_tokens,
        target_rps=target_rps, spot_notice_seconds=spot_notice_seconds, vllm_version=vllm_version,
        hf_repo=hf_repo, revision=revision, storage=storage, concurrent_loads=concurrent_loads,
    )
    req = planner.PlanRequest(**{k: v for k, v in given.items() if v is not None})
    if fmt is Fmt.json:
        result = planner.plan(req)
        echo(json.dumps(result.to_dict(), indent=2))
        if not result.fits:  # the JSON stays on stdout for automation; the reason is the one error line
            typer.echo(f"error: {result.reason}", err=True)
            raise typer.Exit(EXIT_INVALID)
        return
    echo(format_plan(planner.plan_or_raise(req)))


def format_plan(result) -> str:
    """The plan as a table: figure, value, and how it was derived; the KV layer
    groups and the profile terms follow as indented rows under their figure."""
    skip = {"request", "explanations"}
    rows = [(f.name, _cell(getattr(result, f.name))) for f in dataclasses.fields(result) if f.name not in skip]
    width = max(len(k) for k, _ in rows)
    value_width = min(45, max(len(v) for _, v in rows))
    head = (f"{result.model} on {result.gpu}: vLLM {result.vllm_version} ({result.engine}), "
            f"TP {result.tensor_parallel_size}, {'fits' if result.fits else 'does not fit'}")
    lines = [head, "", f"{'figure'.ljust(width)}  {'value'.ljust(value_width)}  how it was derived"]
    for key, value in rows:
        lines.append(f"{key.ljust(width)}  {value.ljust(value_width)}  {result.explanations.get(key, '')}")
        for sub in _sub_rows(key, getattr(result, key)):
            lines.append(f"  {sub}")
    return "\n".join(lines)


def _sub_rows(key: str, value) -> list[str]:
    """One line per KV layer group kind, or per non-zero profile term."""
    if key == "kv_layer_groups":
        return [", ".join(f"{k} {v}" for k, v in group.items()) for group in value]
    if key == "profile_terms_gib":
        return [f"{name}: {gib} GiB" for name, gib in value.items() if gib]
    return []


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return f"{len(value)} kind(s), below"
    if isinstance(value, dict):
        return f"{sum(1 for v in value.values() if v)} term(s), below"
    return str(value)


@edge
def models_cmd(fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json.")) -> None:
    """List the model catalog: slug, repository, size, context, quantization.

    \b
    Example:
      compose models
      compose models --format json
    """
    from compose.plan import catalog, planner

    rows = []
    for entry in catalog.models():
        arch = entry.architecture()
        rows.append({
            "slug": entry.slug, "hf_repo": entry.hf_repo, "revision": entry.revision,
            "revision_pinned": entry.revision_pinned, "gated": entry.gated,
            "context_length": arch.context_length, "params_b": round(planner.param_count(arch) / 1e9, 2),
            "weights_gib": round(planner.weight_tally(arch, 1, runtime=False).bytes / planner.GIB, 2),
            "quantization": arch.quantization.method if arch.quantization else None,
            "moe": arch.is_moe,
        })
    columns = ("slug", "hf_repo", "params_b", "weights_gib", "context_length", "quantization", "gated")
    _echo_rows(fmt, rows, columns)


@edge
def gpus_cmd(fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json.")) -> None:
    """List the GPU catalog: memory as CUDA reports it, bandwidth, cloud offerings.

    \b
    Example:
      compose gpus
      compose gpus --format json
    """
    from compose.plan import catalog

    rows = []
    for gpu in catalog.gpus():
        offered = gpu.clouds()
        rows.append({
            "name": gpu.name, "aliases": list(gpu.aliases), "memory_gib": gpu.memory_gib,
            "bandwidth_gbps": gpu.bandwidth_gbps, "bf16_tflops": gpu.tflops.get("bf16"),
            "fp8_tflops": gpu.tflops.get("fp8"), "gpus_per_node": gpu.gpus_per_node,
            "gke_accelerator": gpu.gke_accelerator, "karpenter_gpu_name": gpu.karpenter_gpu_name,
            "gke": offered["gke"], "eks": offered["eks"], "aks": offered["aks"],
        })
    flat = [{**r, "gke": r["gke_accelerator"] or "-", "eks": r["karpenter_gpu_name"] or "-",
             "aks": ", ".join(r["aks"]) or "-"} for r in rows]
    columns = ("name", "memory_gib", "bandwidth_gbps", "bf16_tflops", "fp8_tflops", "gpus_per_node", "gke", "eks", "aks")
    _echo_rows(fmt, rows, columns, table_rows=flat)


def _echo_rows(fmt: Fmt, rows: list[dict], columns: tuple[str, ...], table_rows: list[dict] | None = None) -> None:
    """`rows` as JSON, or `columns` of `table_rows` (default: `rows`) as a table."""
    if fmt is Fmt.json:
        echo(json.dumps(rows, indent=2))
    else:
        echo(_table(columns, rows if table_rows is None else table_rows))


def _table(columns: tuple[str, ...], rows: list[dict]) -> str:
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
