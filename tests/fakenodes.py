"""Fake GPU nodes shaped like real cloud nodes, for the test control plane.

A `NodeShape` is what one kind of node looks like to the scheduler: labels,
taints, capacity/allocatable (cpu, memory, pods, ephemeral-storage and
`nvidia.com/gpu` or `amd.com/gpu`) and a zone. `create_nodes` turns shapes into
Node objects (status included: Ready, nodeInfo kubelet v1.32.13, addresses) and
registers them with a `Heartbeat` that renews a Lease per node in
`kube-node-lease` and the Ready condition's lastHeartbeatTime, as a kubelet
does, so the node-lifecycle controller keeps them Ready and untainted.
`node_set(cp, shapes)` makes exactly these fake nodes exist for one test.

Sources for the shapes (each builder cites the page it follows):

- EKS + Karpenter labels and allocatable: https://karpenter.sh/docs/reference/instance-types/
  (the "Resources" tables are allocatable after overhead, AL2023, default block
  device mappings) and https://karpenter.sh/docs/concepts/scheduling/ (well-known
  labels, `karpenter.sh/capacity-type`; the GPU NodePool example taints
  `nvidia.com/gpu=true:NoSchedule`; Karpenter puts no taint on spot nodes).
- GKE: https://cloud.google.com/kubernetes-engine/docs/how-to/gpus
  (`cloud.google.com/gke-accelerator`, GPU nodes tainted `nvidia.com/gpu=present:NoSchedule`),
  https://cloud.google.com/kubernetes-engine/docs/how-to/spot-vms (Standard spot
  nodes are labelled `cloud.google.com/gke-spot=true` and
  `cloud.google.com/gke-provisioning=spot`, not tainted unless you add one),
  https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes
  (CPU/memory reservations), https://cloud.google.com/compute/docs/gpus and
  https://cloud.google.com/compute/docs/accelerator-optimized-machines (vCPU/RAM).
- AKS: https://learn.microsoft.com/azure/aks/gpu-cluster (`sku=gpu:NoSchedule`,
  `kubernetes.azure.com/accelerator=nvidia`), https://learn.microsoft.com/azure/aks/spot-node-pool
  (`kubernetes.azure.com/scalesetpriority=spot` label and NoSchedule taint),
  https://learn.microsoft.com/azure/aks/use-labels (agentpool, mode, os-sku labels),
  https://learn.microsoft.com/azure/aks/node-resource-reservations (reservations),
  https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/ (vCPU/RAM).
- k3s: https://docs.k3s.io (a server node is labelled `node.kubernetes.io/instance-type=k3s`
  and `node-role.kubernetes.io/control-plane=true`); NVIDIA GPU feature discovery /
  GPU operator labels (`nvidia.com/gpu.present=true`, `nvidia.com/gpu.product`, ...):
  https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery

Everything is data: a test can derive a variant with `shape.replace(...)`,
`shape.with_taints(...)`, `shape.with_labels(...)` or `in_zone(shape, i)`.

Shapes exist for every catalog GPU on every managed cloud, on-demand and spot
(tests/test_placement.py checks the coverage), plus EKS capacity reservations
(interruptible or not, Karpenter's capacity-reservation-* labels:
https://karpenter.sh/docs/tasks/odcrs/) and a k3s box with one L4 and no GPU
labels at all. Creating and deleting nodes runs a few API calls in parallel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Iterator, Mapping, Sequence

from controlplane import KUBE_VERSION, NODE_MONITOR_GRACE_SECONDS, ApiError, ControlPlane

FAKE_LABEL = "vllm-compose.test/fake-node"  # "true" on every node this module makes
SHAPE_LABEL = "vllm-compose.test/shape"  # the shape's name
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40  # what a kubelet writes
# A kubelet renews every 10 s against a 40 s grace period; the test control
# plane shortens the grace period (NODE_MONITOR_GRACE_SECONDS), so beat at a
# quarter of it to stay well clear on a busy 2-core machine.
HEARTBEAT_SECONDS = min(10.0, NODE_MONITOR_GRACE_SECONDS / 4)

GiB = 1024  # MiB

# --------------------------------------------------------------------------- the shape


@dataclass(frozen=True)
class NodeShape:
    """One kind of node. `labels` excludes kubernetes.io/hostname (set per node)
    and the zone labels (set from `zone`)."""

    name: str  # unique id, e.g. "eks-p5.48xlarge-spot"
    cloud: str  # eks | gke | aks | k3s
    instance_type: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]
    capacity: Mapping[str, str]
    allocatable: Mapping[str, str]
    zone: str | None
    region: str | None = None
    gpu_resource: str | None = None  # nvidia.com/gpu | amd.com/gpu
    gpus: int = 0
    spot: bool = False
    arch: str = "amd64"  # kubernetes.io/arch: arm64 for NVIDIA Grace nodes (GKE A4X, GB200)
    os_image: str = "Ubuntu 22.04.5 LTS"
    kernel: str = "6.8.0-1021"
    sources: tuple[str, ...] = ()

    def replace(self, **changes) -> "NodeShape":
        return dataclasses.replace(self, **changes)

    def with_labels(self, labels: Mapping[str, str], name: str | None = None) -> "NodeShape":
        """A variant with these labels added (or changed)."""
        return self.replace(name=name or self.name, labels={**self.labels, **labels})

    def with_taints(self, *taints: Mapping[str, str], name: str | None = None) -> "NodeShape":
        """A variant whose taints are exactly `taints`."""
        return self.replace(name=name or self.name, taints=tuple(dict(t) for t in taints))

    def node_labels(self, node_name: str, zone: str | None = None) -> dict[str, str]:
        zone = zone or self.zone
        labels = {
            "kubernetes.io/arch": self.arch,
            "kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": self.arch,
            "beta.kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": self.instance_type,
            "beta.kubernetes.io/instance-type": self.instance_type,
            **self.labels,
            "kubernetes.io/hostname": node_name,
            FAKE_LABEL: "true",
            SHAPE_LABEL: self.name[:63],
        }
        if zone:
            labels["topology.kubernetes.io/zone"] = zone
        if self.region:
            labels["topology.kubernetes.io/region"] = self.region
        return labels

    def manifest(self, node_name: str, zone: str | None = None, ip: str = "192.0.2.10") -> dict:
        """The Node object, status included (the API server keeps status given at create)."""
        now = _now()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name, "labels": self.node_labels(node_name, zone),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"taints": [dict(t) for t in self.taints]} if self.taints else {},
            "status": {
                "capacity": dict(self.capacity),
                "allocatable": dict(self.allocatable),
                "conditions": _conditions(now),
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "kubeletVersion": KUBE_VERSION,
                    "kubeProxyVersion": KUBE_VERSION,
                    "containerRuntimeVersion": "containerd://1.7.27",
                    "operatingSystem": "linux",
                    "architecture": self.arch,
                    "osImage": self.os_image,
                    "kernelVersion": self.kernel,
                    "machineID": f"fake-{node_name}"[:63],
                    "systemUUID": f"fake-{node_name}"[:63],
                    "bootID": f"fake-{node_name}"[:63],
                },
            },
        }


def taint(key: str, value: str | None = None, effect: str = "NoSchedule") -> dict[str, str]:
    t = {"key": key, "effect": effect}
    if value is not None:
        t["value"] = value
    return t


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _conditions(now: str) -> list[dict]:
    def c(type_: str, status: str, reason: str, message: str) -> dict:
        return {"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}

    return [
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def _mi(mib: float) -> str:
    return f"{int(mib)}Mi"


def _milli(cores: float) -> str:
    return f"{int(round(cores * 1000))}m"


# --------------------------------------------------------------------------- EKS + Karpenter

# instance type -> (vCPU, memory MiB, gpu name, gpu count, gpu memory MiB, cpu manufacturer,
#                   allocatable cpu, allocatable memory, max pods)
# vCPU/memory and the allocatable columns are Karpenter's instance-types table
# (https://karpenter.sh/docs/reference/instance-types/, AL2023): it subtracts
# kube-reserved, system-reserved, the eviction threshold and the VM overhead
# (vmMemoryOverheadPercent 7.5 %). Instance pages: https://aws.amazon.com/ec2/instance-types/p5/,
# .../g6e/, .../g6/, .../m7i/.
EKS_INSTANCES: dict[str, tuple] = {
    "p5.48xlarge": (192, 2097152, "h100", 8, 81920, "amd", "191450m", "1938410Mi", 100),
    "g6e.xlarge": (4, 32768, "l40s", 1, 45776, "amd", "3920m", "29317Mi", 58),
    "g6e.12xlarge": (48, 393216, "l40s", 4, 45776, "amd", "47810m", "360157Mi", 292),
    "g6e.48xlarge": (192, 1572864, "l40s", 8, 45776, "amd", "191450m", "1449132Mi", 492),
    "g6.xlarge": (4, 16384, "l4", 1, 22888, "amd", "3920m", "14162Mi", 58),
    "g6.12xlarge": (48, 196608, "l4", 4, 22888, "amd", "47810m", "178933Mi", 234),
    "m7i.2xlarge": (8, 32768, None, 0, 0, "intel", "7910m", "29317Mi", 58),
    # The 8-vCPU one-GPU sizes Karpenter picks for a pod that requests 4 CPUs (an
    # xlarge's 3920m allocatable is too little), and the other catalog GPUs' instances
    # (aws/karpenter-provider-aws website/content/en/docs/reference/instance-types.md
    # @1d927085; https://aws.amazon.com/ec2/instance-types/p5/, .../p4/, .../g5/, .../g4/).
    "g6.2xlarge": (8, 32768, "l4", 1, 22888, "amd", "7910m", "29317Mi", 58),
    "g6e.2xlarge": (8, 65536, "l40s", 1, 45776, "amd", "7910m", "59627Mi", 58),
    "g5.2xlarge": (8, 32768, "a10g", 1, 22888, "amd", "7910m", "29317Mi", 58),
    "g4dn.2xlarge": (8, 32768, "t4", 1, 16384, "intel", "7910m", "29636Mi", 29),
    "p5e.48xlarge": (192, 2097152, "h200", 8, 144384, "amd", "191450m", "1938410Mi", 100),
    "p4d.24xlarge": (96, 1179648, "a100", 8, 40960, "intel", "95690m", "1082712Mi", 737),
    "p4de.24xlarge": (96, 1179648, "a100", 8, 81920, "intel", "95690m", "1082712Mi", 737),
    # The Blackwell GPUs of the catalog (issue 13), from the same table
    # (aws/karpenter-provider-aws@1d927085dd81 website/content/en/preview/reference/
    # instance-types.md, "p6-b200.48xlarge" and "g7e.2xlarge": labels and Resources);
    # https://aws.amazon.com/ec2/instance-types/p6/ and .../g7e/. g7e.2xlarge is the
    # smallest one-GPU size with more than the pod's 4 CPUs allocatable.
    "p6-b200.48xlarge": (192, 2097152, "b200", 8, 183359, "intel", "191450m", "1937332Mi", 198),
    "g7e.2xlarge": (8, 65536, "rtx-pro-server-6000", 1, 98304, "intel", "7910m", "57471Mi", 254),
}
EKS_REGION, EKS_ZONES = "us-east-1", ("us-east-1a", "us-east-1b", "us-east-1c")


def eks(instance_type: str, capacity_type: str = "on-demand", *, nodepool: str | None = None,
        zone: str = EKS_ZONES[0], interruptible: bool = False) -> NodeShape:
    """A node Karpenter launched on EKS. GPU NodePools follow Karpenter's example
    and taint `nvidia.com/gpu=true:NoSchedule`; spot nodes get no extra taint.
    `capacity_type="reserved"` is an on-demand capacity reservation; with
    `interruptible` one the EC2 owner can reclaim with a 2-minute warning
    (Karpenter v1.10+, website/content/en/docs/tasks/odcrs.md: the
    capacity-reservation-* labels are "only present on reserved nodes")."""
    vcpu, mem, gpu, gpus, gpu_mem, cpu_vendor, a_cpu, a_mem, pods = EKS_INSTANCES[instance_type]
    family, size = instance_type.split(".")
    # instance-generation is the number after the category letter: p6-b200 -> 6, g4dn -> 4.
    generation = re.match(r"[a-z]+(\d+)", family).group(1)
    labels = {
        "karpenter.sh/capacity-type": capacity_type,
        "karpenter.sh/nodepool": nodepool or ("gpu" if gpus else "default"),
        "karpenter.sh/initialized": "true",
        "karpenter.sh/registered": "true",
        "karpenter.k8s.aws/ec2nodeclass": "default",
        "karpenter.k8s.aws/instance-category": family[0],
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-generation": generation,
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-cpu": str(vcpu),
        "karpenter.k8s.aws/instance-cpu-manufacturer": cpu_vendor,
        "karpenter.k8s.aws/instance-memory": str(mem),
        "karpenter.k8s.aws/instance-hypervisor": "nitro",
        "topology.k8s.aws/zone-id": f"use1-az{EKS_ZONES.index(zone) + 1 if zone in EKS_ZONES else 1}",
    }
    capacity = {"cpu": str(vcpu), "memory": _mi(mem), "pods": str(pods), "ephemeral-storage": "20Gi"}
    allocatable = {"cpu": a_cpu, "memory": a_mem, "pods": str(pods),
                   # 20 GiB root volume (Karpenter's AL2023 default) less the eviction threshold.
                   "ephemeral-storage": "17Gi"}
    if capacity_type == "reserved":
        labels.update({
            "karpenter.k8s.aws/capacity-reservation-id": f"cr-0{'1' if interruptible else '2'}23456789abcdef0",
            "karpenter.k8s.aws/capacity-reservation-type": "default",
            "karpenter.k8s.aws/capacity-reservation-interruptible": "true" if interruptible else "false",
        })
    taints: tuple = ()
    if gpus:
        labels.update({
            "karpenter.k8s.aws/instance-gpu-name": gpu,
            "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
            "karpenter.k8s.aws/instance-gpu-count": str(gpus),
            "karpenter.k8s.aws/instance-gpu-memory": str(gpu_mem),
        })
        capacity["nvidia.com/gpu"] = allocatable["nvidia.com/gpu"] = str(gpus)
        taints = (taint("nvidia.com/gpu", "true"),)
    suffix = ("" if capacity_type == "on-demand" else f"-{capacity_type}") + ("-interruptible" if interruptible else "")
    return NodeShape(
        name=f"eks-{instance_type}{suffix}", cloud="eks", instance_type=instance_type, labels=labels,
        taints=taints, capacity=capacity, allocatable=allocatable, zone=zone, region=EKS_REGION,
        gpu_resource="nvidia.com/gpu" if gpus else None, gpus=gpus, spot=capacity_type == "spot" or interruptible,
        os_image="Amazon Linux 2023.7.20250512", kernel="6.1.134-152.225.amzn2023.x86_64",
        sources=("https://karpenter.sh/docs/reference/instance-types/",
                 "https://karpenter.sh/docs/concepts/scheduling/"),
    )


# --------------------------------------------------------------------------- GKE

# machine type -> (vCPU, memory GiB, accelerator label, gpu count, machine family)
# https://cloud.google.com/compute/docs/accelerator-optimized-machines (a3-highgpu-8g:
# 208 vCPU, 1,872 GB; a2-ultragpu-1g: 12 vCPU, 170 GB; g2-standard-8: 8 vCPU, 32 GB;
# g2-standard-24: 24 vCPU, 96 GB) and https://cloud.google.com/compute/docs/general-purpose-machines (n2).
GKE_MACHINES: dict[str, tuple] = {
    "a3-highgpu-8g": (208, 1872, "nvidia-h100-80gb", 8, "a3"),
    "a2-ultragpu-1g": (12, 170, "nvidia-a100-80gb", 1, "a2"),
    "g2-standard-8": (8, 32, "nvidia-l4", 1, "g2"),
    "g2-standard-24": (24, 96, "nvidia-l4", 2, "g2"),
    "n2-standard-8": (8, 32, None, 0, "n2"),
    # a3-ultragpu-8g: 224 vCPU, 2,952 GB, 8 H200; a2-highgpu-1g: 12 vCPU, 85 GB, 1 A100 40GB
    # (accelerator-optimized-machines); n1-standard-8 (8 vCPU, 30 GB) with one T4 attached
    # (https://cloud.google.com/compute/docs/gpus#t4-gpus, general-purpose-machines#n1).
    "a3-ultragpu-8g": (224, 2952, "nvidia-h200-141gb", 8, "a3"),
    "a2-highgpu-1g": (12, 85, "nvidia-tesla-a100", 1, "a2"),
    "n1-standard-8": (8, 30, "nvidia-tesla-t4", 1, "n1"),
    # The Blackwell machine types of the catalog (issue 13; accelerator values and GPU
    # counts from GoogleCloudPlatform/cluster-toolkit@1047080375af pkg/config/
    # machine_mappings.json). vCPU and memory: a4-highgpu-8g 224 vCPU, 3,968 GB;
    # a4x-highgpu-4g 140 vCPU, 884 GB; g4-standard-48 48 vCPU, 180 GB, as Google's
    # accelerator-optimized-machines page lists them. Those tables could not be
    # retrieved here, so the figures are recalled, not re-read; the placement tests
    # only need more than the pod's 4 CPUs and its memory, which every one of them
    # clears by a wide margin, so an error of a few percent changes no verdict.
    "a4-highgpu-8g": (224, 3968, "nvidia-b200", 8, "a4"),
    "a4x-highgpu-4g": (140, 884, "nvidia-gb200", 4, "a4x"),
    "g4-standard-48": (48, 180, "nvidia-rtx-pro-6000", 1, "g4"),
}
# Machine families whose VMs have Arm CPUs: A4X is GB200 on NVIDIA Grace (cluster-toolkit
# examples/machine-learning/a4x-highgpu-4g boots ubuntu-accelerator-2404-arm64 images).
# GKE labels such nodes kubernetes.io/arch=arm64 and, by default, taints every Arm node
# kubernetes.io/arch=arm64:NoSchedule ("Prepare an Arm workload for deployment",
# https://cloud.google.com/kubernetes-engine/docs/how-to/prepare-arm-workloads-for-deployment;
# the node pool's ArchitectureTaintBehavior defaults to ARM). Google's own A4X pods
# tolerate it explicitly (cluster-toolkit examples/gke-a4x/nccl-jobset-example.yaml).
GKE_ARM_FAMILIES = frozenset({"a4x"})
GKE_REGION, GKE_ZONES = "us-central1", ("us-central1-a", "us-central1-b", "us-central1-c")


def gke_allocatable(vcpu: int, mem_gib: float) -> tuple[str, str]:
    """GKE's reservations (plan-node-sizes): CPU 6 % of the first core, 1 % of the
    next, 0.5 % of the next 2, 0.25 % above 4; memory 25 % of the first 4 GiB,
    20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 % above 128,
    plus the 100 MiB eviction threshold."""
    cpu_res = 0.06 * min(vcpu, 1) + 0.01 * min(max(vcpu - 1, 0), 1) + 0.005 * min(max(vcpu - 2, 0), 2) + 0.0025 * max(vcpu - 4, 0)
    m = mem_gib
    mem_res = 0.25 * min(m, 4) + 0.20 * min(max(m - 4, 0), 4) + 0.10 * min(max(m - 8, 0), 8) + 0.06 * min(max(m - 16, 0), 112) + 0.02 * max(m - 128, 0)
    return _milli(vcpu - cpu_res), _mi(mem_gib * GiB - mem_res * GiB - 100)


def gke(machine_type: str, spot: bool = False, *, nodepool: str | None = None, zone: str = GKE_ZONES[0]) -> NodeShape:
    """A GKE Standard node. GKE taints GPU nodes `nvidia.com/gpu=present:NoSchedule`
    itself; spot nodes get labels only (no taint unless the pool adds one)."""
    vcpu, mem, accel, gpus, family = GKE_MACHINES[machine_type]
    a_cpu, a_mem = gke_allocatable(vcpu, mem)
    pool = nodepool or (f"{machine_type.split('-')[0]}{'-spot' if spot else ''}-pool")
    labels = {
        "cloud.google.com/gke-nodepool": pool,
        "cloud.google.com/machine-family": family,
        "cloud.google.com/gke-provisioning": "spot" if spot else "standard",
        "cloud.google.com/gke-container-runtime": "containerd",
        "cloud.google.com/gke-os-distribution": "cos",
        "cloud.google.com/gke-boot-disk": "pd-balanced",
        "topology.gke.io/zone": zone,
    }
    if spot:
        labels["cloud.google.com/gke-spot"] = "true"
    capacity = {"cpu": str(vcpu), "memory": _mi(mem * GiB), "pods": "110", "ephemeral-storage": "98831908Ki"}
    # 100 GB boot disk: GKE keeps back the 10 % eviction threshold and ~35 % for the system.
    allocatable = {"cpu": a_cpu, "memory": a_mem, "pods": "110", "ephemeral-storage": "47060071478"}
    taints: tuple = ()
    arch = "arm64" if family in GKE_ARM_FAMILIES else "amd64"
    if arch == "arm64":
        taints += (taint("kubernetes.io/arch", "arm64"),)
    if gpus:
        labels.update({"cloud.google.com/gke-accelerator": accel,
                       # Seen on GKE GPU nodes and used as a node selector (Autopilot docs).
                       "cloud.google.com/gke-accelerator-count": str(gpus),
                       "cloud.google.com/gke-gpu-driver-version": "default"})
        capacity["nvidia.com/gpu"] = allocatable["nvidia.com/gpu"] = str(gpus)
        taints += (taint("nvidia.com/gpu", "present"),)
    return NodeShape(
        name=f"gke-{machine_type}{'-spot' if spot else ''}", cloud="gke", instance_type=machine_type,
        labels=labels, taints=taints, capacity=capacity, allocatable=allocatable, zone=zone, region=GKE_REGION,
        gpu_resource="nvidia.com/gpu" if gpus else None, gpus=gpus, spot=spot, arch=arch,
        os_image="Container-Optimized OS from Google", kernel="6.6.87+",
        sources=("https://cloud.google.com/kubernetes-engine/docs/how-to/gpus",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/spot-vms",
                 "https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes"),
    )


# --------------------------------------------------------------------------- AKS

# VM size -> (vCPU, memory GiB, accelerator vendor, gpu count)
# https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nca100v4-series
# (NC24ads_A100_v4: 24 vCPU, 220 GiB, 1x A100 80GB PCIe), .../nd-h100-v5-series
# (ND96isr_H100_v5: 96 vCPU, 1900 GiB, 8x H100), .../nd-mi300x-v5-series
# (ND96isr_MI300X_v5: 96 vCPU, 1850 GiB, 8x MI300X), general-purpose/dsv5-series (D8s_v5).
AKS_VMS: dict[str, tuple] = {
    "Standard_NC24ads_A100_v4": (24, 220, "nvidia", 1),
    "Standard_ND96isr_H100_v5": (96, 1900, "nvidia", 8),
    "Standard_ND96isr_MI300X_v5": (96, 1850, "amd", 8),
    "Standard_D8s_v5": (8, 32, None, 0),
    # .../nd-h200-v5-series (ND96isr_H200_v5: 96 vCPU, 1850 GiB, 8x H200), .../nda100v4-series
    # (ND96asr_v4: 96 vCPU, 900 GiB, 8x A100 40GB), .../ncast4v3-series (NC8as_T4_v3: 8 vCPU,
    # 56 GiB, 1x T4; NC4as_T4_v3: 4 vCPU, 28 GiB).
    "Standard_ND96isr_H200_v5": (96, 1850, "nvidia", 8),
    "Standard_ND96asr_v4": (96, 900, "nvidia", 8),
    "Standard_NC8as_T4_v3": (8, 56, "nvidia", 1),
    "Standard_NC4as_T4_v3": (4, 28, "nvidia", 1),
}
AKS_REGION, AKS_ZONES = "eastus", ("eastus-1", "eastus-2", "eastus-3")
AKS_MAX_PODS = 250  # Azure CNI Overlay default


def aks_allocatable(vcpu: int, mem_gib: float, max_pods: int = AKS_MAX_PODS) -> tuple[str, str]:
    """AKS reservations (node-resource-reservations, 1.29+): memory 20 MB per
    allowed pod + 50 MB kube-reserved plus 100 Mi eviction; CPU from AKS's table
    (60m for 1 core ... 740m for 64 cores; the 64-core figure above that)."""
    table = [(1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740)]
    cpu_m = next((m for cores, m in table if vcpu <= cores), 740)
    mem_res_mib = (20 * max_pods + 50) * 1_000_000 / 2**20 + 100
    return f"{vcpu * 1000 - cpu_m}m", _mi(mem_gib * GiB - mem_res_mib)


def aks(vm_size: str, spot: bool = False, *, agentpool: str | None = None, zone: str = AKS_ZONES[0],
        gpu_taint: bool | None = None) -> NodeShape:
    """An AKS user-pool node. The `sku=gpu:NoSchedule` taint is the one AKS's GPU
    guide tells you to put on a GPU pool (default: on the A100 pool, as a cluster
    built from that guide has it; H100/MI300X pools without it). Spot pools get
    `kubernetes.azure.com/scalesetpriority=spot` as label and NoSchedule taint."""
    vcpu, mem, vendor, gpus = AKS_VMS[vm_size]
    a_cpu, a_mem = aks_allocatable(vcpu, mem)
    short = vm_size.split("_")[1].lower()[:9]
    pool = agentpool or (f"{'spot' if spot else 'gpu'}{short}"[:12] if gpus else "user")
    labels = {
        "kubernetes.azure.com/agentpool": pool,
        "agentpool": pool,
        "kubernetes.azure.com/mode": "user",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.azure.com/os-sku": "Ubuntu",
        "kubernetes.azure.com/cluster": "MC_vllm-rg_vllm-aks_eastus",
        "kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202505.27.0",
    }
    taints: list = []
    if vendor == "nvidia":
        labels["kubernetes.azure.com/accelerator"] = "nvidia"
    # AMD: AKS documents the accelerator label only with the value nvidia; the
    # MI300X node carries no accelerator label (the AMD device plugin's node
    # labeller would add amd.com/* labels once installed).
    if gpu_taint if gpu_taint is not None else vm_size == "Standard_NC24ads_A100_v4":
        taints.append(taint("sku", "gpu"))
    if spot:
        labels["kubernetes.azure.com/scalesetpriority"] = "spot"
        taints.append(taint("kubernetes.azure.com/scalesetpriority", "spot"))
    resource = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}.get(vendor)
    capacity = {"cpu": str(vcpu), "memory": _mi(mem * GiB), "pods": str(AKS_MAX_PODS), "ephemeral-storage": "129886128Ki"}
    allocatable = {"cpu": a_cpu, "memory": a_mem, "pods": str(AKS_MAX_PODS), "ephemeral-storage": "119703055367"}
    if resource:
        capacity[resource] = allocatable[resource] = str(gpus)
    return NodeShape(
        name=f"aks-{vm_size.lower().replace('_', '-')}{'-spot' if spot else ''}", cloud="aks", instance_type=vm_size,
        labels=labels, taints=tuple(taints), capacity=capacity, allocatable=allocatable, zone=zone, region=AKS_REGION,
        gpu_resource=resource, gpus=gpus, spot=spot, os_image="Ubuntu 22.04.5 LTS", kernel="5.15.0-1089-azure",
        sources=("https://learn.microsoft.com/azure/aks/gpu-cluster",
                 "https://learn.microsoft.com/azure/aks/spot-node-pool",
                 "https://learn.microsoft.com/azure/aks/node-resource-reservations"),
    )


# --------------------------------------------------------------------------- k3s


def k3s(gpus: int = 1, *, gfd: bool = True, cpu: int | None = None, memory_gib: int | None = None,
        product: str = "NVIDIA-GeForce-RTX-4090", gpu_memory_mib: int = 24564) -> NodeShape:
    """A single-box k3s server with NVIDIA GPUs. k3s labels its node
    `node.kubernetes.io/instance-type=k3s` and with its roles; nothing taints the
    GPUs. With `gfd`, the labels NVIDIA GPU feature discovery (GPU operator /
    device plugin with GFD) adds; without, a box with only the device plugin."""
    cpu = cpu or 16 * gpus
    memory_gib = memory_gib or 64 * gpus
    labels = {
        "node-role.kubernetes.io/control-plane": "true",
        "node-role.kubernetes.io/master": "true",
    }
    if gfd:
        labels.update({
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.memory": str(gpu_memory_mib),
            "nvidia.com/gpu.family": "ada-lovelace",
            "nvidia.com/gpu.machine": "k3s-box",
            "feature.node.kubernetes.io/pci-10de.present": "true",
        })
    # k3s sets no kube/system reservations; the kubelet's default eviction
    # threshold (memory.available<100Mi, nodefs 10 %) is all that is held back.
    capacity = {"cpu": str(cpu), "memory": _mi(memory_gib * GiB), "pods": "110",
                "ephemeral-storage": "960Gi", "nvidia.com/gpu": str(gpus)}
    allocatable = {**capacity, "memory": _mi(memory_gib * GiB - 100), "ephemeral-storage": "864Gi"}
    return NodeShape(
        name=f"k3s-{gpus}gpu{'' if gfd else '-nogfd'}", cloud="k3s", instance_type="k3s", labels=labels,
        taints=(), capacity=capacity, allocatable=allocatable, zone=None, region=None,
        gpu_resource="nvidia.com/gpu", gpus=gpus, os_image="Ubuntu 24.04.2 LTS", kernel="6.8.0-60-generic",
        sources=("https://docs.k3s.io/", "https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery"),
    )


# --------------------------------------------------------------------------- the catalog

EKS_P5_48XLARGE = eks("p5.48xlarge")
EKS_P5_48XLARGE_SPOT = eks("p5.48xlarge", "spot")
EKS_G6E_XLARGE = eks("g6e.xlarge")
EKS_G6E_XLARGE_SPOT = eks("g6e.xlarge", "spot")
EKS_G6E_12XLARGE = eks("g6e.12xlarge")
EKS_G6E_12XLARGE_SPOT = eks("g6e.12xlarge", "spot")
EKS_G6E_48XLARGE = eks("g6e.48xlarge")
EKS_G6E_48XLARGE_SPOT = eks("g6e.48xlarge", "spot")
EKS_G6_XLARGE = eks("g6.xlarge")
EKS_G6_XLARGE_SPOT = eks("g6.xlarge", "spot")
EKS_G6_12XLARGE = eks("g6.12xlarge")
EKS_G6_12XLARGE_SPOT = eks("g6.12xlarge", "spot")
EKS_M7I_2XLARGE = eks("m7i.2xlarge")  # CPU only (system/default NodePool)

GKE_A3_HIGHGPU_8G = gke("a3-highgpu-8g")
GKE_A3_HIGHGPU_8G_SPOT = gke("a3-highgpu-8g", spot=True)
GKE_G2_STANDARD_8 = gke("g2-standard-8")
GKE_G2_STANDARD_8_SPOT = gke("g2-standard-8", spot=True)
GKE_G2_STANDARD_24 = gke("g2-standard-24")
GKE_G2_STANDARD_24_SPOT = gke("g2-standard-24", spot=True)
GKE_A2_ULTRAGPU_1G = gke("a2-ultragpu-1g")
GKE_A2_ULTRAGPU_1G_SPOT = gke("a2-ultragpu-1g", spot=True)
GKE_N2_STANDARD_8 = gke("n2-standard-8")  # CPU only

AKS_NC24ADS_A100_V4 = aks("Standard_NC24ads_A100_v4")
AKS_NC24ADS_A100_V4_SPOT = aks("Standard_NC24ads_A100_v4", spot=True)
AKS_ND96ISR_H100_V5 = aks("Standard_ND96isr_H100_v5")
AKS_ND96ISR_MI300X_V5 = aks("Standard_ND96isr_MI300X_v5")
AKS_D8S_V5 = aks("Standard_D8s_v5")  # CPU only

K3S_1GPU = k3s(1)
K3S_2GPU = k3s(2)
K3S_1GPU_NO_GFD = k3s(1, gfd=False)

# Shapes for every catalog GPU on every cloud, on-demand and spot (issue 10's placement tests).
EKS_G6_2XLARGE, EKS_G6_2XLARGE_SPOT = eks("g6.2xlarge"), eks("g6.2xlarge", "spot")
EKS_G6E_2XLARGE, EKS_G6E_2XLARGE_SPOT = eks("g6e.2xlarge"), eks("g6e.2xlarge", "spot")
EKS_G5_2XLARGE, EKS_G5_2XLARGE_SPOT = eks("g5.2xlarge"), eks("g5.2xlarge", "spot")
EKS_G4DN_2XLARGE, EKS_G4DN_2XLARGE_SPOT = eks("g4dn.2xlarge"), eks("g4dn.2xlarge", "spot")
EKS_P5E_48XLARGE, EKS_P5E_48XLARGE_SPOT = eks("p5e.48xlarge"), eks("p5e.48xlarge", "spot")
EKS_P4D_24XLARGE, EKS_P4D_24XLARGE_SPOT = eks("p4d.24xlarge"), eks("p4d.24xlarge", "spot")
EKS_P4DE_24XLARGE, EKS_P4DE_24XLARGE_SPOT = eks("p4de.24xlarge"), eks("p4de.24xlarge", "spot")
EKS_P5_48XLARGE_RESERVED = eks("p5.48xlarge", "reserved")
EKS_P5_48XLARGE_RESERVED_INTERRUPTIBLE = eks("p5.48xlarge", "reserved", interruptible=True)
GKE_A3_ULTRAGPU_8G, GKE_A3_ULTRAGPU_8G_SPOT = gke("a3-ultragpu-8g"), gke("a3-ultragpu-8g", spot=True)
GKE_A2_HIGHGPU_1G, GKE_A2_HIGHGPU_1G_SPOT = gke("a2-highgpu-1g"), gke("a2-highgpu-1g", spot=True)
GKE_N1_STANDARD_8_T4, GKE_N1_STANDARD_8_T4_SPOT = gke("n1-standard-8"), gke("n1-standard-8", spot=True)
# The Blackwell GPUs (issue 13): EKS B200 and RTX PRO 6000, GKE B200, GB200 (Arm) and RTX PRO 6000.
EKS_P6_B200_48XLARGE, EKS_P6_B200_48XLARGE_SPOT = eks("p6-b200.48xlarge"), eks("p6-b200.48xlarge", "spot")
EKS_G7E_2XLARGE, EKS_G7E_2XLARGE_SPOT = eks("g7e.2xlarge"), eks("g7e.2xlarge", "spot")
GKE_A4_HIGHGPU_8G, GKE_A4_HIGHGPU_8G_SPOT = gke("a4-highgpu-8g"), gke("a4-highgpu-8g", spot=True)
GKE_A4X_HIGHGPU_4G, GKE_A4X_HIGHGPU_4G_SPOT = gke("a4x-highgpu-4g"), gke("a4x-highgpu-4g", spot=True)
GKE_G4_STANDARD_48, GKE_G4_STANDARD_48_SPOT = gke("g4-standard-48"), gke("g4-standard-48", spot=True)
AKS_ND96ISR_H100_V5_SPOT = aks("Standard_ND96isr_H100_v5", spot=True)
AKS_ND96ISR_H200_V5, AKS_ND96ISR_H200_V5_SPOT = aks("Standard_ND96isr_H200_v5"), aks("Standard_ND96isr_H200_v5", spot=True)
AKS_ND96ASR_V4, AKS_ND96ASR_V4_SPOT = aks("Standard_ND96asr_v4"), aks("Standard_ND96asr_v4", spot=True)
AKS_NC8AS_T4_V3, AKS_NC8AS_T4_V3_SPOT = aks("Standard_NC8as_T4_v3"), aks("Standard_NC8as_T4_v3", spot=True)
AKS_NC4AS_T4_V3 = aks("Standard_NC4as_T4_v3")
# A k3s box with one L4 and only the device plugin (no GPU operator, no GFD): the
# issue's `compose new-model llama-3.1-8b --env dev --cloud k3s --gpu l4` target.
K3S_1L4_NO_GFD = k3s(1, gfd=False, product="NVIDIA-L4", gpu_memory_mib=23034, cpu=16, memory_gib=64).replace(
    name="k3s-1xl4-nogfd")

SHAPES: dict[str, NodeShape] = {
    s.name: s for s in (
        EKS_P5_48XLARGE, EKS_P5_48XLARGE_SPOT, EKS_G6E_XLARGE, EKS_G6E_XLARGE_SPOT, EKS_G6E_12XLARGE,
        EKS_G6E_12XLARGE_SPOT, EKS_G6E_48XLARGE, EKS_G6E_48XLARGE_SPOT, EKS_G6_XLARGE, EKS_G6_XLARGE_SPOT,
        EKS_G6_12XLARGE, EKS_G6_12XLARGE_SPOT, EKS_M7I_2XLARGE,
        GKE_A3_HIGHGPU_8G, GKE_A3_HIGHGPU_8G_SPOT, GKE_G2_STANDARD_8, GKE_G2_STANDARD_8_SPOT,
        GKE_G2_STANDARD_24, GKE_G2_STANDARD_24_SPOT, GKE_A2_ULTRAGPU_1G, GKE_A2_ULTRAGPU_1G_SPOT, GKE_N2_STANDARD_8,
        AKS_NC24ADS_A100_V4, AKS_NC24ADS_A100_V4_SPOT, AKS_ND96ISR_H100_V5, AKS_ND96ISR_MI300X_V5, AKS_D8S_V5,
        K3S_1GPU, K3S_2GPU, K3S_1GPU_NO_GFD,
        EKS_G6_2XLARGE, EKS_G6_2XLARGE_SPOT, EKS_G6E_2XLARGE, EKS_G6E_2XLARGE_SPOT, EKS_G5_2XLARGE,
        EKS_G5_2XLARGE_SPOT, EKS_G4DN_2XLARGE, EKS_G4DN_2XLARGE_SPOT, EKS_P5E_48XLARGE, EKS_P5E_48XLARGE_SPOT,
        EKS_P4D_24XLARGE, EKS_P4D_24XLARGE_SPOT, EKS_P4DE_24XLARGE, EKS_P4DE_24XLARGE_SPOT,
        EKS_P5_48XLARGE_RESERVED, EKS_P5_48XLARGE_RESERVED_INTERRUPTIBLE,
        GKE_A3_ULTRAGPU_8G, GKE_A3_ULTRAGPU_8G_SPOT, GKE_A2_HIGHGPU_1G, GKE_A2_HIGHGPU_1G_SPOT,
        GKE_N1_STANDARD_8_T4, GKE_N1_STANDARD_8_T4_SPOT,
        AKS_ND96ISR_H100_V5_SPOT, AKS_ND96ISR_H200_V5, AKS_ND96ISR_H200_V5_SPOT, AKS_ND96ASR_V4, AKS_ND96ASR_V4_SPOT,
        AKS_NC8AS_T4_V3, AKS_NC8AS_T4_V3_SPOT, AKS_NC4AS_T4_V3, K3S_1L4_NO_GFD,
        EKS_P6_B200_48XLARGE, EKS_P6_B200_48XLARGE_SPOT, EKS_G7E_2XLARGE, EKS_G7E_2XLARGE_SPOT,
        GKE_A4_HIGHGPU_8G, GKE_A4_HIGHGPU_8G_SPOT, GKE_A4X_HIGHGPU_4G, GKE_A4X_HIGHGPU_4G_SPOT,
        GKE_G4_STANDARD_48, GKE_G4_STANDARD_48_SPOT,
    )
}


ZONES = {"eks": EKS_ZONES, "gke": GKE_ZONES, "aks": AKS_ZONES}


def in_zone(shape: NodeShape, index: int, suffix: str | None = None) -> NodeShape:
    """The same shape in the cloud's zone number `index` (0-based), named
    `<shape>-z<index+1>` (or `suffix`), with the cloud's own zone labels moved too."""
    zone = ZONES[shape.cloud][index]
    labels = dict(shape.labels)
    if "topology.gke.io/zone" in labels:
        labels["topology.gke.io/zone"] = zone
    if "topology.k8s.aws/zone-id" in labels:
        labels["topology.k8s.aws/zone-id"] = f"use1-az{index + 1}"
    return shape.replace(name=f"{shape.name}-{suffix or f'z{index + 1}'}", zone=zone, labels=labels)


