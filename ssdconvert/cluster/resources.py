"""How many cells of a backend the cluster's nodes run at once, and what each asks of Ray.

What one cell holds is the backend's own fact (`Backend.cluster_resource`, backends/base.py): CPU
cores for the CPU backends, Ray's accelerator resource `NPU` for Ascend, the custom resource `MLU`
for MagicMind. A timed CPU cell takes `cpu_cores` cores (by default every core of the smallest CPU
node) so two timed cells never share a node's cores. Nothing here imports Ray.
"""

from __future__ import annotations

from ssdconvert.backends.base import ClusterResource


def request(resource: ClusterResource, cpu_cores: float) -> dict:
    """Keyword arguments of `.options()` for one cell holding `resource`."""
    if not resource.device:
        return {"num_cpus": cpu_cores}
    return {"num_cpus": 0, "resources": {resource.name: 1}}  # the device, not the host's cores


def cpu_cores_per_cell(nodes: list[dict]) -> float:
    """Cores a timed CPU cell takes: all of the smallest node that has CPUs, so cells never share cores."""
    counts = [n.get("Resources", {}).get("CPU", 0) for n in nodes if n.get("Alive")]
    counts = [c for c in counts if c > 0]
    return min(counts) if counts else 1


def capacity(nodes: list[dict], resource: ClusterResource, cpu_cores: float) -> int:
    """How many cells of `resource` the live nodes run at once."""
    total = 0
    for node in nodes:
        if node.get("Alive"):
            amount = node.get("Resources", {}).get(resource.name, 0)
            total += int(amount // cpu_cores) if not resource.device else int(amount)
    return total
