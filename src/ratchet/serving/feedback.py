"""Ground truth posted to ``/feedback``: checked, scoped to the deployment, then stored.

A body is refused whole (422, each offending item named by index) when it is malformed:
a request id outside the server's request-id pattern, a row out of range, a value that is
not a finite number, a boolean or a short string (no NUL, no lone surrogate), or more than
``max_items`` items (413). A well-formed item is then *rejected on its own* (the others are
recorded; the response lists ``{"index", "reason"}``) when

- ``unknown``: this deployment never logged that (request_id, row) within the feedback
  window (default 30 days): invented ids are never stored, and one deployment's client
  cannot label another's predictions;
- ``label``: the model is a classifier and the value matches none of its classes
  (matched leniently, as the performance monitor does: ``1``, ``1.0``, ``"1"``, ``True``
  are the class ``1``).

A body none of whose items is recorded is refused: 404 when every item is unknown, else
422, with the same ``detail``. Rejected items are counted in
``ratchet_feedback_rejected{deployment, reason}``.

Which rows were served is read from the prediction log: this process's buffer, then the
log files of the window, newest first, one single-threaded DuckDB query for the last day,
then for twice as many hours each time (5 queries cover 31 days), until every pair is found (a server-made UUIDv7 id names its hour: that one is read
first). One body's read runs at a time per process. The cost grows with the files in the
window: a body of invented ids reads all of them (~2 s for 30 days of 1,440 files and
720,000 rows on the development VM). A prediction answered by a sibling worker may still sit in that
worker's buffer: with several workers, unknown items are looked up once more after one
flush interval. Across replicas there is no such wait: feedback sent within a second of its
prediction to another replica may come back ``unknown`` (send it again).
"""

from __future__ import annotations

import asyncio
import math
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import BadRequest
from ratchet.packaging.labels import class_matcher

if TYPE_CHECKING:
    from ratchet.config import Settings
    from ratchet.serving.prediction_log import PredictionLog

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # as the server accepts X-Request-ID
MAX_ROW = 2**31 - 1  # rows are 32-bit integers in the log and the store
MAX_INT = 2**63 - 1
DAY_S = 86_400.0
_UUID7 = re.compile(r"^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$")
_FIRST_HOURS = 24  # then 48, 96, ...: 5 queries read 31 days


@dataclass(frozen=True)
class FeedbackPolicy:
    max_items: int = 10_000          # items per body; more is a 413
    max_text_chars: int = 1_000      # a string label's length
    window_s: float = 30 * DAY_S     # how far back a labelled prediction may lie


@dataclass(frozen=True)
class FeedbackItem:
    index: int
    request_id: str
    row: int
    value: Any


@dataclass(frozen=True)
class FeedbackOutcome:
    recorded: int
    rejected: list[dict[str, Any]]   # {"index", "reason", "msg"}

    def status_and_body(self) -> tuple[int, dict[str, Any]]:
        if self.recorded == 0 and self.rejected:
            first = self.rejected[0]["msg"]
            more = len(self.rejected) - 1
            # Nothing but unknown predictions: not found; any wrong label: invalid.
            status = 404 if all(r["reason"] == "unknown" for r in self.rejected) else 422
            return status, {"error": "no feedback recorded: " + first
                         + (f" (and {more} more)" if more else ""),
                         "detail": [{"loc": ["body", "feedback", r["index"]], "msg": r["msg"],
                                     "type": r["reason"]} for r in self.rejected]}
        body: dict[str, Any] = {"recorded": self.recorded}
        if self.rejected:
            body["rejected"] = self.rejected
        return 200, body