def shapes_for(cloud: str, *, gpu: bool | None = None, spot: bool | None = None) -> list[NodeShape]:
    """Catalog shapes of one cloud, optionally only GPU (or CPU) / spot (or on-demand) ones."""
    return [s for s in SHAPES.values() if s.cloud == cloud
            and (gpu is None or (s.gpus > 0) == gpu) and (spot is None or s.spot == spot)]


# --------------------------------------------------------------------------- heartbeat


class Heartbeat:
    """One background thread per control plane that keeps fake nodes Ready:
    every `interval` seconds it renews each node's Lease in kube-node-lease
    (holderIdentity = node, leaseDurationSeconds 40, renewTime now) and the
    Ready condition's lastHeartbeatTime, as a kubelet does."""

    def __init__(self, cp: ControlPlane, interval: float = HEARTBEAT_SECONDS):
        self.cp = cp
        self.interval = interval
        self.nodes: dict[str, str] = {}  # name -> uid
        self.beats = 0
        self.errors: deque[str] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-node-heartbeat", daemon=True)
        self._thread.start()

    def add(self, name: str, uid: str) -> None:
        with self._lock:
            self.nodes[name] = uid
        self._renew(name, uid)

    def remove(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)

    def beat(self) -> None:
        """Renew every registered node now."""
        with self._lock:
            nodes = dict(self.nodes)
        for name, uid in nodes.items():
            if self._stop.is_set():
                return
            self._renew(name, uid)
        self.beats += 1

    def _renew(self, name: str, uid: str) -> None:
        api = self.cp.api
        now = _micro_now()
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}"
        try:
            # The node first: if it is gone (404), stop beating for it before a
            # Lease is recreated for a node that no longer exists.
            # Strategic merge: `conditions` merges on `type`, so only Ready's heartbeat moves.
            api.patch(f"/api/v1/nodes/{name}/status",
                      {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                                  "message": "kubelet is posting ready status",
                                                  "lastHeartbeatTime": now[:19] + "Z"}]}},
                      patch_type="strategic")
            try:
                api.patch(lease_path, {"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                                                "renewTime": now}})
            except ApiError as e:
                if e.status != 404:
                    raise
                api.post(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                                 # As the kubelet does: the Lease goes when the Node goes.
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                             "acquireTime": now, "renewTime": now},
                })
        except ApiError as e:
            if e.status == 404:  # the node is gone: stop beating for it
                self.remove(name)
            else:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {name}: {e}")
        except Exception as e:  # connection trouble while the control plane stops
            if not self._stop.is_set():
                self.errors.append(f"{time.strftime('%H:%M:%S')} {name}: {e!r}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as e:  # never let the thread die
                self.errors.append(repr(e))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 30)

    def alive(self) -> bool:
        return self._thread.is_alive()


