"""Soft delete, restore and purge of runs, experiments, models and dataset versions.

A delete sets ``deleted_at``: the record is hidden from listings and lookups but kept
whole, so ``restore`` brings it back exactly. Only ``purge`` (run by ``ratchet gc``)
removes rows, and only of records soft-deleted at or before a cutoff; after that, names
are free again. A delete that would break something live is refused unless forced:

- a model version an alias points at, or that a deployment's current plan serves (by
  number, ``/latest``, or the ``runs:/`` of its run);
- a registered model with such a version;
- a dataset version that a run which is not deleted recorded as an input (lineage);
- a run that backs a model version which is not deleted, or that a plan serves.

Forcing a model delete also removes the aliases on it (each removal is an alias event).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from ratchet.clock import now_ms
from ratchet.errors import Conflict, NotFound
from ratchet.names import lookup_name
from ratchet.refs import LATEST, is_version
from ratchet.store import schema as t
from ratchet.store.database import Database

# A model reference in a plan: name/version, name/latest, name@version, name@latest,
# name@alias or runs:/<id>/path.
_MODEL_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>.+))$")
_RUN_REF = re.compile(r"^runs:/(?P<run_id>[^/]+)")


def deleted_note(what: str, deleted_at: int, restore: str) -> str:
    """The NotFound message for a soft-deleted record: what, when, and how to undo it."""
    when = datetime.fromtimestamp(deleted_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"{what} was deleted at {when}; `{restore}` brings it back until `ratchet gc` "
            "purges it")


@dataclass
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove), by kind."""

    model_versions: list[tuple[str, int]] = field(default_factory=list)
    registered_models: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    dataset_versions: list[tuple[str, int]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # deleted but still needed: why
    # Every blob digest the records left after the purge refer to.
    referenced: set[str] = field(default_factory=set)

    def count(self) -> int:
        return (len(self.model_versions) + len(self.registered_models) + len(self.runs)
                + len(self.experiments) + len(self.dataset_versions))


class _DryRun(Exception):
    """Raised inside the purge transaction to roll a dry run back."""


@dataclass(frozen=True)
class _PlanRefs:
    versions: set[tuple[str, int]]
    latest: set[str]  # models served as name/latest
    runs: set[str]


class DeletionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- runs
    def delete_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Soft-delete a run and its nested runs; returns their ids."""
        now = now_ms()
        with self.db.write() as conn:
            row = conn.execute(select(t.runs.c.deleted_at).where(t.runs.c.run_id == run_id)
                               .with_for_update()).first()
            if row is None:
                raise NotFound(f"no run with id {run_id!r}")
            if row.deleted_at is not None:
                return []
            ids = _descendants(conn, [run_id])
            if not force:
                self._refuse_runs(conn, ids)
            conn.execute(update(t.runs).where(t.runs.c.run_id.in_(ids),
                                              t.runs.c.deleted_at.is_(None))
                         .values(deleted_at=now))
        return ids

    def restore_run(self, run_id: str) -> list[str]:
        """Restore a run and the nested runs deleted with it; returns their ids."""
        r, e = t.runs, t.experiments
        with self.db.write() as conn:
            row = conn.execute(select(r.c.deleted_at, e.c.name, e.c.deleted_at.label("exp_del"))
                               .join(e, e.c.experiment_id == r.c.experiment_id)
                               .where(r.c.run_id == run_id)).first()
            if row is None:
                raise NotFound(f"no run with id {run_id!r} (a purged run cannot be restored)")
            if row.exp_del is not None:
                raise Conflict(f"run {run_id} is in deleted experiment {row.name!r}: restore "
                               f"the experiment (`ratchet experiments restore {row.name}`)")
            if row.deleted_at is None:
                return []
            ids = _descendants(conn, [run_id])
            conn.execute(update(r).where(r.c.run_id.in_(ids), r.c.deleted_at == row.deleted_at)
                         .values(deleted_at=None))
        return ids

    # ---------------------------------------------------------------- experiments
    def delete_experiment(self, name_or_id: str, *, force: bool = False) -> list[str]:
        """Soft-delete an experiment and every run in it; returns the runs' ids."""
        now = now_ms()
        e, r = t.experiments, t.runs
        with self.db.write() as conn:
            exp = _experiment_row(conn, name_or_id)
            if exp.deleted_at is not None:
                return []
            ids = list(conn.execute(select(r.c.run_id).where(
                r.c.experiment_id == exp.experiment_id, r.c.deleted_at.is_(None))).scalars())
            if not force:
                self._refuse_runs(conn, ids)
            conn.execute(update(r).where(r.c.experiment_id == exp.experiment_id,
                                         r.c.deleted_at.is_(None)).values(deleted_at=now))
            conn.execute(update(e).where(e.c.experiment_id == exp.experiment_id)
                         .values(deleted_at=now, lifecycle="deleted"))
        return ids

    def restore_experiment(self, name_or_id: str) -> list[str]:
        """Restore an experiment and the runs deleted with it; returns the runs' ids."""
        e, r = t.experiments, t.runs
        with self.db.write() as conn:
            exp = _experiment_row(conn, name_or_id)
            if exp.deleted_at is None:
                return []
            ids = list(conn.execute(select(r.c.run_id).where(
                r.c.experiment_id == exp.experiment_id, r.c.deleted_at == exp.deleted_at)
            ).scalars())
            conn.execute(update(r).where(r.c.run_id.in_(ids)).values(deleted_at=None))
            conn.execute(update(e).where(e.c.experiment_id == exp.experiment_id)
                         .values(deleted_at=None, lifecycle="active"))
        return ids

    # ---------------------------------------------------------------- registry
    def delete_model_version(self, name: str, version: int, *, force: bool = False,
                             actor: str | None = None) -> None:
        name = lookup_name(name)  # type: ignore[assignment]
        mv = t.model_versions
        with self.db.write() as conn:
            # Locked: set_alias locks it too, so an alias cannot land on it meanwhile.
            row = conn.execute(select(mv.c.deleted_at).where(
                mv.c.name == name, mv.c.version == version).with_for_update()).first()
            if row is None:
                raise NotFound(f"model {name!r} has no version {version}")
            if row.deleted_at is not None:
                return
            blockers = self._version_blockers(conn, name, [version])
            if blockers and not force:
                raise Conflict(f"cannot delete model {name!r} version {version}: "
                               f"{'; '.join(blockers)}; move them first, or force")
            _drop_aliases(conn, name, [version], actor, f"version {version} deleted")
            conn.execute(update(mv).where(mv.c.name == name, mv.c.version == version)
                         .values(deleted_at=now_ms()))

    def restore_model_version(self, name: str, version: int) -> None:
        name = lookup_name(name)  # type: ignore[assignment]
        mv, rm = t.model_versions, t.registered_models
        with self.db.write() as conn:
            model = conn.execute(select(rm.c.deleted_at).where(rm.c.name == name)).first()
            if model is not None and model.deleted_at is not None:
                raise Conflict(f"model {name!r} is deleted: restore it "
                               f"(`ratchet models restore {name}`) first")
            result = conn.execute(update(mv).where(mv.c.name == name, mv.c.version == version)
                                  .values(deleted_at=None))
        if result.rowcount == 0:
            raise NotFound(f"model {name!r} has no version {version} (a purged version "
                           "cannot be restored)")

    def delete_registered_model(self, name: str, *, force: bool = False,
                                actor: str | None = None) -> None:
        """Soft-delete a registered model; its versions go with it (and come back with it)."""
        name = lookup_name(name)  # type: ignore[assignment]
        rm, mv = t.registered_models, t.model_versions
        with self.db.write() as conn:
            # Locked: a registration locks it too, so no version is added meanwhile.
            row = conn.execute(select(rm.c.deleted_at).where(rm.c.name == name)
                               .with_for_update()).first()
            if row is None:
                raise NotFound(f"no registered model named {name!r}")
            if row.deleted_at is not None:
                return
            versions = list(conn.execute(select(mv.c.version).where(
                mv.c.name == name, mv.c.deleted_at.is_(None)).with_for_update()).scalars())
            blockers = self._version_blockers(conn, name, versions)
            if blockers and not force:
                raise Conflict(f"cannot delete model {name!r}: {'; '.join(blockers)}; move "
                               "them first, or force")
            _drop_aliases(conn, name, versions, actor, "model deleted")
            conn.execute(update(rm).where(rm.c.name == name).values(deleted_at=now_ms()))

    def restore_registered_model(self, name: str) -> None:
        name = lookup_name(name)  # type: ignore[assignment]
        rm = t.registered_models
        with self.db.write() as conn:
            result = conn.execute(update(rm).where(rm.c.name == name).values(deleted_at=None))
        if result.rowcount == 0:
            raise NotFound(f"no registered model named {name!r} (a purged model cannot be "
                           "restored)")

    # ---------------------------------------------------------------- datasets
    def delete_dataset_version(self, name: str, version: int, *, force: bool = False) -> None:
        dv, ri, r = t.dataset_versions, t.run_inputs, t.runs
        with self.db.write() as conn:
            row = conn.execute(select(dv.c.digest, dv.c.deleted_at).where(
                dv.c.name == name, dv.c.version == version).with_for_update()).first()
            if row is None:
                raise NotFound(f"dataset {name!r} has no version {version}")
            if row.deleted_at is not None:
                return
            users = list(conn.execute(
                select(ri.c.run_id).join(r, r.c.run_id == ri.c.run_id)
                .where(ri.c.name == name, ri.c.digest == row.digest, r.c.deleted_at.is_(None))
                .order_by(ri.c.run_id).limit(4)).scalars())
            if users and not force:
                shown = ", ".join(users[:3]) + (", ..." if len(users) > 3 else "")
                raise Conflict(f"cannot delete dataset {name}@{version}: runs read it "
                               f"({shown}), so lineage points to it; delete those runs "
                               "first, or force")
            conn.execute(update(dv).where(dv.c.name == name, dv.c.version == version)
                         .values(deleted_at=now_ms()))

    def restore_dataset_version(self, name: str, version: int) -> None:
        dv = t.dataset_versions
        with self.db.write() as conn:
            result = conn.execute(update(dv).where(dv.c.name == name, dv.c.version == version)
                                  .values(deleted_at=None))
        if result.rowcount == 0:
            raise NotFound(f"dataset {name!r} has no version {version} (a purged version "
                           "cannot be restored)")

    # ---------------------------------------------------------------- purge
    def purge(self, deleted_before: int, *, dry_run: bool = False) -> PurgeReport:
        """Remove every record soft-deleted at or before ``deleted_before`` (ms), in one
        transaction; a dry run computes the same report and rolls back."""
        report = PurgeReport()
        try:
            with self.db.write() as conn:
                self._purge(conn, deleted_before, report)
                report.referenced = _referenced(conn)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return report

    def _purge(self, conn: Any, cutoff: int, report: PurgeReport) -> None:
        rm, mv, r, e = t.registered_models, t.model_versions, t.runs, t.experiments
        ds, dv = t.datasets, t.dataset_versions
        # Model versions (of models that stay), keeping the highest number gc removed.
        gone = conn.execute(select(mv.c.name, mv.c.version).join(rm, rm.c.name == mv.c.name)
                            .where(mv.c.deleted_at <= cutoff, rm.c.deleted_at.is_(None))
                            .order_by(mv.c.name, mv.c.version).with_for_update()).all()
        for name, version in gone:
            conn.execute(delete(mv).where(mv.c.name == name, mv.c.version == version))
            conn.execute(update(rm).where(rm.c.name == name, func.coalesce(
                rm.c.purged_version, 0) < version).values(purged_version=version))
            report.model_versions.append((name, version))
        # Registered models: versions, tags, aliases and alias history go with them.
        for name in list(conn.execute(select(rm.c.name).where(rm.c.deleted_at <= cutoff)
                                      .order_by(rm.c.name).with_for_update()).scalars()):
            conn.execute(delete(t.model_version_tags).where(t.model_version_tags.c.name == name))
            conn.execute(delete(t.model_aliases).where(t.model_aliases.c.name == name))
            conn.execute(delete(mv).where(mv.c.name == name))
            conn.execute(delete(t.alias_events).where(t.alias_events.c.name == name))
            conn.execute(delete(t.registered_model_tags)
                         .where(t.registered_model_tags.c.name == name))
            conn.execute(delete(rm).where(rm.c.name == name))
            report.registered_models.append(name)
        # Runs: children before parents; a run a model version still uses is kept.
        candidates = set(conn.execute(select(r.c.run_id).where(r.c.deleted_at <= cutoff)
                                      .with_for_update()).scalars())
        backing = set(conn.execute(select(mv.c.run_id).where(mv.c.run_id.isnot(None)))
                      .scalars()) & candidates
        for run_id in sorted(backing):
            report.kept.append(f"run {run_id}: a model version was registered from it")
        candidates -= backing
        while candidates:
            parents = set(conn.execute(select(r.c.parent_run_id).where(
                r.c.parent_run_id.in_(candidates))).scalars())
            # Children not being purged pin their parent.
            pinned = set(conn.execute(select(r.c.parent_run_id).where(
                r.c.parent_run_id.in_(candidates), r.c.run_id.notin_(candidates))).scalars())
            for run_id in sorted(pinned):
                report.kept.append(f"run {run_id}: a nested run of it is kept")
            leaves = candidates - parents
            for run_id in sorted(leaves):
                _purge_run(conn, run_id)
                report.runs.append(run_id)
            candidates -= leaves | pinned
            if not leaves:
                break
        # Experiments, once no run is left in them.
        for exp_id, name in conn.execute(select(e.c.experiment_id, e.c.name)
                                         .where(e.c.deleted_at <= cutoff)
                                         .order_by(e.c.name).with_for_update()).all():
            if conn.execute(select(r.c.run_id).where(r.c.experiment_id == exp_id).limit(1)
                            ).first() is not None:
                report.kept.append(f"experiment {name!r}: runs are left in it")
                continue
            conn.execute(delete(t.experiment_tags).where(
                t.experiment_tags.c.experiment_id == exp_id))
            conn.execute(delete(e).where(e.c.experiment_id == exp_id))
            report.experiments.append(name)
        # Dataset versions; a dataset left with no version is removed (numbers restart).
        for name, version in conn.execute(select(dv.c.name, dv.c.version)
                                          .where(dv.c.deleted_at <= cutoff)
                                          .order_by(dv.c.name, dv.c.version)
                                          .with_for_update()).all():
            conn.execute(delete(t.dataset_sources).where(
                t.dataset_sources.c.name == name, t.dataset_sources.c.version == version))
            conn.execute(delete(dv).where(dv.c.name == name, dv.c.version == version))
            conn.execute(update(ds).where(ds.c.name == name, func.coalesce(
                ds.c.purged_version, 0) < version).values(purged_version=version))
            report.dataset_versions.append((name, version))
        for name in {n for n, _ in report.dataset_versions}:
            if conn.execute(select(dv.c.version).where(dv.c.name == name).limit(1)
                            ).first() is None:
                conn.execute(delete(t.dataset_sources).where(t.dataset_sources.c.name == name))
                conn.execute(delete(ds).where(ds.c.name == name))

    # ---------------------------------------------------------------- references
    def referenced_digests(self) -> set[str]:
        """Every blob digest a record refers to (deleted records included: they can be
        restored), read in one transaction."""
        with self.db.read() as conn:
            return _referenced(conn)

    # ---------------------------------------------------------------- refusals
    def _refuse_runs(self, conn: Any, run_ids: list[str]) -> None:
        if not run_ids:
            return
        mv = t.model_versions
        found = conn.execute(select(mv.c.name, mv.c.version).where(
            mv.c.run_id.in_(run_ids), mv.c.deleted_at.is_(None))
            .order_by(mv.c.name, mv.c.version).limit(3)).all()
        if found:
            shown = ", ".join(f"{n}/{v}" for n, v in found)
            raise Conflict(f"cannot delete run {run_ids[0]}: model versions were registered "
                           f"from it ({shown}); delete those versions first, or force")
        served = self._plan_refs().runs & set(run_ids)
        if served:
            raise Conflict(f"cannot delete run {sorted(served)[0]}: a deployment serves its "
                           "model (runs:/ reference); change the deployment first, or force")

    def _version_blockers(self, conn: Any, name: str, versions: Iterable[int]) -> list[str]:
        versions = sorted(versions)
        if not versions:
            return []
        al, mv = t.model_aliases, t.model_versions
        blockers = [f"alias {a!r} points at version {v}" for a, v in conn.execute(
            select(al.c.alias, al.c.version).where(al.c.name == name,
                                                   al.c.version.in_(versions))
            .order_by(al.c.alias)).all()]
        refs = self._plan_refs()
        blockers += [f"a deployment serves {name}/{v}" for v in versions
                     if (name, v) in refs.versions]
        if name in refs.latest:
            latest = conn.execute(select(func.max(mv.c.version)).where(
                mv.c.name == name, mv.c.deleted_at.is_(None))).scalar()
            if latest in versions:
                blockers.append(f"a deployment serves {name}/latest (version {latest})")
        runs = conn.execute(select(mv.c.run_id).where(
            mv.c.name == name, mv.c.version.in_(versions))).scalars()
        blockers += [f"a deployment serves runs:/{rid}" for rid in sorted(
            {rid for rid in runs if rid} & refs.runs)]
        return blockers

    def _plan_refs(self) -> _PlanRefs:
        """Model references in every deployment's current plan (read through the
        deployment store's API, which owns the plan format's storage)."""
        from ratchet.store.deployment_store import DeploymentStore

        refs = _PlanRefs(set(), set(), set())
        for deployment in DeploymentStore(self.db).list_deployments():
            for ref in _plan_model_refs(deployment.current.plan):
                if m := _RUN_REF.match(ref):
                    refs.runs.add(m["run_id"])
                elif m := _MODEL_REF.match(ref):
                    # ratchet.refs: after '/' or '@', digits are a version, and 'latest'
                    # the latest; anything else after '@' is an alias (pins nothing)
                    name = str(lookup_name(m["name"]))
                    selector = m["version"] if m["version"] is not None else m["alias"]
                    if selector == LATEST:
                        refs.latest.add(name)
                    elif is_version(selector):
                        refs.versions.add((name, int(selector)))
        return refs


def _referenced(conn: Any) -> set[str]:
    """Every blob digest the records refer to (soft-deleted ones included)."""
    digests: set[str] = set()
    for column in (t.run_artifacts.c.digest, t.dataset_versions.c.digest,
                   t.run_inputs.c.digest, t.step_runs.c.log_digest,
                   t.step_outputs.c.digest, t.step_inputs.c.digest):
        digests.update(d for d in conn.execute(select(column).distinct()).scalars() if d)
    for files in conn.execute(select(t.step_outputs.c.files)).scalars():
        with contextlib.suppress(ValueError, TypeError, IndexError):
            digests.update(f[1] for f in json.loads(files) if len(f) > 1)
    return digests


def _plan_model_refs(plan: Any) -> list[str]:
    if not isinstance(plan, dict):
        return []
    found = [plan[k] for k in ("model", "shadow", "canary") if isinstance(plan.get(k), str)]
    for variant in plan.get("variants") or ():
        if isinstance(variant, dict) and isinstance(variant.get("model"), str):
            found.append(variant["model"])
    return [ref.strip() for ref in found]


def _descendants(conn: Any, run_ids: list[str]) -> list[str]:
    found, frontier = list(run_ids), list(run_ids)
    while frontier:
        frontier = list(conn.execute(select(t.runs.c.run_id).where(
            t.runs.c.parent_run_id.in_(frontier))).scalars())
        found.extend(rid for rid in frontier if rid not in found)
    return found


def _experiment_row(conn: Any, name_or_id: str) -> Any:
    e = t.experiments
    key = lookup_name(name_or_id)
    rows = conn.execute(select(e).where((e.c.name == key) | (e.c.experiment_id == key))).all()
    # An id wins over a name (as in TrackingStore.find_experiment).
    row = next((r for r in rows if r.experiment_id == key), rows[0] if rows else None)
    if row is None:
        raise NotFound(f"no experiment named or with id {name_or_id!r}")
    return row


def _drop_aliases(conn: Any, name: str, versions: list[int], actor: str | None,
                  reason: str) -> None:
    al = t.model_aliases
    if not versions:
        return
    now = now_ms()
    for alias, version in conn.execute(select(al.c.alias, al.c.version).where(
            al.c.name == name, al.c.version.in_(versions))).all():
        conn.execute(delete(al).where(al.c.name == name, al.c.alias == alias))
        conn.execute(insert(t.alias_events).values(
            name=name, alias=alias, from_version=version, to_version=None, actor=actor,
            reason=reason, at=now))


def _purge_run(conn: Any, run_id: str) -> None:
    # Explicit deletes: the cascades are declared, but SQLite only honours them with
    # foreign keys on, and explicit is as cheap.
    for table in (t.metrics, t.latest_metrics, t.params, t.run_tags, t.run_artifacts,
                  t.run_inputs):
        conn.execute(delete(table).where(table.c.run_id == run_id))
    for table in (t.pipeline_runs, t.step_runs):
        conn.execute(update(table).where(table.c.tracking_run_id == run_id)
                     .values(tracking_run_id=None))
    conn.execute(update(t.dataset_versions).where(t.dataset_versions.c.created_by_run == run_id)
                 .values(created_by_run=None))
    conn.execute(delete(t.runs).where(t.runs.c.run_id == run_id))

