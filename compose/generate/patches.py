"""The overlay's patches: one concern per file, every number from the plan.

Each `patch_*` function turns a plan (`Plan.to_dict()`) into the strategic-merge
patch of one concern; `PATCH_WHY` is the comment each file opens with.
"""

from __future__ import annotations

from compose.core import yamlio
from compose.generate.alerts import KEDA_FAILURE_THRESHOLD
from compose.generate.options import (
    API_KEY_SECRET_KEY,
    FALLBACK_BEHAVIOR,
    SINGLE_REPLICA_REASON,
    VLLM_IMAGE,
    Options,
    header,
    replica_bounds,
)
from compose.plan import clouds as clouds_mod

# Probe timeouts: at least 5 s, so a saturated server is not taken for dead
# (scaleapi/llm-engine#255, llm-d/llm-d-benchmark#1734).
PROBE_TIMEOUT_SECONDS = 5


def _gi(value: float | int) -> str:
    return f"{int(value)}Gi"


def output_cap(plan: dict) -> int:
    """The answer cap the user asked for (`--max-output-tokens`), or 0: not capped.

    Set, vLLM enforces it server-wide with `--override-generation-config '{"max_new_tokens": N}'`
    (vLLM 0.33.0: config/model.py documents `max_new_tokens` as "a server-wide limit on the
    number of output tokens for all requests"; with `--generation-config auto` (the default)
    entrypoints/openai/*/serving.py read it as `override_max_tokens`, and
    entrypoints/serve/utils/api_utils.py `get_max_tokens()` answers min(max-model-len - prompt,
    the request's max_tokens or this default, override_max_tokens)), so an answer stops with
    finish_reason "length" at N tokens and the route timeout is sized for N.
    Unset (the default), answers run to max-model-len - prompt and the route timeout is sized
    for max-model-len - 1 tokens (compose.generate.routing.route_timeout). `--output-tokens`
    is the typical request profile (capacity planning, the drain), never a cap.
    """
    return int((plan.get("request") or {}).get("max_output_tokens") or 0)


def output_cap_arg(cap: int) -> str:
    return f'--override-generation-config={{"max_new_tokens":{int(cap)}}}'


def patch_model_args(plan: dict) -> dict:
    """vLLM's command line and the init container's download target."""
    args = [
        plan["model_dir"],
        f"--served-model-name={plan['served_model_name']}",
        "--host=0.0.0.0",
        "--port=8000",
        f"--tensor-parallel-size={plan['tensor_parallel_size']}",
        f"--max-model-len={plan['max_model_len']}",
        f"--dtype={plan['dtype']}",
        f"--gpu-memory-utilization={plan['gpu_memory_utilization']}",
        f"--max-num-seqs={plan['max_num_seqs']}",
        f"--max-num-batched-tokens={plan['max_num_batched_tokens']}",
        f"--max-num-queued-reqs={plan['max_num_queued_reqs']}",
        f"--shutdown-timeout={plan['shutdown_timeout_seconds']}",
        "--disable-access-log-for-endpoints=/health,/metrics",
    ]
    if plan.get("kv_cache_dtype", "auto") != "auto":
        args.insert(-3, f"--kv-cache-dtype={plan['kv_cache_dtype']}")
    if plan.get("enable_expert_parallel"):  # the planner chose to deal MoE experts out over the GPUs
        args.insert(5, "--enable-expert-parallel")
    if output_cap(plan) > 0:  # --max-output-tokens: the answer cap the route timeout is sized for
        args.insert(args.index(f"--shutdown-timeout={plan['shutdown_timeout_seconds']}"), output_cap_arg(output_cap(plan)))
    env = [
        {"name": "HF_MODEL_ID", "value": plan["hf_repo"]},
        {"name": "HF_REVISION", "value": plan.get("revision") or "main"},
        {"name": "MODEL_DIR", "value": plan["model_dir"]},
    ]
    return _deployment(
        {
            "initContainers": [{"name": "download-weights", "env": env}],
            "containers": [{"name": "vllm", "args": args}],
        }
    )


