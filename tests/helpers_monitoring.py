"""Shared inputs of the monitoring tests (test_monitoring.py, test_metrics_guard.py)."""

from __future__ import annotations

# The planner figures AlertFigures.from_plan reads, for a 70B model on TP 4.
SAMPLE_PLAN = {
    "served_model_name": "meta-llama/Llama-3.1-70B-Instruct",
    "keda_queue_threshold": 16,
    "startup_budget_seconds": 900,
    "replica_throughput_rps": 2.5,
    "max_num_seqs": 256,
    "max_num_queued_reqs": 512,
    "kv_cache_tokens": 300000,
}