def heartbeat(cp: ControlPlane) -> Heartbeat:
    """The control plane's heartbeat thread (started on first use, stopped by cp.stop())."""
    with cp._lock:
        hb = cp.extras.get("heartbeat")
        if hb is None:
            hb = cp.extras["heartbeat"] = Heartbeat(cp)
            cp.add_finalizer(hb.stop)
    return hb


# --------------------------------------------------------------------------- nodes


def node_name(shape: NodeShape, index: int = 0, prefix: str = "fake-") -> str:
    return f"{prefix}{shape.name.lower()}-{index}"


def create_nodes(cp: ControlPlane, shapes: Iterable[NodeShape], count_per_shape: int = 1, *,
                 prefix: str = "fake-", zones: Sequence[str] | None = None, wait: bool = True,
                 timeout: float = 60) -> list[str]:
    """Create `count_per_shape` Nodes per shape (status included), start their
    heartbeat, and (with `wait`) wait until each is Ready and untainted by the
    node-lifecycle controller. Node i of a shape is `{prefix}{shape.name}-{i}`;
    with `zones`, node i goes to zones[i % len(zones)] instead of the shape's zone.
    Returns the node names."""
    hb = heartbeat(cp)
    names: list[str] = []
    manifests: list[dict] = []
    for shape in shapes:
        for i in range(count_per_shape):
            name = node_name(shape, i, prefix)
            zone = zones[i % len(zones)] if zones else None
            n = cp.extras["fake-node-count"] = cp.extras.get("fake-node-count", 0) + 1
            # A documentation address (RFC 5737 TEST-NET-1): nothing ever connects to it.
            manifests.append(shape.manifest(name, zone, ip=f"192.0.2.{(n - 1) % 254 + 1}"))
            names.append(name)

    def create(manifest: dict) -> None:
        name = manifest["metadata"]["name"]
        # The API server keeps a Node's status on create (kubelet registration
        # relies on it); patch it through /status should a server drop it.
        created = cp.api.post("/api/v1/nodes", manifest)
        if not created.get("status", {}).get("allocatable"):
            created = cp.api.patch(f"/api/v1/nodes/{name}/status", {"status": manifest["status"]}, patch_type="merge")
        hb.add(name, created["metadata"]["uid"])

    _parallel(create, manifests)
    if wait:
        wait_nodes_ready(cp, names, timeout)
    return names


