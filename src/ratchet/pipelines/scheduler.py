"""The scheduler: fires due schedules by running their pipelines in this process.

    Scheduler().serve()            # what `ratchet scheduler` runs until Ctrl-C
    Scheduler().run_due()          # one pass (`ratchet scheduler --once`)

Any number of schedulers may be started against one store; only the holder of the lease
named ``"scheduler"`` fires. The holder renews the lease while it runs (also during a long
pipeline run) and releases it when it stops; if it dies, another takes over once the lease
expires (``lease_ttl_s``).

Each firing is claimed with a compare-and-swap on the schedule's ``next_run_at``, so it
happens exactly once even if two schedulers ever both believed they held the lease.
Claiming moves ``next_run_at`` to the first cron time after *now*: firings missed while no
scheduler was running collapse into one run.

A pipeline that fails (or cannot be loaded) is logged and recorded; the scheduler goes on.
Pipelines are imported once per process: restart the scheduler after changing their code.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ratchet.clock import now_ms, to_ms
from ratchet.errors import InvalidInput, NotFound, RatchetError, StepFailed
from ratchet.ids import new_id
from ratchet.pipelines.schedules import next_run_time

if TYPE_CHECKING:
    from ratchet.store.schedule_store import Lease, Schedule
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import Workspace

LEASE_NAME = "scheduler"
MAX_ERROR_CHARS = 2_000

logger = logging.getLogger("ratchet.scheduler")


@dataclass(frozen=True)
class Fired:
    """One firing of a schedule. Times are epoch milliseconds (UTC)."""

    schedule: str
    schedule_id: str
    pipeline_ref: str
    scheduled_for: int  # the cron time that came due
    fired_at: int  # the scheduler's "now" when it claimed the firing
    next_run_at: int  # the cron time after that
    pipeline_run_id: str | None  # None when the run could not start (e.g. import error)
    status: str  # "finished" | "failed"
    error: str | None = None


def default_holder() -> str:
    """``host:pid:random``: unique per scheduler, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"


