"""Deployments: a named endpoint, its traffic plan history, and rollback.

Every plan change is a new revision in the metadata store; running servers poll the
newest revision and the aliases it names, so ``set_plan`` and alias moves reach them
within seconds. ``rollback`` undoes the newest change, whichever it was:

- an alias move after the current plan was set (``champion`` → v7): the plan is pinned to
  the versions served just before that move (v6);
- otherwise the plan change itself: the previous plan, pinned to the versions it served
  just before it was replaced.

Rollbacks are ordinary revisions (pinned, with a reason), so a rollback can be rolled back.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.registry.client import actor_or_os_user
from ratchet.registry.uris import parse_model_uri
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.store.deployment_store import (
    Deployment,
    PlanRevision,
    validate_deployment_name,
)
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ratchet.serving.feedback import FeedbackOutcome, FeedbackPolicy
    from ratchet.serving.prediction_log import PredictionLog


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    revision: int
    plan: TrafficPlan
    versions: dict[str, tuple[str, int]]  # variant -> (model name, version) right now
    reason: str | None
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "revision": self.revision, "plan": self.plan.to_dict(),
                "versions": {k: {"model": m, "version": v} for k, (m, v) in self.versions.items()},
                "reason": self.reason}


class DeploymentClient:
    def __init__(self, workspace: Workspace | None = None) -> None:
        from ratchet.registry import RegistryClient

        self.workspace = resolve_workspace(workspace)
        self.registry = self.workspace.client(RegistryClient)
        self.store = self.workspace.stores.deployments

    # ------------------------------------------------------------------ create and read
    def create(self, name: str, plan: TrafficPlan | str, *, description: str | None = None,
               reason: str | None = None, actor: str | None = None) -> DeploymentStatus:
        plan = _plan(plan)
        validate_deployment_name(name)
        self.resolve(plan)  # refuse references that do not resolve today
        self.store.create(name, plan.to_dict(), description=description,
                          reason=reason or "created", actor=actor_or_os_user(actor))
        return self.status(name)

    def ensure(self, name: str, plan: TrafficPlan | str) -> DeploymentStatus:
        """The deployment, created with ``plan`` if it does not exist; an existing one
        keeps its plan (continuous training, which changes the plan itself)."""
        if not self.store.exists(name):
            try:
                return self.create(name, plan, reason="created by ratchet serve")
            except AlreadyExists:
                pass  # another worker created it a moment ago: serve what it stored
        return self.status(name)

    def ensure_serving(self, name: str, model: str) -> DeploymentStatus:
        """Deployment ``name`` serving exactly ``model`` (``ratchet serve MODEL``): created
        the first time; if it exists with any other plan, refused (``Conflict``) naming
        its plan and the two ways on, so a server never answers with a model other than
        the one asked for. A reference that does not resolve is ``NotFound``, listing the
        versions and aliases that exist."""
        wanted = TrafficPlan.single(model)
        self._check_reference(model)
        if not self.store.exists(name):
            try:
                return self.create(name, wanted, reason="created by ratchet serve")
            except AlreadyExists:
                pass  # another worker created it a moment ago: check what it stored
        status = self.status(name)
        if not _same_plan(status.plan, wanted):
            raise Conflict(
                f"deployment {name!r} serves {status.plan.kind}: {status.plan.describe()}, "
                f"not {model}. Serve it as it is: `ratchet serve -d {name}`; or make it serve "
                f"{model}: `ratchet deploy set-plan {name} --model {model}`")
        return status

    def _check_reference(self, ref: str) -> None:
        parsed = parse_model_uri(ref)
        try:
            self._resolve_ref(ref, None)
        except NotFound as exc:
            if parsed.name is None:
                raise
            try:
                model = self.registry.get_model(parsed.name)
                versions = [v.version for v in self.registry.list_versions(parsed.name)]
            except NotFound:
                raise exc from None
            aliases = ", ".join(f"@{a} (v{v})" for a, v in sorted(model.aliases.items()))
            raise NotFound(f"{exc}; it has versions {', '.join(map(str, versions)) or 'none'}"
                           f"{'; aliases ' + aliases if aliases else ''}") from None

    def get(self, name: str) -> Deployment:
        return self.store.get(name)

    def list_deployments(self) -> list[Deployment]:
        return self.store.list_deployments()

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def history(self, name: str) -> list[PlanRevision]:
        return self.store.history(name)

    def status(self, name: str) -> DeploymentStatus:
        current = self.store.get(name).current
        plan = TrafficPlan.from_dict(current.plan, f"deployment {name!r} revision "
                                                   f"{current.revision}")
        return DeploymentStatus(name, current.revision, plan, self.resolve(plan),
                                current.reason, current.created_at)

    def list_statuses(self) -> list[DeploymentStatus]:
        """Every deployment as ``status`` shows it, by name; a variant whose reference no
        longer resolves (its alias deleted) is missing from ``versions``, so one broken
        deployment does not hide the others."""
        found = []
        for deployment in self.store.list_deployments():
            current = deployment.current
            plan = TrafficPlan.from_dict(current.plan, f"deployment {deployment.name!r} "
                                                       f"revision {current.revision}")
            versions = {}
            for variant in plan.all_variants:
                with suppress(NotFound, InvalidInput):
                    versions[variant.name] = self._resolve_ref(variant.model, None)
            found.append(DeploymentStatus(deployment.name, current.revision, plan, versions,
                                          current.reason, current.created_at))
        return found

    def resolve(self, plan: TrafficPlan, at_ms: int | None = None) -> dict[str, tuple[str, int]]:
        """Each variant's (model name, version), now or as of ``at_ms``."""
        return {v.name: self._resolve_ref(v.model, at_ms) for v in plan.all_variants}

    def _resolve_ref(self, ref: str, at_ms: int | None) -> tuple[str, int]:
        parsed = parse_model_uri(ref)
        if parsed.name is None:
            raise InvalidInput(f"deployments serve registered models; {ref!r} is a run URI — "
                               "register it first (ratchet models register)")
        if at_ms is not None and parsed.alias is not None:
            version = self.registry.store.alias_version_at(parsed.name, parsed.alias, at_ms)
            if version is None:
                raise NotFound(f"alias {parsed.name}@{parsed.alias} was not set at {at_ms}")
            return parsed.name, version
        resolved = self.registry.resolve(ref)
        assert resolved.version is not None
        return parsed.name, resolved.version.version

    # ------------------------------------------------------------------ changing
    def set_plan(self, name: str, plan: TrafficPlan | str, *, reason: str | None = None,
                 actor: str | None = None, expected_revision: int | None = None
                 ) -> DeploymentStatus:
        plan = _plan(plan)
        self.resolve(plan)
        self.store.set_plan(name, plan.to_dict(), reason=reason, actor=actor_or_os_user(actor),
                            expected_revision=expected_revision)
        return self.status(name)

    def rollback(self, name: str, *, reason: str | None = None,
                 actor: str | None = None) -> DeploymentStatus:
        history = self.store.history(name)
        current = history[-1]
        plan = TrafficPlan.from_dict(current.plan)
        moves = [e for v in plan.all_variants for e in self._alias_moves(v.model)
                 if e > current.created_at]
        if moves:
            when = max(moves)
            target, what = plan, "the alias move"
        elif len(history) > 1:
            when = current.created_at
            target = TrafficPlan.from_dict(history[-2].plan)
            what = f"revision {current.revision}"
        else:
            raise Conflict(f"deployment {name!r} has had no change to roll back "
                           "(one plan revision, no alias moves since)")
        before = self.resolve(target, at_ms=when - 1)
        pinned = target.with_models({k: f"{m}/{v}" for k, (m, v) in before.items()})
        note = ", ".join(f"{k}={m}/{v}" for k, (m, v) in before.items())
        self.store.set_plan(name, pinned.to_dict(), actor=actor_or_os_user(actor),
                            reason=reason or f"rollback of {what}: back to {note}",
                            expected_revision=current.revision)
        return self.status(name)

    def _alias_moves(self, ref: str) -> list[int]:
        parsed = parse_model_uri(ref)
        if parsed.name is None or parsed.alias is None:
            return []
        return [e.at for e in self.registry.alias_history(parsed.name, parsed.alias)]

    # ------------------------------------------------------------------ feedback
    def record_feedback(self, name: str, feedback: Any, *,
                        classes: Sequence[Any] | None = None,
                        live_log: PredictionLog | None = None,
                        policy: FeedbackPolicy | None = None,
                        now_ms: int | None = None) -> FeedbackOutcome:
        """Record ground truth for predictions deployment ``name`` made.

        ``feedback`` is a ``/feedback`` body (``{"request_id", "row", "value"}`` or
        ``{"feedback": [...]}``; malformed: ``BadRequest``) or its parsed items. An item
        is recorded only when ``name`` logged that (request_id, row) within the policy's
        window (else it is rejected as ``unknown``) and, given the served models'
        ``classes``, its value names one of them (else ``label``); the others are
        recorded all the same. ``live_log``: a running server's prediction log, whose
        buffered rows count as logged. The rules are ``ratchet.serving.feedback``'s.
        """
        from ratchet.clock import now_ms as clock_ms
        from ratchet.serving.feedback import (
            DAY_S,
            FeedbackItem,
            FeedbackOutcome,
            FeedbackPolicy,
            label_matcher,
            parse_items,
            served,
        )

        policy = policy or FeedbackPolicy()
        items: list[FeedbackItem] = (
            list(feedback) if isinstance(feedback, list)
            and all(isinstance(i, FeedbackItem) for i in feedback)
            else parse_items(feedback, policy))
        # First whether the prediction exists (an invented id is "unknown", whatever its
        # label), then whether the label can be the model's.
        known = served(items, deployment=name, workspace=self.workspace, log=live_log,
                       window_s=policy.window_s,
                       now_ms=clock_ms() if now_ms is None else now_ms) if items else set()
        matches = label_matcher(classes) if classes else None
        window_days = policy.window_s / DAY_S
        rejected: dict[int, tuple[str, str]] = {}
        for item in items:
            if item.index not in known:
                rejected[item.index] = ("unknown", f"item {item.index}: deployment {name!r} "
                                        f"logged no prediction with request_id "
                                        f"{item.request_id!r} and row {item.row} in the "
                                        f"last {window_days:g} days")
            elif matches is not None and not matches(item.value):
                rejected[item.index] = ("label", f"item {item.index}: the label "
                                        f"{item.value!r} is not one of the model's classes "
                                        f"{list(classes or ())}")
        accepted = [item for item in items if item.index not in rejected]
        recorded = int(self.store.record_feedback(
            (item.request_id, item.row, name, item.value) for item in accepted)) \
            if accepted else 0
        return FeedbackOutcome(recorded, [{"index": i, "reason": reason, "msg": msg}
                                          for i, (reason, msg) in sorted(rejected.items())])


def _same_plan(a: TrafficPlan, b: TrafficPlan) -> bool:
    """The same plan, whichever spelling of a reference (churn/1, models:/churn/1)."""
    def canonical(plan: TrafficPlan) -> tuple[object, ...]:
        return (plan.kind, plan.key, tuple((v.name, parse_model_uri(v.model), v.weight)
                                           for v in plan.all_variants))

    return canonical(a) == canonical(b)


def _plan(plan: TrafficPlan | str) -> TrafficPlan:
    if isinstance(plan, TrafficPlan):
        return plan
    if isinstance(plan, str):
        return TrafficPlan.single(plan)
    raise InvalidInput(f"expected a TrafficPlan or a model reference, got {plan!r}")