def node_problems(node: dict) -> list[str]:
    """Why a node would not take pods: not Ready, or a node.kubernetes.io/* taint."""
    problems = []
    ready = next((c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    if not ready or ready["status"] != "True":
        problems.append(f"Ready={ready['status'] if ready else 'missing'}")
    for t in node.get("spec", {}).get("taints", []) or []:
        if t["key"].startswith("node.kubernetes.io/"):
            problems.append(f"taint {t['key']}:{t['effect']}")
    return problems


def wait_nodes_ready(cp: ControlPlane, names: Iterable[str], timeout: float = 60) -> None:
    names = list(names)
    deadline = time.monotonic() + timeout
    while True:
        bad = {}
        existing = {n["metadata"]["name"]: n for n in cp.api.get("/api/v1/nodes")["items"]}  # one request
        for name in names:
            node = existing.get(name)
            problems = node_problems(node) if node is not None else ["not found"]
            if problems:
                bad[name] = problems
        if not bad:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not Ready/untainted after {timeout}s: {bad}")
        time.sleep(0.25)


def fake_nodes(cp: ControlPlane) -> list[str]:
    """Names of every fake node that exists now."""
    items = cp.api.get("/api/v1/nodes", labelSelector=f"{FAKE_LABEL}=true")["items"]
    return [n["metadata"]["name"] for n in items]


def force_delete_pods_on(cp: ControlPlane, node: str) -> list[str]:
    """Delete every pod bound to `node` at once (grace 0: no kubelet will confirm)."""
    gone = []
    pods = cp.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")["items"]
    for pod in pods:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            cp.api.delete(f"/api/v1/namespaces/{ns}/pods/{name}", {"gracePeriodSeconds": 0}, gracePeriodSeconds=0)
            gone.append(f"{ns}/{name}")
        except ApiError as e:
            if e.status != 404:
                raise
    return gone


def delete_nodes(cp: ControlPlane, names: Iterable[str], timeout: float = 30) -> None:
    """Stop the heartbeat for these nodes, force-delete their pods, delete them
    and their Leases, and wait until they are gone."""
    names = list(names)
    hb = heartbeat(cp)
    for name in names:
        hb.remove(name)

    def delete(name: str) -> None:
        force_delete_pods_on(cp, name)
        for path in (f"/api/v1/nodes/{name}",
                     f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}"):
            try:
                cp.api.delete(path)
            except ApiError as e:
                if e.status != 404:
                    raise

    _parallel(delete, names)
    deadline = time.monotonic() + timeout
    while any(cp.api.exists(f"/api/v1/nodes/{n}") for n in names):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes still exist after {timeout}s: {names}")
        time.sleep(0.2)
    # A pod the scheduler bound in the meantime would be orphaned: sweep once more.
    _parallel(lambda name: force_delete_pods_on(cp, name), names)


def _parallel(fn, items: Iterable, workers: int = 8) -> None:
    """fn(item) for each item from a few threads (the API client keeps one connection
    per thread); the first exception is raised."""
    items = list(items)
    if len(items) < 2:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


@dataclass
class NodeSet:
    """The nodes `node_set` made: names per shape name, in creation order."""

    names: list[str]
    by_shape: dict[str, list[str]] = field(default_factory=dict)

    def of(self, shape: NodeShape | str) -> list[str]:
        return self.by_shape[shape if isinstance(shape, str) else shape.name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


@contextlib.contextmanager
def node_set(cp: ControlPlane, shapes: Iterable[NodeShape], count_per_shape: int = 1, *,
             prefix: str = "fake-", zones: Sequence[str] | None = None) -> Iterator[NodeSet]:
    """Exactly these fake nodes for the duration of the block: deletes every other
    fake node (and force-deletes pods bound to them) first, creates these and
    waits until they are Ready, and deletes them and their pods afterwards.

        with node_set(cp, [fakenodes.EKS_G6_XLARGE, fakenodes.EKS_M7I_2XLARGE]) as nodes:
            ...  # nodes.names, nodes.of(fakenodes.EKS_G6_XLARGE)
    """
    shapes = list(shapes)
    if len({s.name for s in shapes}) != len(shapes):
        raise ValueError("node_set: two shapes share a name; give variants their own name")
    delete_nodes(cp, fake_nodes(cp))
    by_shape: dict[str, list[str]] = {}
    names: list[str] = []
    try:
        for shape in shapes:
            made = create_nodes(cp, [shape], count_per_shape, prefix=prefix, zones=zones, wait=False)
            by_shape[shape.name] = made
            names += made
        wait_nodes_ready(cp, names)
        yield NodeSet(names, by_shape)
    finally:
        delete_nodes(cp, names)