# ----------------------------------------------------------------------------- parsing
def parse_items(payload: Any, policy: FeedbackPolicy | None = None) -> list[FeedbackItem]:
    """The items of a ``/feedback`` body; :class:`BadRequest` naming every bad item."""
    policy = policy or FeedbackPolicy()
    if not isinstance(payload, dict):
        raise BadRequest('expected {"request_id", "row", "value"} or {"feedback": [...]}')
    listed = "feedback" in payload
    items = payload.get("feedback") if listed else [payload]
    if listed and set(payload) != {"feedback"}:
        raise BadRequest(f"unknown top-level field(s): "
                         f"{', '.join(sorted(map(str, set(payload) - {'feedback'})))}")
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback: expected a non-empty list of {request_id, row, value}")
    if len(items) > policy.max_items:
        raise BadRequest(f"feedback: {len(items)} items; the limit is {policy.max_items} per "
                         "request, send them in several requests", status=413)
    out, problems = [], []
    for i, item in enumerate(items):
        loc: list[Any] = ["body", "feedback", i] if listed else ["body"]
        if not isinstance(item, dict):
            problems.append({"loc": loc, "msg": "expected an object", "type": "type"})
            continue
        unknown = sorted(str(k) for k in set(item) - {"request_id", "row", "value"})
        rid, row, value = item.get("request_id"), item.get("row", 0), item.get("value")
        if unknown:
            problems.append({"loc": loc, "msg": f"item {i}: unknown field(s): "
                             f"{', '.join(unknown)}", "type": "extra"})
        if not isinstance(rid, str) or not REQUEST_ID.match(rid):
            problems.append({"loc": [*loc, "request_id"], "msg": f"item {i}: expected the "
                             "request id (the X-Request-ID of the prediction: 1-64 letters, "
                             "digits, '.', '_', ':' or '-')", "type": "type"})
        if isinstance(row, float) and math.isfinite(row) and row.is_integer():
            row = int(row)  # JSON Schema's integers include 3.0
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW:
            problems.append({"loc": [*loc, "row"], "msg": f"item {i}: expected a row number "
                             f"from 0 to {MAX_ROW}", "type": "type"})
        reason = "value is missing" if "value" not in item else _value_problem(value, policy)
        if reason is not None:
            problems.append({"loc": [*loc, "value"], "msg": f"item {i}: {reason}",
                             "type": "value"})
        out.append(FeedbackItem(i, rid, row, value))  # type: ignore[arg-type]
    if problems:
        raise BadRequest(f"feedback is not valid: {problems[0]['msg']}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         problems=problems)
    return out


def _value_problem(value: Any, policy: FeedbackPolicy) -> str | None:
    """Why ``value`` cannot be a label, or None: finite numbers, booleans, short text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -MAX_INT <= value <= MAX_INT else \
            f"the integer {value:.3e} is out of range (at most 2**63 - 1 in magnitude)"
    if isinstance(value, float):
        return None if math.isfinite(value) else \
            f"{value} is not a finite number (JSON has no Infinity or NaN)"
    if isinstance(value, str):
        if len(value) > policy.max_text_chars:
            return f"the label is {len(value)} characters; the limit is {policy.max_text_chars}"
        if "\x00" in value:
            return "the label contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "the label contains a lone surrogate (not valid Unicode text)"
        return None
    return "expected the true label or value: a finite number, a boolean or a string"


# ----------------------------------------------------------------------------- labels
def label_matcher(classes: Sequence[Any]) -> Callable[[Any], bool]:
    """Whether a value names one of ``classes``, by the rule the performance monitor
    uses when it joins labels to predictions (``ratchet.packaging.labels``)."""
    match = class_matcher(classes)
    return lambda value: match(value) is not None


# ----------------------------------------------------------------------------- scoping
def served(items: Sequence[FeedbackItem], *, deployment: str, settings: Settings,
           log: PredictionLog | None, window_s: float, now_ms: int) -> set[int]:
    """The indices of ``items`` whose (request_id, row) ``deployment`` logged within the
    last ``window_s``: this process's buffer first, then the log files."""
    from ratchet.serving.prediction_log import LogStorage, hour_dir
    from ratchet.serving.prediction_query import log_hours, logged_rows

    wanted: dict[tuple[str, int], list[int]] = {}
    for item in items:
        wanted.setdefault((item.request_id, item.row), []).append(item.index)
    found: set[tuple[str, int]] = set()
    ids = {rid for rid, _ in wanted}
    if log is not None:
        found |= log.rows_of(deployment, ids) & wanted.keys()
    since_ms = now_ms - int(window_s * 1000)
    storage = LogStorage(settings.artifacts_uri)
    missing = {rid for rid, row in wanted if (rid, row) not in found}
    # A server-made id names the millisecond it was made, when the request arrived: look
    # in that hour (and the one before, for a request made at its edge) first.
    stamped = {rid: ms for rid in missing if (ms := _uuid7_ms(rid)) is not None
               and since_ms <= ms <= now_ms + 60_000}
    if stamped:
        hours = {hour_dir(max(ms - delta, 0)) for ms in stamped.values()
                 for delta in (0, 60_000)}
        found |= logged_rows(storage, deployment, set(stamped), since_ms, hours) & \
            wanted.keys()
        missing = {rid for rid, row in wanted if (rid, row) not in found}
    # The rest from the newest hours back (labels mostly follow their predictions
    # closely), in doubling chunks, until every pair is found or the window is read.
    newest_first = log_hours(storage, deployment, since_ms) if missing else []
    start, size = 0, _FIRST_HOURS
    while missing and start < len(newest_first):
        chunk = set(newest_first[start:start + size])
        found |= logged_rows(storage, deployment, missing, since_ms, chunk) & wanted.keys()
        missing = {rid for rid, row in wanted if (rid, row) not in found}
        start, size = start + size, size * 2
    return {index for key in found for index in wanted[key]}


def _uuid7_ms(request_id: str) -> int | None:
    if not _UUID7.match(request_id):
        return None
    return int(request_id[:12], 16)


# ----------------------------------------------------------------------------- recording
class FeedbackDesk:
    """Takes ``/feedback`` bodies for one served deployment."""

    def __init__(self, deployment: str, settings: Settings, *, log: PredictionLog | None,
                 classes: Callable[[], list[Any] | None], recheck_after_s: float,
                 registry: Any = None, policy: FeedbackPolicy | None = None) -> None:
        self.deployment = deployment
        self.settings = settings
        self.log = log
        self.classes = classes
        self.recheck_after_s = recheck_after_s
        self.policy = policy or FeedbackPolicy()
        self._store: Any = None
        self._reading = asyncio.Lock()
        self.rejected_counter: Any = None
        if registry is not None:
            from prometheus_client import Counter

            self.rejected_counter = Counter(
                "ratchet_feedback_rejected", "Feedback items not recorded, by reason "
                "(unknown: no such logged prediction of this deployment; label: not one of "
                "the model's classes).", ["deployment", "reason"], registry=registry)

    async def take(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for a decoded ``/feedback`` body; BadRequest if malformed."""
        from starlette.concurrency import run_in_threadpool

        items = parse_items(payload, self.policy)
        rejected: dict[int, tuple[str, str]] = {}
        # First whether the prediction exists (an invented id is "unknown", whatever its
        # label), then whether the label can be the model's.
        async with self._reading:  # one log read at a time: bodies queue, the server not
            known = await run_in_threadpool(self._served, items)
        unknown = [item for item in items if item.index not in known]
        if unknown and self.recheck_after_s > 0:
            await asyncio.sleep(self.recheck_after_s)  # a sibling worker's buffer
            async with self._reading:
                known |= await run_in_threadpool(self._served, unknown)
        window_days = self.policy.window_s / DAY_S
        classes = self.classes()
        matches = label_matcher(classes) if classes else None
        for item in items:
            if item.index not in known:
                rejected[item.index] = ("unknown", f"item {item.index}: deployment "
                                        f"{self.deployment!r} logged no prediction with "
                                        f"request_id {item.request_id!r} and row {item.row} "
                                        f"in the last {window_days:g} days")
            elif matches is not None and not matches(item.value):
                rejected[item.index] = ("label", f"item {item.index}: the label "
                                        f"{item.value!r} is not one of the model's classes "
                                        f"{classes}")
        accepted = [item for item in items if item.index not in rejected]
        recorded = await run_in_threadpool(self._record, accepted) if accepted else 0
        reasons = [{"index": i, "reason": reason, "msg": msg}
                   for i, (reason, msg) in sorted(rejected.items())]
        if self.rejected_counter is not None:
            for r in reasons:
                self.rejected_counter.labels(self.deployment, r["reason"]).inc()
        return FeedbackOutcome(recorded, reasons).status_and_body()

    def _served(self, items: list[FeedbackItem]) -> set[int]:
        from ratchet.clock import now_ms

        if not items:
            return set()
        return served(items, deployment=self.deployment, settings=self.settings, log=self.log,
                      window_s=self.policy.window_s, now_ms=now_ms())

    def _record(self, items: list[FeedbackItem]) -> int:
        if self._store is None:
            from ratchet.store.database import open_database
            from ratchet.store.deployment_store import DeploymentStore

            self._store = DeploymentStore(open_database(self.settings.db_url))
        return int(self._store.record_feedback(
            (item.request_id, item.row, self.deployment, item.value) for item in items))


_DESKS: weakref.WeakKeyDictionary[Any, FeedbackDesk] = weakref.WeakKeyDictionary()


def desk_for(server: Any) -> FeedbackDesk:
    """The desk of a running server (``ratchet.serving.app._Server``), made on first use."""
    desk = _DESKS.get(server)
    if desk is None:
        def classes() -> list[Any] | None:
            table = server.watcher.table
            if table is None:
                return None
            found: list[Any] = []
            for route in table.all_routes:
                if route.model.classes is None:
                    return None  # not all classifiers: no class check
                found += [c for c in route.model.classes if c not in found]
            return found

        import os

        config = server.config
        interval = config.log_flush_interval_s if config.log_flush_interval_s > 0 else 1.0
        # ``ratchet serve --workers N`` (N > 1) shares metrics through this directory: the
        # sign that a sibling may hold the prediction in its buffer.
        siblings = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        desk = _DESKS[server] = FeedbackDesk(
            server.deployment, server.settings, log=server.log, classes=classes,
            recheck_after_s=min(interval, 5.0) + 0.25 if siblings else 0.0,
            registry=server.metrics.registry)
    return desk
