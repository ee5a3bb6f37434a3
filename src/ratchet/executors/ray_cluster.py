"""Ray's connection: which cluster, how to reach it, and what it looks like.

Where tasks run:
- ``RayExecutor("10.0.0.5:6379")`` or ``RAY_ADDRESS`` connects to an existing cluster;
  ``shutdown()`` only disconnects from it.
- With neither, a private single-machine cluster bound to 127.0.0.1 (no dashboard, no
  usage stats, a 200 MB object store) is started on first use and stopped when the last
  executor using it shuts down.

Ray allows one cluster connection per process, so executors in one process share it
(:func:`acquire` / :func:`release`): the connection is opened by the first executor that
needs it and closed when the last one shuts down. A connection the user opened with
``ray.init`` is used and never closed. Ray Client addresses (``ray://``) are not
supported: the driver runs on the cluster and gives the GCS address (``host:6379``).

A wrong address fails within seconds (``ray.init`` would retry it for minutes). When
every node is on this machine the executor hands workers the driver's ``sys.path``
(:func:`driver_pythonpath`).

Authentication is Ray's: the local cluster uses Ray's default (token auth, the token
kept in ``~/.ray/auth_token``); for a cluster started with tokens, set
``RAY_AUTH_MODE=token`` in the driver's environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ratchet.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ratchet-mlops[ray]'"
LOCAL_OBJECT_STORE_BYTES = 200_000_000
_LOOPBACK = "127.0.0.1"
_CONNECT_CHECK_S = 5.0


def import_ray() -> Any:
    """The ``ray`` module, or ``ConfigError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"the Ray executor needs Ray, which is not installed: "
                          f"{INSTALL_HINT}") from exc
    return ray


def acquire(target: str | None, num_cpus: int | None) -> str:
    """Connect this process to ``target`` (an address; None: a private local cluster),
    or share the connection it already has; returns the cluster's address. Each call
    is paired with one :func:`release`."""
    ray = import_ray()
    if target is not None and target.startswith("ray://"):
        raise ConfigError(
            f"{target}: Ray Client addresses (ray://) are not supported. Run the "
            "driver on the cluster (e.g. with `ray job submit`) and give the "
            "executor the cluster's GCS address (host:6379), or set RAY_ADDRESS.")
    if target is not None and num_cpus is not None:
        log.warning("num_cpus=%s is ignored: it sizes a local cluster that ratchet "
                    "starts, and this executor connects to %s", num_cpus, target)
    return _CONNECTION.acquire(ray, target, num_cpus)


def release() -> None:
    """Give back one :func:`acquire`; the last one out closes a connection ratchet opened
    (and stops the local cluster it started)."""
    _CONNECTION.release(import_ray())