def patch_resources(plan: dict) -> dict:
    """GPU, memory and CPU for the server; the /dev/shm size counts against memory."""
    from compose.plan import catalog

    gpus = str(plan["gpus_per_replica"])
    memory = _gi(plan["memory_request_gib"])
    resource = catalog.get_gpu(plan["gpu"]).resource
    resources = {
        "requests": {"cpu": str(plan["cpu_request"]), "memory": memory, resource: gpus},
        "limits": {"memory": memory, resource: gpus},
    }
    return _deployment(
        {
            "containers": [{"name": "vllm", "resources": resources}],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _gi(plan["shm_size_gib"])}}],
        }
    )


def patch_probes_drain(plan: dict) -> dict:
    """Start-up budget, preStop and grace period; the progress deadline covers a slow load."""
    doc = _deployment(
        {
            "terminationGracePeriodSeconds": plan["termination_grace_period_seconds"],
            "initContainers": [
                {
                    "name": "download-weights",
                    "env": [{"name": "LOCK_TIMEOUT_SECONDS", "value": str(plan["progress_deadline_seconds"])}],
                }
            ],
            "containers": [
                {
                    "name": "vllm",
                    "startupProbe": {
                        "httpGet": {"path": "/health", "port": "http"},
                        "periodSeconds": plan["startup_probe_period_seconds"],
                        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                        "failureThreshold": plan["startup_probe_failure_threshold"],
                    },
                    "lifecycle": {"preStop": {"sleep": {"seconds": plan["prestop_seconds"]}}},
                }
            ],
        }
    )
    doc["metadata"]["annotations"] = {
        "vllm-compose.io/load-seconds-estimate": str(plan["load_seconds_estimate"]),
    }
    doc["spec"]["progressDeadlineSeconds"] = plan["progress_deadline_seconds"]
    return doc


def patch_scaling(plan: dict, opts: Options, namespace: str, instance: str | None = None) -> list[dict]:
    """KEDA bounds, threshold and query; the PDB follows the minimum.

    `instance` scopes the queue to this overlay's pods while a canary serves the same
    model in the same namespace (compose.generate.routing.scope_instance)."""
    from compose.plan import metrics

    lo, hi, fallback = replica_bounds(opts, plan)
    meta: dict = {"name": "vllm"}
    if opts.single_replica_reason is not None:
        meta["annotations"] = {SINGLE_REPLICA_REASON: opts.single_replica_reason}
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "minReplicaCount": lo,
            "maxReplicaCount": hi,
            "fallback": {"failureThreshold": KEDA_FAILURE_THRESHOLD, "replicas": fallback,
                         "behavior": FALLBACK_BEHAVIOR},
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": plan["scale_down_stabilization_seconds"]}
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": opts.prometheus_url,
                        "query": metrics.queue_depth_query(plan["served_model_name"], namespace, instance),
                        "threshold": str(plan["keda_queue_threshold"]),
                        "activationThreshold": str(plan["keda_activation_threshold"]),
                        "ignoreNullValues": "false",
                    },
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "vllm"},
        "spec": {"minAvailable": lo - 1},
    }
    return [scaled, pdb]


def patch_storage(plan: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "vllm-models"},
        "spec": {"resources": {"requests": {"storage": _gi(plan["pvc_size_gib"])}}},
    }


def patch_placement(plan: dict, opts: Options) -> dict | None:
    """Pin the GPU model (and spot capacity) with the cloud's node labels, and keep
    the minimum replicas on distinct nodes (minDomains on the base's hostname spread)."""
    from compose.plan import catalog

    cloud = clouds_mod.get(opts.cloud)
    selector: dict[str, str] = {}
    if cloud.gpu_label:
        selector.update(catalog.get_gpu(plan["gpu"]).node_selector(
            cloud.name, int(plan["gpus_per_replica"]), int(plan["cpu_request"])))
    if opts.spot and cloud.spot_label:
        selector[cloud.spot_label[0]] = cloud.spot_label[1]
    pod: dict = {}
    if selector:
        pod["nodeSelector"] = selector
    lo, _hi, _ = replica_bounds(opts, plan)
    if lo >= 2 and not cloud.single_node:
        # Fewer eligible nodes than minDomains count as a global minimum of 0, so
        # each of the first `lo` replicas needs its own node (KEP-3022).
        pod["topologySpreadConstraints"] = [
            {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "minDomains": lo}
        ]
    if not pod:
        return None
    return _deployment(pod)


