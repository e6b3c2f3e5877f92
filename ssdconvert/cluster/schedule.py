"""Cells on the cluster: submitted as Ray tasks, collected as they finish, retried when a node fails.

A cell's result is handed to `on_result` on the driver the moment it arrives (the caller journals
it), so a node that dies later loses nothing finished. A cell whose task was lost with its node or
worker (Ray's system errors) is submitted again, up to `max_attempts` in all, then reported FAILED
with every attempt's reason; a cell whose own code raised (a refused model, a build error) fails
at once: running it elsewhere would fail alike. Ctrl-C cancels the outstanding tasks and returns
what finished, with the rest marked cancelled.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ssdconvert.backends.base import Backend, ClusterResource
from ssdconvert.cluster.resources import capacity, cpu_cores_per_cell
from ssdconvert.cluster.session import ClusterError, Session

DEFAULT_ATTEMPTS = 3
NO_NODE_GRACE_S = 10.0  # how long cells may wait with no live node that has their resource


@dataclass
class Cell:
    """One unit of work: a Ray task of `kind` with `args` on `backend` (configured: its options travel with it),
    holding what one of its cells holds while it runs."""

    key: str  # stable across invocations (the journal's key)
    label: str  # for people: "fp32 bs 8", "batches 0-3"
    kind: str  # tasks.HANDLERS key
    args: tuple
    backend: Backend
    failures: list[str] = field(default_factory=list)  # why earlier attempts were lost

    @property
    def resource(self) -> ClusterResource:
        return self.backend.cluster_resource


@dataclass
class Outcome:
    cell: Cell
    status: str  # ok | failed | cancelled
    result: Any = None
    placement: dict | None = None
    reason: str = ""


@dataclass
class Run:
    outcomes: list[Outcome]
    interrupted: bool = False

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]


def run_cells(session: Session, cells: Iterable[Cell], on_result: Callable[[Cell, Any, dict], None], *,
              max_attempts: int = DEFAULT_ATTEMPTS, progress: bool = True, desc: str = "cells") -> Run:
    """Run every cell; `on_result(cell, result, placement)` is called on the driver as each one finishes."""
    from tqdm import tqdm

    pending = deque(cells)
    nodes = session.nodes()
    cores = cpu_cores_per_cell(nodes)
    _check_feasible(pending, nodes, cores)
    outcomes: list[Outcome] = []
    flying: dict[Any, Cell] = {}
    starved_since: float | None = None
    with tqdm(total=len(pending), unit="cell", desc=desc, disable=not progress, file=sys.stderr) as bar:
        try:
            while pending or flying:
                _fill(pending, flying, nodes, cores)
                done = _wait(list(flying))
                for ref in done:
                    outcome = _collect(ref, flying.pop(ref), on_result, pending, max_attempts)
                    if outcome is not None:
                        outcomes.append(outcome)
                        bar.update(1)
                if not done:
                    nodes = session.nodes()
                    starved_since = _starved(flying, pending, nodes, cores, starved_since, outcomes, bar)
        except KeyboardInterrupt:
            _cancel(flying)
            left = [*flying.values(), *pending]
            outcomes += [Outcome(c, "cancelled", reason="interrupted by the user") for c in left]
            return Run(outcomes, interrupted=True)
        except BaseException:  # the caller's on_result failed: stop what is still running, then report it
            _cancel(flying)
            raise
    return Run(outcomes)


def _check_feasible(cells: Iterable[Cell], nodes: list[dict], cores: float) -> None:
    for resource in {c.resource for c in cells}:
        if capacity(nodes, resource, cores) == 0:
            raise ClusterError(f"no live node of the cluster offers {resource.name}: start the device hosts with "
                               f"`ray start --address HEAD:PORT --resources '{{\"{resource.name}\": N}}'` "
                               "(docs/cluster.md)")


def _fill(pending: deque, flying: dict, nodes: list[dict], cores: float) -> None:
    """Keep about twice as many cells in flight as the cluster runs at once (the next one's data moves early)."""
    from ssdconvert.cluster import tasks

    while pending:
        cell = pending[0]
        limit = 2 * max(capacity(nodes, cell.resource, cores), 1)
        if sum(1 for c in flying.values() if c.resource == cell.resource) >= limit:
            return
        pending.popleft()
        flying[tasks.submit(cell.kind, cell.args, cell.backend, cores)] = cell


def _wait(refs: list) -> list:
    import ray

    if not refs:
        return []
    done, _ = ray.wait(refs, num_returns=1, timeout=1.0)
    if done:  # take every other finished one too
        more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = list(dict.fromkeys([*done, *more]))
    return done


def _collect(ref, cell: Cell, on_result, pending: deque, max_attempts: int) -> Outcome | None:
    """The cell's outcome, or None when it went back into the queue for another attempt."""
    import ray
    from ray.exceptions import AuthenticationError, RayError, RayTaskError, TaskCancelledError

    try:
        value = ray.get(ref)
    except RayTaskError as exc:  # the cell's own code raised: deterministic, not retried
        return Outcome(cell, "failed", reason=_reason(exc.cause if exc.cause is not None else exc))
    except (TaskCancelledError, AuthenticationError) as exc:
        return Outcome(cell, "failed", reason=_reason(exc))
    except RayError as exc:  # lost with its node or worker: try again where the resource still is
        cell.failures.append(f"attempt {len(cell.failures) + 1}: {type(exc).__name__}: {_reason(exc)}")
        if len(cell.failures) < max_attempts:
            pending.appendleft(cell)
            return None
        return Outcome(cell, "failed", reason=f"FAILED after {max_attempts} attempts ({'; '.join(cell.failures)})")
    on_result(cell, value["result"], value["placement"])
    return Outcome(cell, "ok", value["result"], value["placement"])


def _starved(flying: dict, pending: deque, nodes: list[dict], cores: float, since: float | None,
             outcomes: list[Outcome], bar) -> float | None:
    """Fail the cells whose resource no live node offers any more (after a grace period for a rejoining node)."""
    stuck = {c.resource for c in [*flying.values(), *pending] if capacity(nodes, c.resource, cores) == 0}
    if not stuck:
        return None
    now = time.monotonic()
    if since is None or now - since < NO_NODE_GRACE_S:
        return since or now
    _cancel({r: c for r, c in flying.items() if c.resource in stuck})
    for ref in [r for r, c in flying.items() if c.resource in stuck]:
        cell = flying.pop(ref)
        outcomes.append(Outcome(cell, "failed", reason=f"no live node offers {cell.resource.name} any more"))
        bar.update(1)
    for cell in [c for c in pending if c.resource in stuck]:
        pending.remove(cell)
        outcomes.append(Outcome(cell, "failed", reason=f"no live node offers {cell.resource.name} any more"))
        bar.update(1)
    return None


def _cancel(flying: dict) -> None:
    import ray

    for ref in flying:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already finished or its node is gone: nothing to stop
            pass


def _reason(exc: BaseException) -> str:
    """The first line of an error's message (Ray's own run to many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