class Scheduler:
    """Fires due schedules while it holds the ``"scheduler"`` lease."""

    def __init__(
        self,
        workspace: Workspace | None = None,
        holder: str | None = None,
        lease_ttl_s: float = 30,
        poll_s: float = 1.0,
    ) -> None:
        from ratchet.workspace import resolve

        for label, value in (("lease_ttl_s", lease_ttl_s), ("poll_s", poll_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInput(f"{label}= must be a positive number of seconds, "
                                   f"got {value!r}")
        self.workspace = resolve(workspace)
        self.settings = self.workspace.settings
        self.store = self.workspace.stores.schedules
        self.holder = holder or default_holder()
        self.lease_ttl_ms = max(int(lease_ttl_s * 1000), 1)
        self.poll_s = float(poll_s)
        self._lease: Lease | None = None
        self._lease_lock = threading.Lock()

    @property
    def tracking(self) -> TrackingClient:
        """The tracking client pipeline runs are recorded through (this store)."""
        from ratchet.tracking.client import TrackingClient

        return self.workspace.client(TrackingClient)

    # ---------------------------------------------------------------- the lease
    @property
    def lease(self) -> Lease | None:
        """The lease as last acquired or renewed by this scheduler (None: not held)."""
        return self._lease

    def holds_lease(self) -> bool:
        lease = self._lease
        return lease is not None and lease.expires_at > now_ms()

    def acquire_lease(self) -> bool:
        """Take the lease, or extend it if this scheduler holds it. False: another holds it."""
        with self._lease_lock:
            lease = None
            if self._lease is not None:
                lease = self.store.renew_lease(LEASE_NAME, self.holder, self.lease_ttl_ms)
                if lease is None:
                    logger.warning("scheduler %s lost its lease", self.holder)
            if lease is None:
                lease = self.store.acquire_lease(LEASE_NAME, self.holder, self.lease_ttl_ms)
            self._lease = lease
            return lease is not None

    def release_lease(self) -> None:
        """Give the lease up so another scheduler can take over at once."""
        with self._lease_lock:
            if self._lease is not None:
                self.store.release_lease(LEASE_NAME, self.holder)
                self._lease = None

    def current_holder(self) -> Lease | None:
        """Whoever holds the lease now (None when it is free or expired)."""
        lease = self.store.get_lease(LEASE_NAME)
        return lease if lease is not None and lease.expires_at > now_ms() else None

    @contextmanager
    def _lease_kept(self) -> Iterator[None]:
        """Renew the lease in the background (every third of its time to live) while the
        body runs pipelines, which may take longer than the lease lasts."""
        done = threading.Event()
        interval = self.lease_ttl_ms / 3000

        def keep() -> None:
            while not done.wait(interval):
                try:
                    self.acquire_lease()
                except Exception:  # a database hiccup: retried at the next interval
                    logger.exception("scheduler %s could not renew its lease", self.holder)

        keeper = threading.Thread(target=keep, name="ratchet-scheduler-lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    # ---------------------------------------------------------------- firing
    def run_due(self, now: datetime | int | None = None) -> list[Fired]:
        """Fire every schedule due at ``now`` (default: the current time), if this scheduler
        holds (or can take) the lease; return what fired. ``now`` is a datetime (naive means
        UTC) or epoch milliseconds; the lease always runs on the real clock."""
        moment = now_ms() if now is None else to_ms(now)
        if not self.acquire_lease():
            return []
        due = self.store.due_schedules(moment)
        fired: list[Fired] = []
        if not due:
            return fired
        with self._lease_kept():
            for index, item in enumerate(due):
                if not self.holds_lease():
                    logger.warning("scheduler %s no longer holds the lease; leaving %d due "
                                   "schedule(s) to the holder", self.holder, len(due) - index)
                    break
                result = self._fire(item, moment)
                if result is not None:
                    fired.append(result)
        return fired

    def _fire(self, item: Schedule, moment: int) -> Fired | None:
        try:
            following = next_run_time(item.cron, moment)
        except RatchetError as exc:  # a stored expression this croniter no longer accepts
            logger.error("schedule %r has an unusable cron expression: %s", item.name, exc)
            return None
        if not self.store.claim_firing(item.schedule_id, expected_next_run_at=item.next_run_at,
                                       next_run_at=following, now=moment):
            return None  # fired by another scheduler, disabled or redefined meanwhile
        try:  # run what the schedule says now (replace= may have changed its params)
            current = self.store.get_schedule_by_id(item.schedule_id)
        except NotFound:  # deleted in between
            return None
        logger.info("schedule %r: running %s (due %s)", item.name, current.pipeline_ref,
                    item.next_run_at)
        run_id, status, error = self._run(current)
        if run_id is not None:
            self.store.record_pipeline_run(item.schedule_id, run_id)
        return Fired(schedule=item.name, schedule_id=item.schedule_id,
                     pipeline_ref=current.pipeline_ref, scheduled_for=item.next_run_at,
                     fired_at=moment, next_run_at=following, pipeline_run_id=run_id,
                     status=status, error=error)

    def _run(self, item: Schedule) -> tuple[str | None, str, str | None]:
        """Run the pipeline; (pipeline run id, status, error). Never raises an Exception."""
        from ratchet.pipelines.pipeline_definition import load_pipeline
        from ratchet.pipelines.runner import PipelineRunner

        try:
            pipeline = load_pipeline(item.pipeline_ref)
            # Pipeline.run(), but recorded in this scheduler's store whatever the defaults.
            result = PipelineRunner(pipeline, item.params, executor=item.executor,
                                    schedule_id=item.schedule_id, workspace=self.workspace).run()
        except StepFailed as exc:
            logger.error("schedule %r: pipeline run %s failed in step %r: %s", item.name,
                         exc.run_id, exc.step, exc)
            return exc.run_id, "failed", _short(str(exc))
        except Exception as exc:  # a user's pipeline must not stop the scheduler
            logger.exception("schedule %r: %s could not run", item.name, item.pipeline_ref)
            return (getattr(exc, "run_id", None), "failed",
                    _short(f"{type(exc).__name__}: {exc}"))
        status = str(getattr(result, "status", "finished"))
        logger.info("schedule %r: pipeline run %s %s", item.name, result.run_id, status)
        return result.run_id, status, None

    # ---------------------------------------------------------------- serving
    def serve(
        self,
        stop_event: threading.Event | None = None,
        max_iterations: int | None = None,
        on_fire: Callable[[Fired], Any] | None = None,
    ) -> int:
        """Poll every ``poll_s`` seconds and fire what is due until ``stop_event`` is set
        (or after ``max_iterations`` polls); release the lease on the way out. A stop request
        takes effect after the pipeline running at that moment. Returns how many fired."""
        if max_iterations is not None and (not isinstance(max_iterations, int)
                                           or max_iterations < 1):
            raise InvalidInput(f"max_iterations= must be a positive integer, "
                               f"got {max_iterations!r}")
        stop = stop_event or threading.Event()
        count = 0
        iterations = 0
        try:
            while not stop.is_set():
                try:
                    fired = self.run_due()
                except RatchetError:
                    raise
                except Exception:  # the store was unreachable: log, keep polling
                    logger.exception("scheduler %s: poll failed; retrying", self.holder)
                    fired = []
                for item in fired:
                    count += 1
                    if on_fire is not None:
                        on_fire(item)
                iterations += 1
                if max_iterations is not None and iterations >= max_iterations:
                    break
                stop.wait(self.poll_s)
        finally:
            try:
                self.release_lease()
            except Exception:  # the store is gone: the lease expires by itself
                logger.exception("scheduler %s could not release its lease", self.holder)
        return count


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
