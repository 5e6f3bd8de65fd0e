"""Where the weights are read from at start-up, and how fast, with sources.

The init container downloads the checkpoint once into the model cache; every
replica's vLLM then reads it from there. How long that read takes decides the
startup probe budget (planner.startup_budget): a probe that runs out kills the
pod mid-load and it restarts forever. So each StorageClass a component uses is
modelled here with a *conservative* read rate from published figures:

    read MiB/s per loading replica = min(per-client limit,
                                         per-volume limit / replicas loading at once,
                                         NETWORK_FS_READ_MIB_S for a network file system)

and the planner takes the slower of that and vLLM's own loader (1.1 GB/s per
GPU process, 2 GB/s per node: facts §6).

Why a ceiling for network file systems: vLLM's default loader reads safetensors
through mmap, page by page, which "causes severe performance degradation on
network or distributed file systems (like Lustre or NFS)" (vllm-project/vllm#24469,
which added --safetensors-load-strategy eager; huggingface/safetensors#562). The
one published vLLM load from a managed NFS service read an 894 GiB checkpoint
from EFS Elastic in ~43 min on each of two p5en nodes (modelplaneai/modelplane#204):
~355 MiB/s per node, a quarter of the 1,500 MiB/s per-client limit. We budget
350 MiB/s for every NFS-class cache, or less where the service allows less.

`compose plan --storage KEY` and `compose new-model` (the cloud's storage, with
the overlay's minimum replicas loading at once) use these figures; docs/planner.md
shows the maths and each component's README the consequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compose.core.errors import InvalidInput

MIB = 1 << 20
# modelplaneai/modelplane#204: 894 GiB in ~43 min per node from EFS Elastic = ~355 MiB/s.
NETWORK_FS_READ_MIB_S = 350


@dataclass(frozen=True)
class Storage:
    key: str
    storage_class: str | None  # the StorageClass a component names (None: not a component default)
    description: str
    # Published read limit per client (one node's mount); None: the service states none.
    read_mib_s_per_client: float | None
    # Published read limit of the whole volume, shared by every client at once;
    # None: far above what a few replicas read. For provisioned shares the limit
    # depends on the size: base + per_gib x max(size, minimum size).
    read_mib_s_shared: float | None
    network: bool  # a network file system: NETWORK_FS_READ_MIB_S applies
    write_mib_s: float | None = None  # what the download writes at (None: not the bottleneck)
    shared_base_mib_s: float = 0.0
    shared_per_gib_mib_s: tuple[float, ...] = ()  # summed as ceil(c x GiB) each
    min_size_gib: int = 0
    per_client_note: str = "per-client limit"  # what the per-client figure is, in the explanation
    sources: tuple[str, ...] = ()

    def shared_mib_s(self, size_gib: float) -> float | None:
        if self.shared_per_gib_mib_s:
            size = max(self.min_size_gib, math.ceil(size_gib))
            return self.shared_base_mib_s + sum(math.ceil(c * size) for c in self.shared_per_gib_mib_s)
        return self.read_mib_s_shared

    def read_mib_s(self, size_gib: float, concurrent: int = 1) -> float:
        """Read rate one of `concurrent` replicas loading at once can count on."""
        limits = []
        if self.read_mib_s_per_client:
            limits.append(self.read_mib_s_per_client)
        shared = self.shared_mib_s(size_gib)
        if shared:
            limits.append(shared / max(1, concurrent))
        if self.network:
            limits.append(NETWORK_FS_READ_MIB_S)
        return min(limits) if limits else math.inf

    def limit_text(self, size_gib: float, concurrent: int = 1) -> str:
        """Which limit binds, in words, for the plan explanation."""
        rate = self.read_mib_s(size_gib, concurrent)
        shared = self.shared_mib_s(size_gib)
        if shared and shared / max(1, concurrent) == rate:
            return (f"{shared:.0f} MiB/s for the whole volume" + (f" shared by {concurrent} replicas loading at once"
                                                                   if concurrent > 1 else ""))
        if self.read_mib_s_per_client == rate:
            return f"{rate:.0f} MiB/s, {self.per_client_note}"
        if self.network and rate == NETWORK_FS_READ_MIB_S:
            return f"{rate:.0f} MiB/s, vLLM's mmap read of safetensors over NFS as measured (modelplaneai/modelplane#204)"
        return f"{rate:.0f} MiB/s"


BACKENDS: dict[str, Storage] = {s.key: s for s in (
    Storage(
        key="efs", storage_class="efs-sc", network=True,
        description="Amazon EFS (General Purpose, Regional), mounted by the EFS CSI driver",
        # Per-client 1,500 MiB/s only with Elastic throughput and efs-utils >= 2.0 / the CSI driver,
        # "for all other file systems, the throughput limit is 500 MiBps"; per file system 3-60 GiB/s.
        read_mib_s_per_client=500, read_mib_s_shared=None, write_mib_s=500,
        sources=("https://docs.aws.amazon.com/efs/latest/ug/performance.html (per-client 500 MiBps; 1,500 with Elastic)",
                 "modelplaneai/modelplane#204 (894 GiB in ~43 min from EFS Elastic)"),
    ),
    Storage(
        key="filestore-basic-hdd", storage_class="standard-rwx", network=True,
        description="Filestore Basic HDD (GKE's standard-rwx)",
        # 1-10 TiB: 100 MiB/s read and write for the instance; "no per-client performance cap".
        read_mib_s_per_client=None, read_mib_s_shared=100, write_mib_s=100,
        sources=("https://cloud.google.com/filestore/docs/performance (BASIC_HDD 1-10 TiB: 100 MiB/s)",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/filestore-csi-driver "
                 "(standard-rwx = Basic HDD, premium-rwx = Basic SSD)"),
    ),
    Storage(
        key="filestore-basic-ssd", storage_class="premium-rwx", network=True,
        description="Filestore Basic SSD (GKE's premium-rwx), at least 2.5 TiB",
        # 2.5-63.9 TiB: 1,200 MiB/s read, 350 MiB/s write for the instance; the CSI driver
        # rounds a smaller request up to 2.5 TiB (gcp-filestore-csi-driver premiumTierMinSize).
        read_mib_s_per_client=None, read_mib_s_shared=1200, write_mib_s=350,
        sources=("https://cloud.google.com/filestore/docs/performance (BASIC_SSD: 1,200 MiB/s read, 350 write)",
                 "kubernetes-sigs/gcp-filestore-csi-driver pkg/csi_driver/controller.go (premiumTierMinSize 2.5 TiB)"),
    ),
    Storage(
        key="azure-files-standard", storage_class="azurefile-csi", network=True,
        description="Azure Files Standard (HDD), AKS's azurefile-csi",
        # "Up to 60 MiB/sec, default" per share; "Maximum throughput per file: HDD 60 MiB/sec".
        read_mib_s_per_client=60, read_mib_s_shared=60, write_mib_s=60, per_client_note="the per-file limit of HDD shares",
        sources=("https://learn.microsoft.com/azure/storage/files/storage-files-scale-targets "
                 "(standard share: up to 60 MiB/s by default; 60 MiB/s per file)",
                 "MicrosoftDocs/azure-aks-docs articles/aks/concepts-storage.md (azurefile-csi = Standard)"),
    ),
    Storage(
        key="azure-files-premium", storage_class="azurefile-csi-premium", network=True,
        description="Azure Files Premium (SSD, provisioned), AKS's azurefile-csi-premium, at least 100 GiB",
        # Provisioned v1: 100 + ceil(0.04 x GiB) + ceil(0.06 x GiB) MiB/s for the share;
        # the CSI driver bumps premium shares to 100 GiB (minimumPremiumShareSize).
        read_mib_s_per_client=None, read_mib_s_shared=None, shared_base_mib_s=100, shared_per_gib_mib_s=(0.04, 0.06),
        min_size_gib=100, write_mib_s=None,
        sources=("https://learn.microsoft.com/azure/storage/files/storage-files-scale-targets "
                 "(premium provisioned v1: 100 + CEILING(0.04 x GiB) + CEILING(0.06 x GiB) MiB/s)",
                 "kubernetes-sigs/azurefile-csi-driver pkg/azurefile (minimumPremiumShareSize 100 GiB)"),
    ),
    Storage(
        key="local-path", storage_class="local-path", network=False,
        description="k3s local-path: a directory on the node's own disk (any disk, SATA included)",
        # "A typical SSD has a speed of 7G/s ... If you use a SATA hard drive, the speed is only 0.5G/s."
        read_mib_s_per_client=476, read_mib_s_shared=None, write_mib_s=476,
        per_client_note="a SATA SSD's 0.5 GB/s (vllm-project/vllm#15862); NVMe is faster, the budget assumes the slow disk",
        sources=("https://docs.k3s.io/storage (local-path provisioner)",
                 "vllm-project/vllm#15862 (a vLLM maintainer: NVMe ~7 GB/s, SATA 0.5 GB/s)"),
    ),
    Storage(
        key="local-nvme", storage_class=None, network=False,
        description="local NVMe (instance store, ephemeral data disks): vLLM's loader is the limit",
        # NVMe ~4 GB/s (anyscale/ai-infra-cookbook#57) to ~7 GB/s (vllm#15862): above the loader's 1.1 GB/s.
        read_mib_s_per_client=None, read_mib_s_shared=None, write_mib_s=None,
        sources=("anyscale/ai-infra-cookbook#57 (NVMe local SSD ~4 GB/s)",
                 "MicrosoftDocs/azure-aks-docs articles/aks/best-practices-gpu.md (NVMe for model weights)"),
    ),
)}

DEFAULT = "local-nvme"  # `compose plan` without --storage: the loader is the only limit


def get(key: str) -> Storage:
    try:
        return BACKENDS[key]
    except KeyError:
        shown = repr(key) if len(repr(key)) <= 60 else repr(key)[:56] + "...'"
        raise InvalidInput(f"unknown storage {shown}; choose one of: {', '.join(BACKENDS)}") from None


def for_storage_class(name: str) -> Storage | None:
    return next((s for s in BACKENDS.values() if s.storage_class == name), None)
