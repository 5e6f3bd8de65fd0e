"""Per-cloud facts the components and the composer share, with sources.

Each cloud component under components/<cloud>/ encodes the same facts as YAML;
tests/test_components.py checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from compose.core.errors import InvalidInput


@dataclass(frozen=True)
class Cloud:
    name: str
    # Label whose value names the GPU model on a node; the overlay's placement
    # patch pins it from the GPU catalog (None: nothing to pin).
    gpu_label: str | None
    # StorageClass the component gives the model cache, and its access mode.
    storage_class: str
    access_mode: str
    # Node label that marks spot capacity, and the spot taint if the cloud sets one.
    spot_label: tuple[str, str] | None
    spot_taint: str | None
    # Seconds a pod gets between the spot/preemption notice and the node going
    # away. Not a cap on the drain: a preemption cuts the pod off at the notice
    # whatever its grace period, while planned disruptions (rollouts, scale-in,
    # upgrades, consolidation) honour the whole grace period, so the drain stays
    # full on spot (components/spot/README.md). Quoted in the plan's explanation.
    spot_notice_seconds: int | None
    # Whether GPU pods need runtimeClassName: nvidia, and the device-plugin add-on.
    runtime_class: str | None
    needs_device_plugin: bool
    # One node (k3s box): replicas share it, so no per-node spread floor (minDomains).
    single_node: bool = False
    # The backend of storage_class in compose/plan/storage.py: its read rate sizes
    # the startup probe.
    storage: str = "local-nvme"
    # Node labels (key, value) of capacity the cloud may take back at short notice:
    # spot/preemptible VMs and interruptible reservations. A pod that is not on
    # spot must be kept off every one of them (components/on-demand, policy rule
    # capacity-type); nodes without the label are on-demand.
    interruptible_labels: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = ()


CLOUDS: dict[str, Cloud] = {
    "eks": Cloud(
        name="eks",
        gpu_label="karpenter.k8s.aws/instance-gpu-name",
        storage_class="efs-sc",
        storage="efs",
        access_mode="ReadWriteMany",
        spot_label=("karpenter.sh/capacity-type", "spot"),
        spot_taint=None,
        # EC2 Spot gives a two-minute interruption notice; with Karpenter's interruption
        # queue the node is tainted, drained (Eviction API) and replaced in parallel.
        spot_notice_seconds=120,
        runtime_class=None,  # EKS AMIs have the handler but no RuntimeClass object
        needs_device_plugin=False,  # Bottlerocket/Auto Mode/eksctl ship it; AL2023 by hand: base/nvidia-device-plugin
        # Karpenter taints no spot node and, when a NodePool allows several capacity
        # types, prefers reserved, then spot, then on-demand (karpenter.sh concepts/
        # nodepools "If a NodePool is compatible with multiple capacity types ...").
        # Interruptible capacity reservations (Karpenter v1.10+) are reclaimed with a
        # 2-minute warning (tasks/odcrs: capacity-reservation-interruptible=true).
        interruptible_labels=(("karpenter.sh/capacity-type", "spot"),
                              ("karpenter.k8s.aws/capacity-reservation-interruptible", "true")),
        sources=(
            "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html",
            "https://karpenter.sh/docs/concepts/disruption/ (interruption: taint, drain, replace before the reclaim)",
            "https://karpenter.sh/docs/reference/instance-types/ (karpenter.k8s.aws/instance-gpu-name)",
            "https://karpenter.sh/docs/concepts/nodepools/ (capacity types: reserved, then spot, then on-demand)",
            "https://karpenter.sh/docs/tasks/odcrs/ (capacity-reservation-interruptible)",
            "https://docs.aws.amazon.com/eks/latest/userguide/efs-csi.html (efs-sc, ReadWriteMany)",
            "aws-samples/aws-do-eks#96 (no nvidia RuntimeClass on EKS)",
        ),
    ),
    "gke": Cloud(
        name="gke",
        gpu_label="cloud.google.com/gke-accelerator",
        # premium-rwx (Filestore Basic SSD, 1,200 MiB/s read), not standard-rwx (Basic
        # HDD, 100 MiB/s shared by every replica: a 70B checkpoint in 22 min).
        storage_class="premium-rwx",
        storage="filestore-basic-ssd",
        access_mode="ReadWriteMany",
        spot_label=("cloud.google.com/gke-spot", "true"),
        spot_taint="cloud.google.com/gke-spot",
        # Spot VMs get a 30 s preemption notice, of which graceful node shutdown
        # gives non-system pods 15 s by default ("a terminationGracePeriodSeconds
        # above 15 s has no effect"); Standard pools on GKE >= 1.35.0-gke.1171000 can
        # extend it to 120 s (105 s for pods) through node system config.
        spot_notice_seconds=15,
        runtime_class=None,
        needs_device_plugin=False,  # GKE installs its own device plugin on GPU nodes
        # Standard node pools created with --spot are labelled, not tainted, unless
        # the pool adds --node-taints (only Autopilot and node auto-provisioning taint
        # them); preemptible VMs carry gke-preemptible=true.
        interruptible_labels=(("cloud.google.com/gke-spot", "true"), ("cloud.google.com/gke-preemptible", "true")),
        sources=(
            "https://cloud.google.com/kubernetes-engine/docs/concepts/spot-vms",
            "https://cloud.google.com/kubernetes-engine/docs/how-to/spot-vms (gke-spot label; taint only with --node-taints)",
            "https://cloud.google.com/kubernetes-engine/docs/how-to/preemptible-vms (15 s for non-system pods)",
            "https://cloud.google.com/kubernetes-engine/docs/how-to/node-system-config (spot graceful termination 120 s)",
            "https://cloud.google.com/kubernetes-engine/docs/how-to/gpus (cloud.google.com/gke-accelerator)",
            "https://cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/filestore-csi-driver "
            "(standard-rwx = Basic HDD, premium-rwx = Basic SSD)",
            "GoogleCloudPlatform/container-engine-accelerators cmd/nvidia_gpu README (device plugin addon)",
        ),
    ),
    "aks": Cloud(
        name="aks",
        gpu_label="node.kubernetes.io/instance-type",
        # azurefile-csi-premium (SSD, 100 + 0.1 MiB/s per provisioned GiB), not
        # azurefile-csi (Standard HDD: 60 MiB/s per share and per file by default).
        storage_class="azurefile-csi-premium",
        storage="azure-files-premium",
        access_mode="ReadWriteMany",
        spot_label=("kubernetes.azure.com/scalesetpriority", "spot"),
        spot_taint="kubernetes.azure.com/scalesetpriority",
        # Azure Spot evictions come with at least 30 s of notice (Scheduled Events
        # "Preempt | 30 seconds"); AKS node auto-drain cordons and drains, best effort.
        spot_notice_seconds=30,
        runtime_class=None,
        needs_device_plugin=False,  # AKS GPU node pools install the NVIDIA device plugin
        # AKS spot pools are labelled and tainted scalesetpriority=spot:NoSchedule,
        # so without the toleration a pod never lands there; the NotIn is belt and braces.
        interruptible_labels=(("kubernetes.azure.com/scalesetpriority", "spot"),),
        sources=(
            "https://learn.microsoft.com/azure/aks/spot-node-pool",
            "https://learn.microsoft.com/azure/virtual-machines/linux/scheduled-events (Preempt: 30 s minimum)",
            "https://learn.microsoft.com/azure/aks/node-auto-drain (Preempt: cordon and drain, best effort)",
            "https://learn.microsoft.com/azure/aks/gpu-cluster (sku=gpu:NoSchedule taint)",
            "https://learn.microsoft.com/azure/aks/azure-files-csi (azurefile-csi, azurefile-csi-premium)",
        ),
    ),
    "k3s": Cloud(
        name="k3s",
        gpu_label=None,
        storage_class="local-path",
        storage="local-path",
        access_mode="ReadWriteOnce",
        spot_label=None,
        spot_taint=None,
        spot_notice_seconds=None,
        runtime_class="nvidia",
        needs_device_plugin=True,
        single_node=True,
        sources=(
            "k3s-io/k3s#4391 (nvidia runtime detected but not default)",
            "https://docs.k3s.io/storage (local-path provisioner, ReadWriteOnce)",
        ),
    ),
}


def get(name: str) -> Cloud:
    try:
        return CLOUDS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown cloud {name!r}; choose one of: {', '.join(sorted(CLOUDS))}"
        ) from None
