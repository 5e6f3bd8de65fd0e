"""Stage 1, plan: the capacity planner and the facts it reads (model and GPU
catalogs, per-cloud facts, vLLM metric names). Pure: no files are written."""
