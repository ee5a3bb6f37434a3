"""Ground truth for predictions: the rules by which an item is checked, scoped to the
deployment and stored. ``DeploymentClient.record_feedback`` applies them; the
``/feedback`` route (``routes/feedback.py``) parses a body and calls it.

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
first). One body's read runs at a time per server process. The cost grows with the files in the
window: a body of invented ids reads all of them (~2 s for 30 days of 1,440 files and
720,000 rows on the development VM). A prediction answered by a sibling worker may still sit in that
worker's buffer: with several workers, unknown items are looked up once more after one
flush interval. Across replicas there is no such wait: feedback sent within a second of its
prediction to another replica may come back ``unknown`` (send it again).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import BadRequest, InvalidInput, NotFound
from ratchet.packaging.labels import class_matcher

if TYPE_CHECKING:
    from ratchet.serving.prediction_log import PredictionLog
    from ratchet.workspace import Workspace

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

    @property
    def unknown(self) -> set[int]:
        """The indices of the items rejected as ``unknown`` (no such logged prediction)."""
        return {r["index"] for r in self.rejected if r["reason"] == "unknown"}

    def merged(self, retry: FeedbackOutcome) -> FeedbackOutcome:
        """This outcome with the items ``retry`` took again (its ``unknown`` ones, looked
        up once more) replaced by what ``retry`` says of them."""
        again = self.unknown
        rejected = [r for r in self.rejected if r["index"] not in again] + retry.rejected
        return FeedbackOutcome(self.recorded + retry.recorded,
                               sorted(rejected, key=lambda r: int(r["index"])))

    def status_and_body(self) -> tuple[int, dict[str, Any]]:
        """The HTTP answer: 200 when anything was recorded; a body none of whose items was
        recorded is refused, ``NotFound`` (404) when every item is unknown, else
        ``InvalidInput`` (422), with each item's reason in ``detail``."""
        if self.recorded == 0 and self.rejected:
            first = self.rejected[0]["msg"]
            more = len(self.rejected) - 1
            # Nothing but unknown predictions: not found; any wrong label: invalid.
            status = (NotFound.http_status if len(self.unknown) == len(self.rejected)
                      else InvalidInput.http_status)
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
def served(items: Sequence[FeedbackItem], *, deployment: str, workspace: Workspace,
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
    storage = LogStorage(workspace.settings.artifacts_uri)
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