class _Connection:
    """Ray's one connection per process, shared by executors and reference-counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.opened_by_us = False
        self.address: str | None = None

    def acquire(self, ray: Any, target: str | None, num_cpus: int | None) -> str:
        with self.lock:
            if ray.is_initialized():
                current = self.address or _current_address(ray)
                if target not in (None, "auto") and not _same_address(target, current):
                    raise ConfigError(
                        f"cannot connect to the Ray cluster at {target}: this process is "
                        f"already connected to {current}, and Ray allows one cluster per "
                        "process. Shut the other executor down (or call ray.shutdown()) "
                        "first.")
                self.address = current or target or "(unknown address)"
            else:
                self.address = _init(ray, target, num_cpus)
                self.opened_by_us = True
            self.users += 1
            return self.address

    def release(self, ray: Any) -> None:
        with self.lock:
            self.users = max(self.users - 1, 0)
            if self.users == 0:
                if self.opened_by_us and ray.is_initialized():
                    ray.shutdown()  # also stops the processes of a cluster ray.init started
                self.opened_by_us = False
                self.address = None


_CONNECTION = _Connection()


def _init(ray: Any, target: str | None, num_cpus: int | None) -> str:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common: dict[str, Any] = {"logging_level": logging.WARNING,
                              "configure_logging": True}
    if target is None:
        with _loopback_only(ray):
            # "local": a new cluster even if another one runs on this machine.
            context = ray.init(address="local", _node_ip_address=_LOOPBACK,
                               include_dashboard=False, num_cpus=num_cpus,
                               object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        return str(context.address_info.get("gcs_address") or context.address_info["address"])
    _check_reachable(target)
    try:
        if _is_loopback_address(target):
            with _loopback_only(ray):
                ray.init(address=target, **common)
        else:
            ray.init(address=target, **common)
    except ConnectionError as exc:
        if _is_auth_failure(exc):
            raise ConfigError(
                f"the Ray cluster at {target} requires token authentication: set "
                "RAY_AUTH_MODE=token in this process's environment (Ray reads the token "
                "from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token).") from exc
        raise
    return _current_address(ray) or target


def _is_auth_failure(exc: BaseException) -> bool:
    """Ray reports a rejected token only inside the text of the errors it chains."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if "AuthenticationError" in type(current).__name__ or "InvalidAuthToken" in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """Keep Ray on 127.0.0.1 while it resolves this node's address.

    On Linux Ray replaces 127.0.0.1/localhost by the machine's network address (so that
    other nodes could join), which would bind its servers to that interface, or, when
    joining a cluster listening on loopback only, make ``ray.init`` wait forever on an
    address nobody listens on. Ray's single-machine mode (its default on macOS/Windows,
    the constant below) keeps 127.0.0.1; it is only consulted while connecting."""
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray layout we do not know: rely on its defaults
        yield
        return
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _split_host_port(address: str) -> tuple[str, int] | None:
    if "://" in address or address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or _LOOPBACK, int(port)


def _is_loopback_address(address: str) -> bool:
    parsed = _split_host_port(address)
    if parsed is None:
        return False
    host = parsed[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_reachable(address: str) -> None:
    """Fail fast on a wrong address: ``ray.init`` retries an unreachable one for minutes."""
    parsed = _split_host_port(address)
    if parsed is None:  # ray://, auto: Ray's own resolution
        return
    try:
        with socket.create_connection(parsed, timeout=_CONNECT_CHECK_S):
            pass
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc}). Start one with "
            "`ray start --head`, or fix the executor address / RAY_ADDRESS.") from exc


def _same_address(a: str, b: str | None) -> bool:
    if b is None:
        return False

    def norm(address: str) -> str:
        address = address.removeprefix("ray://")
        parsed = _split_host_port(address)
        if parsed is None:
            return address
        host = _LOOPBACK if parsed[0] == "localhost" else parsed[0]
        return f"{host}:{parsed[1]}"

    return norm(a) == norm(b)


def _current_address(ray: Any) -> str | None:
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # client mode and older Rays do not expose it
        return None


def node_resources(ray: Any) -> list[dict[str, float]]:
    """Each live node's resources (``CPU``, ``GPU``, ``memory``, ...)."""
    return [dict(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]


def cluster_is_on_this_machine(ray: Any, target: str | None) -> bool:
    """Whether every live node runs on this machine (workers can use the driver's paths)."""
    if target is None:
        return True
    local = {_LOOPBACK, "::1", "localhost"}
    if "://" not in target:  # a driver joins through a node on its own machine
        with suppress(Exception):
            local.add(str(ray.util.get_node_ip_address()))
    addresses = {node.get("NodeManagerAddress") for node in ray.nodes() if node.get("Alive")}
    return bool(addresses) and addresses <= local


def driver_pythonpath() -> str:
    """The driver's ``sys.path`` as a ``PYTHONPATH`` value (existing entries, absolute)."""
    entries: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)  # "" is the current directory
        if path not in entries and os.path.exists(path):
            entries.append(path)
    return os.pathsep.join(entries)
