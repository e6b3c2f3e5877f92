"""What one cell of each backend asks of a Ray node.

A small table keyed by backend name, kept here until the typed backend plugins carry it (each
backend would then declare its own `ClusterResource`). Nothing in it imports Ray.

- `ascend` asks for Ray's built-in accelerator resource `NPU` (ray==2.60.0,
  `ray/_private/accelerators/npu.py`: resource name "NPU", ids counted from `acl.rt.get_device_count()`
  or `/dev/davinci[0-9]*`, the ids a task gets are put in `ASCEND_RT_VISIBLE_DEVICES` unless
  `RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES` is set). Ray assigns it ids.
- `magicmind` asks for the custom resource `MLU` (`ray start --resources='{"MLU": 8}'`). Ray counts
  custom resources but assigns no ids, so a task claims a free slot on its node itself
  (cluster/devices.py), and `MLU_VISIBLE_DEVICES` set when the node started maps slots to MLUs.
- `onnxruntime` and `openvino` ask for CPU cores: a timed CPU cell takes `cpu_cores` of them (by
  default every core of the smallest CPU node) so two timed cells never share a node's cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterResource:
    """The Ray resource one cell of a backend holds while it runs."""

    name: str  # Ray resource name: NPU, MLU or CPU
    visible_env: str | None = None  # the vendor runtime's visible-devices mask
    ray_assigns_ids: bool = False  # Ray hands out device ids (accelerator resources), else slots are claimed
    device: bool = True  # False: CPU cores, no device id

    def request(self, cpu_cores: float) -> dict:
        """Keyword arguments of `.options()` for one cell."""
        if not self.device:
            return {"num_cpus": cpu_cores}
        return {"num_cpus": 0, "resources": {self.name: 1}}  # the device, not the host's cores


CPU = ClusterResource("CPU", device=False)
NPU = ClusterResource("NPU", visible_env="ASCEND_RT_VISIBLE_DEVICES", ray_assigns_ids=True)
MLU = ClusterResource("MLU", visible_env="MLU_VISIBLE_DEVICES")

# backend name -> what one of its cells needs; to move into each backend plugin
BY_BACKEND: dict[str, ClusterResource] = {
    "ascend": NPU,
    "magicmind": MLU,
    "onnxruntime": CPU,
    "openvino": CPU,
}


def resource_for(backend: str) -> ClusterResource:
    """The resource a cell of `backend` holds (CPU cores for a backend the table does not name)."""
    return BY_BACKEND.get(backend, CPU)


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
