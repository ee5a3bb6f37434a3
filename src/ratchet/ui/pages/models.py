"""The dashboard's model registry pages: models, versions, aliases and their history,
lineage down to datasets and the commit, and moving an alias.

Everything is read through ``RegistryClient`` (what ``ratchet models`` uses); an alias
moved here goes through ``RegistryClient.set_alias`` like ``ratchet models alias set``, so
it is one more recorded alias event, with the signed-in user as its actor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ratchet.clock import now_ms, to_ms
from ratchet.errors import InvalidInput, NotFound
from ratchet.server.permissions import declare
from ratchet.ui.access import caller, can, require, visible
from ratchet.ui.templating import render

if TYPE_CHECKING:
    from ratchet.registry.client import RegistryClient
    from ratchet.store import AliasEvent, ModelVersion
    from ratchet.workspace import Workspace

# Tag the continuous-training gate writes on the versions it judged (ratchet.ct.controller).
IMPORTANCE_TAG = "ratchet.importance"
VERSIONS_SHOWN = 200  # newest versions in the table unless ?versions=all
TIMELINE_WIDTH = 900  # SVG user units of the alias timeline


class AliasMove(BaseModel):
    """``POST /ui/api/models/alias``: point ``alias`` of model ``name`` at ``version``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=1000)
    alias: str = Field(min_length=1, max_length=1000)
    version: int = Field(ge=1, strict=True)
    reason: str | None = Field(default=None, max_length=4000)


@dataclass(frozen=True)
class Importance:
    """The gate's permutation-importance tag: top features, most important first."""

    features: tuple[str, ...]
    holdout: str | None


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def registry() -> RegistryClient:
        from ratchet.registry.client import RegistryClient

        return workspace.client(RegistryClient)

    @router.get("/ui/models", openapi_extra=declare("read"))
    def models(request: Request) -> Any:
        found = visible(request, "model", registry().list_models(), lambda m: m.name)
        return render(request, "models/list.html", section="models", models=found)

    @router.post("/ui/api/models/alias", openapi_extra=declare("write"))
    def move_alias(request: Request, move: AliasMove) -> Any:
        require(request, "write", "model", move.name)
        event = registry().set_alias(move.name, move.alias, move.version,
                                     reason=move.reason or None, actor=caller(request).name)
        return {"name": event.name, "alias": event.alias, "from_version": event.from_version,
                "to_version": event.to_version, "actor": event.actor, "at": event.at}

    # Last: ``{name:path}`` would otherwise swallow more specific paths.
    @router.get("/ui/models/{name:path}", openapi_extra=declare("read"))
    def model(request: Request, name: str, version: str | None = None,
              alias: str | None = None, at: str | None = None,
              versions: str | None = None) -> Any:
        require(request, "read", "model", name)
        if version is not None:
            return _version_page(request, workspace, registry(), name, version)
        client = registry()
        found = client.get_model(name)
        every = client.list_versions(name)
        shown = every if versions == "all" else every[-VERSIONS_SHOWN:]
        history = client.alias_history(name)
        known_aliases = sorted({e.alias for e in history})
        answer = _alias_at(client, name, alias, at, history, known_aliases)
        return render(
            request, "models/model.html", section="models", model=found,
            versions=[_version_row(mv) for mv in reversed(shown)], total=len(every),
            history=list(reversed(history)), aliases=known_aliases,
            timeline=_timeline(history), answer=answer,
            may_move=can(request, "write", "model", found.name),
            choices=[mv.version for mv in reversed(every)])

    return router


# ----------------------------------------------------------------------------- a version
def _version_page(request: Request, workspace: Workspace, client: RegistryClient,
                  name: str, text: str) -> Any:
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"version must be a positive whole number, got {text!r}")
    mv = client.get_version(name, int(text))  # NotFound: no such model or version
    try:
        run = client.lineage(f"models:/{mv.name}/{mv.version}").run
    except NotFound:  # its run was purged (`ratchet gc`): the version is still shown
        run = None
    run_readable = False
    if run is not None:
        experiment = workspace.stores.tracking.experiment_name_of_run(run.run_id)
        run_readable = can(request, "read", "experiment", experiment)
    events = [e for e in client.alias_history(mv.name)
              if mv.version in (e.from_version, e.to_version)]
    return render(request, "models/version.html", section="models", mv=mv,
                  row=_version_row(mv), run=run, run_readable=run_readable,
                  events=list(reversed(events)), signature=_signature(mv),
                  libraries=sorted((mv.manifest.get("library_versions") or {}).items()))


