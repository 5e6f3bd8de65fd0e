"""vllm-compose: plan, generate, validate and publish vLLM Kustomize overlays.

The package is an importable library; `compose.cli` is a thin typer layer over it.
"""

__version__ = "0.1.0"
