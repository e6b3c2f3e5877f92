"""Connecting to a Ray cluster for one command, and what the driver knows about it.

`--cluster auto` joins the cluster this shell belongs to (`ray start` ran on this host, or
`RAY_ADDRESS` is set); `--cluster HOST:PORT` joins that head node; `--cluster local` starts a real
single-node Ray instance for this command alone (not Ray's removed `local_mode`) and stops it at
the end. A local instance starts without the dashboard and with Ray's token authentication
(`RAY_AUTH_MODE=token`, a fresh random `RAY_AUTH_TOKEN` in this process's environment, inherited
by the processes Ray starts and written nowhere), unless the caller set `RAY_AUTH_MODE` itself.
Ray is an optional dependency (`pip install 'ssdconvert[cluster]'`): it is imported here, when a
session opens, and never by `ssdconvert --help` or a command run without `--cluster`.
"""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ssdconvert.errors import SsdConvertError

INSTALL_HINT = "--cluster needs Ray: pip install 'ssdconvert[cluster]' (ray==2.60.0, as constraints.txt pins)"


HIDDEN = ("memory", "object_store_memory")  # resources every node has; not what a cell asks for


class ClusterError(SsdConvertError):
    """The cluster cannot be reached or cannot run what was asked."""


@dataclass
class Session:
    """An open connection to a Ray cluster, for the commands that send it work."""

    address: str  # what --cluster said: local, auto or HOST:PORT
    transport: str = "auto"  # auto | shared | object-store (SSDCONVERT_CLUSTER_TRANSPORT)
    say: Callable[[str], None] = field(default=lambda line: None)
    _shared: dict[str, bool] = field(default_factory=dict)

    def nodes(self) -> list[dict]:
        """The live nodes as `ray.nodes()` lists them (NodeID, NodeManagerHostname, Resources, Alive)."""
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def describe(self) -> list[str]:
        """One line per live node: host, node id and the resources it advertises."""
        lines = []
        for node in self.nodes():
            shown = {k: v for k, v in node.get("Resources", {}).items() if k not in HIDDEN and ":" not in k}
            text = ", ".join(f"{k} {v:g}" for k, v in sorted(shown.items()))
            lines.append(f"{node.get('NodeManagerHostname')} (node {node['NodeID'][:8]}): {text}")
        return lines

    def shares(self, folder: Path) -> bool:
        """True if every live node sees `folder` at the driver's path (see transport.py)."""
        if self.transport != "auto":
            return self.transport == "shared"
        key = str(folder.resolve())
        if key not in self._shared:
            self._shared[key] = self._probe(folder.resolve())
            where = "a path every node sees" if self._shared[key] else "Ray's object store"
            self.say(f"cluster: {folder.resolve()} travels by {where}")
        return self._shared[key]

    def _probe(self, folder: Path) -> bool:
        from ssdconvert.cluster import tasks, transport

        probe = transport.write_probe(folder)
        if probe is None:
            return False
        path, token = probe
        try:
            return all(tasks.on_each_node(self, "probe", str(path), token))
        finally:
            path.unlink(missing_ok=True)

    def put(self, value: Any):
        import ray

        return ray.put(value)


_current: list[Session] = []


def current() -> Session:
    """The session a `connected` block opened (the cluster engine's functions run inside one)."""
    if not _current:
        raise ClusterError("no cluster session is open: use ssdconvert.cluster.connected(ADDRESS)")
    return _current[-1]


@contextmanager
def connected(address: str, say: Callable[[str], None] = lambda line: None,
              object_store_memory: int | None = None) -> Iterator[Session]:
    """Join (or, with `local`, start) a Ray cluster for the duration of the block."""
    if _current and _current[-1].address == address:
        yield _current[-1]
        return
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    if address == "local" and "RAY_AUTH_MODE" not in os.environ:  # before Ray reads its config
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    ray = _import_ray()
    transport = os.environ.get("SSDCONVERT_CLUSTER_TRANSPORT", "auto")
    from ssdconvert.cluster.transport import TRANSPORTS

    if transport not in TRANSPORTS:
        raise ClusterError(f"SSDCONVERT_CLUSTER_TRANSPORT={transport!r}: expected one of {', '.join(TRANSPORTS)}")
    started_here = not ray.is_initialized()
    try:
        if started_here:
            _init(ray, address, object_store_memory)
        session = Session(address, transport, say)
        _current.append(session)
        try:
            for line in session.describe():
                say(f"cluster node: {line}")
            yield session
        finally:
            _current.pop()
            if started_here:
                ray.shutdown()
    finally:
        for key, value in saved.items():  # a local instance's token lives as long as the instance
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


def _reload_auth_settings() -> None:
    """Make an already imported Ray see RAY_AUTH_MODE/RAY_AUTH_TOKEN (it reads them once, into its config and
    token cache: ray==2.60.0 `_private/authentication_test_utils.py` refreshes them the same way)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # another Ray layout: it reads the environment when it starts
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _init(ray, address: str, object_store_memory: int | None) -> None:
    common = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    try:
        if address == "local":
            _reload_auth_settings()
            ray.init(include_dashboard=False, object_store_memory=object_store_memory, _node_ip_address="127.0.0.1",
                     **common)
        else:
            ray.init(address=address, **common)
    except ConnectionError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    except Exception as exc:  # Ray raises plain RuntimeError/ValueError for bad addresses and auth
        raise ClusterError(f"cannot join the Ray cluster at {address!r}: {str(exc).strip().splitlines()[0]}") from None