def patch_image(plan: dict, digest: str, image: str | None = None) -> dict:
    """Pin both vLLM containers to `digest`; the tag stays for readers (and for the
    vllm-flags check, which reads the version from it). The image is `--image` when
    given (compose canary, another release), else the planner's vLLM release."""
    ref = (image or f"{VLLM_IMAGE}:v{plan['vllm_version']}").partition("@")[0]
    image = f"{ref}@{digest}"
    return _deployment(
        {
            "initContainers": [{"name": "download-weights", "image": image}],
            "containers": [{"name": "vllm", "image": image}],
        }
    )


def patch_api_key(secret: str) -> dict:
    """VLLM_API_KEY from the Secret's `api-key`. vLLM 0.33.0 then requires
    `Authorization: Bearer <key>` on /v1, /v2, /inference and /cohere only
    (vllm/entrypoints/serve/middleware/authenticate.py:11 GUARDED_PREFIX, :59), so the
    probes (/health) and Prometheus (/metrics) keep working without it; --api-key
    would take precedence over the variable (middleware/register.py:32-36), and is
    never set here."""
    env = [{"name": "VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": API_KEY_SECRET_KEY, "optional": False}}}]
    return _deployment({"containers": [{"name": "vllm", "env": env}]})


def patch_network_policy(namespaces: list[str]) -> dict:
    """The namespaces components/network-policy admits on port 8000."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vllm"},
        "spec": {
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}
                                ]
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8000}],
                }
            ]
        },
    }


def _deployment(pod_spec: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm"},
        "spec": {"template": {"spec": pod_spec}},
    }


# (file name, why) for every patch; the why opens the file.
PATCH_WHY = {
    "patch-model-args.yaml": "Which model vLLM serves and how: weights path, served name, parallelism,\n"
    "# context, batch and queue limits, drain timeout (all from the plan).",
    "patch-resources.yaml": "GPU, memory and CPU sized by the planner; requests equal limits so the\n"
    "# pod is never the first to be OOM-killed, and /dev/shm counts against memory.",
    "patch-probes-drain.yaml": "Start-up budget from the model's load time, and the drain: preStop +\n"
    "# --shutdown-timeout + margin <= terminationGracePeriodSeconds.",
    "patch-scaling.yaml": "KEDA bounds, queue threshold and query for this model and namespace;\n"
    "# fallback holds max(current, MIN) while the query fails (first deploy, Prometheus\n"
    "# outage); the PodDisruptionBudget keeps MIN-1 replicas through a drain.",
    "patch-storage.yaml": "Model cache sized from the checkpoint (weights on disk plus headroom).",
    "patch-placement.yaml": "Pin the GPU model (and spot capacity) with the cloud's node labels; with two\n"
    "# or more minimum replicas, minDomains keeps each of them on its own node.",
    "patch-alerts.yaml": "Alert thresholds from this overlay's plan.",
    "patch-image.yaml": "Pin the vLLM image by digest on both containers (--image-digest); a tag can move,\n"
    "# a digest cannot.",
    "patch-api-key.yaml": "vLLM requires `Authorization: Bearer <key>` on /v1, /v2, /inference and /cohere;\n"
    "# the key comes from a Secret (--api-key-secret), never from Git. /health and\n"
    "# /metrics stay open for the probes and Prometheus: vLLM 0.33.0\n"
    "# vllm/entrypoints/serve/middleware/authenticate.py:11 (GUARDED_PREFIX) and :59.",
    "patch-network-policy.yaml": "The namespaces that may reach port 8000 (--allow-from): the gateway and\n"
    "# Prometheus by default; components/network-policy allows nothing else in, and only\n"
    "# DNS and HTTPS out.",
}


def _patch_text(fname: str, overlay: str, docs: dict | list[dict], why: str | None = None) -> str:
    body = yamlio.dump_all(docs if isinstance(docs, list) else [docs], sort_keys=True)
    return header(fname, overlay) + f"#\n# Why: {why or PATCH_WHY[fname]}\n" + body