def _version_row(mv: ModelVersion) -> dict[str, Any]:
    """What the versions table shows of one version."""
    signature = _signature(mv)
    summary = ""
    if signature is not None:
        ins, outs = signature["inputs"], signature["outputs"]
        summary = f"{len(ins)} input{'s' if len(ins) != 1 else ''}"
        if outs:
            summary += f" → {len(outs)} output{'s' if len(outs) != 1 else ''}"
    metrics = mv.manifest.get("metrics") or {}
    importance = _importance(mv.tags.get(IMPORTANCE_TAG))
    # A parsed importance tag is shown as a ranking; one in another shape stays a tag.
    tags = {k: v for k, v in mv.tags.items() if k != IMPORTANCE_TAG or importance is None}
    return {
        "mv": mv,
        "signature": summary,
        "signature_title": "" if signature is None else ", ".join(
            f"{c['name']}: {c['dtype']}" for c in signature["inputs"]),
        "metrics": sorted(metrics.items()) if isinstance(metrics, dict) else [],
        "importance": importance,
        "tags": sorted(tags.items()),
    }


def _signature(mv: ModelVersion) -> dict[str, list[dict[str, Any]]] | None:
    """The manifest's signature as plain rows, or None when the version has none."""
    from ratchet.packaging.signature import Signature

    raw = mv.manifest.get("signature")
    if raw is None:
        return None
    try:
        signature = Signature.from_dict(raw)
    except InvalidInput:  # a malformed manifest: show none rather than fail the page
        return None
    return {"inputs": [c.to_dict() for c in signature.inputs],
            "outputs": [c.to_dict() for c in signature.outputs]}


def _importance(value: str | None) -> Importance | None:
    """The ``ratchet.importance`` tag, or None when absent or not in the gate's shape (the
    raw value is then shown with the other tags)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("top_features"), list):
        return None
    holdout = parsed.get("holdout")
    return Importance(tuple(str(f) for f in parsed["top_features"]),
                      holdout if isinstance(holdout, str) else None)


# ----------------------------------------------------------------------------- aliases
def _alias_at(client: RegistryClient, name: str, alias: str | None, at: str | None,
              history: list[AliasEvent], known: list[str]) -> dict[str, Any]:
    """"Who was <alias> at time T": the form's state and, when asked, the answer of
    ``RegistryClient.version_at`` (the function behind ``ratchet models alias at``)."""
    chosen = alias if alias is not None else ("champion" if "champion" in known
                                              else (known[0] if known else ""))
    # The form starts at the present moment, to be moved back to the one in question.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    answer: dict[str, Any] = {"alias": chosen, "at": at or now, "asked": False,
                              "version": None, "event": None, "error": None}
    if at is None or alias is None:
        return answer
    answer["asked"] = True
    try:
        moment = _parse_moment(at)
        answer["version"] = client.version_at(name, alias, moment)
    except (InvalidInput, NotFound) as e:
        answer["error"] = str(e)
        return answer
    ms = to_ms(moment)
    answer["ms"] = ms
    moves = [e for e in history if e.alias == alias and e.at <= ms]
    answer["event"] = moves[-1] if moves else None
    return answer


def _parse_moment(text: str) -> datetime:
    """An ISO-8601 moment (a ``datetime-local`` input's value); no offset means UTC."""
    try:
        return datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date and time; use e.g. 2026-05-01T12:00:00 "
                           "(UTC)") from None


def _timeline(history: list[AliasEvent]) -> dict[str, Any] | None:
    """Each alias as a lane of segments (the version it pointed at, from one move to the
    next), scaled to the SVG's width: the history at a glance."""
    if not history:
        return None
    start, end = history[0].at, max(now_ms(), history[-1].at + 1)
    span = end - start

    def x(ms: int) -> float:
        return round(TIMELINE_WIDTH * (ms - start) / span, 2)

    lanes = []
    for alias in sorted({e.alias for e in history}):
        moves = [e for e in history if e.alias == alias]
        segments = []
        for i, event in enumerate(moves):
            until = moves[i + 1].at if i + 1 < len(moves) else end
            if event.to_version is None:
                continue  # deleted: a gap until it is set again
            segments.append({"x": x(event.at), "width": max(x(until) - x(event.at), 1.5),
                             "version": event.to_version, "since": event.at,
                             "until": until if i + 1 < len(moves) else None,
                             "actor": event.actor})
        lanes.append({"alias": alias, "segments": segments})
    return {"width": TIMELINE_WIDTH, "start": start, "end": end, "lanes": lanes}
