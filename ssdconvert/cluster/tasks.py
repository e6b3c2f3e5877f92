"""What Ray runs on the nodes: one entry point per kind of cell, with the cell's device held.

Imported only inside a session (it imports Ray). Device cells run in a fresh worker process each
(`max_calls=1`): Ray sets the visible-devices mask before a task starts, and a vendor runtime
reads it once, at its initialisation, so a reused process would keep the first task's device.
"""

from __future__ import annotations

from typing import Any

import ray

from ssdconvert.backends.base import Backend
from ssdconvert.cluster import devices
from ssdconvert.cluster.resources import request


def _probe(placement, backend, path: str, token: str) -> bool:
    from ssdconvert.cluster.transport import reads_probe

    return reads_probe(path, token)


def _noop(placement, backend, hold: float = 0.0) -> None:
    """An empty cell (benchmarks/cluster_bench.py), holding its device for `hold` seconds."""
    if hold:
        import time

        time.sleep(hold)


def _bench(placement, backend, cell) -> dict:
    from ssdconvert.cluster import adapter

    return adapter.bench_cell(cell, backend, placement.logical)


def _infer(placement, backend, shard) -> dict:
    from ssdconvert.cluster import adapter

    return adapter.infer_shard(shard, backend, placement.logical)


HANDLERS = {"probe": _probe, "noop": _noop, "bench": _bench, "infer": _infer}


def _run(kind: str, args: tuple, backend: Backend | None) -> dict:
    with devices.claim(backend) as placement:
        result = HANDLERS[kind](placement, backend, *args)
    return {"placement": placement.to_dict(), "result": result}


_device_cell = ray.remote(max_calls=1)(_run)
_host_cell = ray.remote(_run)


def submit(kind: str, args: tuple, backend: Backend, cpu_cores: float, node: str | None = None):
    """Start one cell of `backend` (configured); `node` (a node id) pins it there (soft: elsewhere if that node
    is gone)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    resource = backend.cluster_resource
    function = _device_cell if resource.device else _host_cell
    strategy = NodeAffinitySchedulingStrategy(node, soft=True) if node else "DEFAULT"
    return function.options(**request(resource, cpu_cores), max_retries=0, retry_exceptions=False,
                            scheduling_strategy=strategy).remote(kind, args, backend)


def on_each_node(session, kind: str, *args: Any) -> list:
    """Run a small cell once on every live node (no resources held) and return the results."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = [_host_cell.options(num_cpus=0, max_retries=0,
                               scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(kind, args, None) for n in session.nodes()]
    return [r["result"] for r in ray.get(refs)]
