"""SQL implementation of registered models, versions, tags, aliases and alias history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.names import alias_name, lookup_name, model_name
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.records import AliasEvent, ModelVersion, RegisteredModel
from ratchet.store.tracking_store import validate_key


def validate_model_name(name: object) -> str:
    """The canonical model name (see ratchet.names), or InvalidInput."""
    return model_name(name)


def validate_alias(alias: object) -> str:
    return alias_name(alias)


def _found(name: str) -> str:
    """A name as given to a lookup, in the canonical form it was stored under."""
    return lookup_name(name)  # type: ignore[return-value]


def _deleted_model(name: str, deleted_at: int) -> str:
    from ratchet.store.deletion import deleted_note

    return deleted_note(f"registered model {name!r}", deleted_at,
                        f"ratchet models restore {name}")


class RegistryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- registered models
    def create_registered_model(
        self, name: str, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        name = validate_model_name(name)
        created = now_ms()
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.registered_models).values(
                    name=name, description=description, created_at=created, updated_at=created))
                if tags:
                    conn.execute(insert(t.registered_model_tags), [
                        {"name": name, "key": validate_key("tag", k), "value": str(v)}
                        for k, v in tags.items()])
        except SAIntegrityError:
            self._refuse_deleted_model(name)
            raise AlreadyExists(f"registered model {name!r} already exists") from None
        return self.get_registered_model(name)

    def ensure_registered_model(self, name: str) -> None:
        name = validate_model_name(name)
        created = now_ms()
        with self.db.write() as conn:
            conn.execute(self.db.upsert(t.registered_models).values(
                name=name, created_at=created, updated_at=created).on_conflict_do_nothing())

    def get_registered_model(self, name: str, *, include_deleted: bool = False
                             ) -> RegisteredModel:
        name = _found(name)
        with self.db.read() as conn:
            row = conn.execute(
                select(t.registered_models).where(t.registered_models.c.name == name)).first()
            if row is None:
                raise NotFound(f"no registered model named {name!r}")
            if row.deleted_at is not None and not include_deleted:
                raise NotFound(_deleted_model(name, row.deleted_at))
            tags = dict(conn.execute(
                select(t.registered_model_tags.c.key, t.registered_model_tags.c.value)
                .where(t.registered_model_tags.c.name == name)).all())
            aliases = dict(conn.execute(
                select(t.model_aliases.c.alias, t.model_aliases.c.version)
                .where(t.model_aliases.c.name == name)).all())
            latest = conn.execute(select(func.max(t.model_versions.c.version))
                                  .where(t.model_versions.c.name == name,
                                         t.model_versions.c.deleted_at.is_(None))).scalar()
        return RegisteredModel(row.name, row.description, row.created_at, row.updated_at,
                               tags, aliases, latest, row.deleted_at)

    def _check_model(self, name: str) -> None:
        """NotFound as ``get_registered_model`` raises it, in one query."""
        name = _found(name)
        rm = t.registered_models
        with self.db.read() as conn:
            row = conn.execute(select(rm.c.deleted_at).where(rm.c.name == name)).first()
        if row is None:
            raise NotFound(f"no registered model named {name!r}")
        if row.deleted_at is not None:
            raise NotFound(_deleted_model(name, row.deleted_at))

    def list_registered_models(self, *, include_deleted: bool = False
                               ) -> list[RegisteredModel]:
        rm = t.registered_models
        query = select(rm.c.name).order_by(rm.c.name)
        if not include_deleted:
            query = query.where(rm.c.deleted_at.is_(None))
        with self.db.read() as conn:
            names = list(conn.execute(query).scalars())
        return [self.get_registered_model(n, include_deleted=True) for n in names]

    def _refuse_deleted_model(self, name: str) -> None:
        rm = t.registered_models
        with self.db.read() as conn:
            deleted_at = conn.execute(select(rm.c.deleted_at).where(rm.c.name == name)
                                      ).scalar()
        if deleted_at is not None:
            raise Conflict(_deleted_model(name, deleted_at) + "; the name is free again once "
                           "it is purged")

    def update_registered_model(self, name: str, description: str | None) -> None:
        name = _found(name)
        with self.db.write() as conn:
            result = conn.execute(update(t.registered_models)
                                  .where(t.registered_models.c.name == name)
                                  .values(description=description, updated_at=now_ms()))
        if result.rowcount == 0:
            raise NotFound(f"no registered model named {name!r}")

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        name = _found(name)
        self._upsert_tag(t.registered_model_tags, {"name": name}, key, value,
                         f"no registered model named {name!r}")

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove a tag; an absent key is no error (as in MLflow), a missing model is."""
        name = _found(name)
        self.get_registered_model(name)
        tags = t.registered_model_tags
        with self.db.write() as conn:
            conn.execute(tags.delete().where(tags.c.name == name, tags.c.key == key))

    # ---------------------------------------------------------------- versions
    def create_model_version(
        self,
        name: str,
        *,
        run_id: str | None,
        artifact_path: str,
        content_hash: str,
        flavor: str,
        manifest: Mapping[str, Any],
        description: str | None = None,
        created_by: str | None = None,
        tags: Mapping[str, str] | None = None,
        version: int | None = None,
    ) -> ModelVersion:
        """Add the next version (numbered from 1), creating the registered model if needed.

        ``version`` chooses the number (an import keeps its source's numbers, gaps
        included); it must be above every number the model has had, so numbers still only
        grow and a purged one is never reused."""
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            raise InvalidInput(f"version must be a positive integer, got {version!r}")
        name = validate_model_name(name)
        self.ensure_registered_model(name)
        self._refuse_deleted_model(name)
        now = now_ms()
        with self.db.write() as conn:
            # Lock the model row (PostgreSQL) so concurrent registrations number in order;
            # SQLite write transactions are already serialized by BEGIN IMMEDIATE.
            # A number gc purged is never reused while the model exists.
            model = conn.execute(select(t.registered_models.c.purged_version,
                                        t.registered_models.c.deleted_at)
                                 .where(t.registered_models.c.name == name).with_for_update()
                                 ).first()
            if model is not None and model.deleted_at is not None:
                raise Conflict(_deleted_model(name, model.deleted_at))
            purged = model.purged_version if model is not None else None
            if run_id is not None:  # FOR SHARE: a concurrent delete_run waits, or went first
                run = conn.execute(select(t.runs.c.deleted_at).where(t.runs.c.run_id == run_id)
                                   .with_for_update(read=True)).first()
                if run is not None and run.deleted_at is not None:
                    from ratchet.store.deletion import deleted_note

                    raise NotFound(deleted_note(f"run {run_id}", run.deleted_at,
                                                f"ratchet runs restore {run_id}"))
            following = max(conn.execute(select(func.max(t.model_versions.c.version))
                                         .where(t.model_versions.c.name == name)).scalar()
                            or 0, purged or 0) + 1
            if version is not None and version < following:
                raise Conflict(f"model {name!r} cannot get version {version}: its numbers "
                               f"only grow and the next free one is {following}")
            version = following if version is None else version
            try:
                conn.execute(insert(t.model_versions).values(
                    name=name, version=version, run_id=run_id, artifact_path=artifact_path,
                    content_hash=content_hash, flavor=flavor,
                    manifest=json.dumps(manifest, sort_keys=True), description=description,
                    created_at=now, created_by=created_by))
            except SAIntegrityError:
                raise NotFound(f"run {run_id!r} does not exist") from None
            if tags:
                conn.execute(insert(t.model_version_tags), [
                    {"name": name, "version": version, "key": validate_key("tag", k),
                     "value": str(v)} for k, v in tags.items()])
            conn.execute(update(t.registered_models).where(t.registered_models.c.name == name)
                         .values(updated_at=now))
        return self.get_model_version(name, version)

    def get_model_version(self, name: str, version: int, *, include_deleted: bool = False
                          ) -> ModelVersion:
        versions = self._load_versions(name, [version])
        if not versions:
            raise NotFound(f"model {name!r} has no version {version}")
        if not include_deleted:
            self._check_model(name)  # NotFound if the whole model is deleted
            deleted_at = versions[0].deleted_at
            if deleted_at is not None:
                from ratchet.store.deletion import deleted_note

                raise NotFound(deleted_note(
                    f"model {versions[0].name!r} version {version}", deleted_at,
                    f"ratchet models restore {versions[0].name} --version {version}"))
        return versions[0]

    def list_model_versions(self, name: str, *, include_deleted: bool = False
                            ) -> list[ModelVersion]:
        self.get_registered_model(name, include_deleted=include_deleted)
        found = self._load_versions(name, None)
        return found if include_deleted else [v for v in found if v.deleted_at is None]

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        with self.db.read() as conn:
            pairs = conn.execute(select(t.model_versions.c.name, t.model_versions.c.version)
                                 .where(t.model_versions.c.run_id == run_id,
                                        t.model_versions.c.deleted_at.is_(None))
                                 .order_by(t.model_versions.c.name,
                                           t.model_versions.c.version)).all()
        return [self.get_model_version(n, v) for n, v in pairs]

    def _load_versions(self, name: str, versions: list[int] | None) -> list[ModelVersion]:
        name = _found(name)
        mv, tags_t, al = t.model_versions, t.model_version_tags, t.model_aliases
        query = select(mv).where(mv.c.name == name).order_by(mv.c.version)
        if versions is not None:
            query = query.where(mv.c.version.in_(versions))
        tag_query = select(tags_t).where(tags_t.c.name == name)
        alias_query = select(al).where(al.c.name == name).order_by(al.c.alias)
        if versions is not None:  # only theirs
            tag_query = tag_query.where(tags_t.c.version.in_(versions))
            alias_query = alias_query.where(al.c.version.in_(versions))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            tags: dict[int, dict[str, str]] = {}
            for r in conn.execute(tag_query):
                tags.setdefault(r.version, {})[r.key] = r.value
            aliases: dict[int, list[str]] = {}
            for r in conn.execute(alias_query):
                aliases.setdefault(r.version, []).append(r.alias)
        return [ModelVersion(
            name=r.name, version=r.version, run_id=r.run_id, artifact_path=r.artifact_path,
            content_hash=r.content_hash, flavor=r.flavor, manifest=json.loads(r.manifest),
            description=r.description, created_at=r.created_at, created_by=r.created_by,
            tags=tags.get(r.version, {}), aliases=tuple(aliases.get(r.version, ())),
            deleted_at=r.deleted_at,
        ) for r in rows]

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        name = _found(name)
        self._upsert_tag(t.model_version_tags, {"name": name, "version": version}, key, value,
                         f"model {name!r} has no version {version}")

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        """Remove a version's tag; an absent key is no error, a missing version is."""
        name = _found(name)
        self.get_model_version(name, version)
        tags = t.model_version_tags
        with self.db.write() as conn:
            conn.execute(tags.delete().where(tags.c.name == name, tags.c.version == version,
                                             tags.c.key == key))

    def update_model_version(self, name: str, version: int, description: str | None) -> None:
        name = _found(name)
        with self.db.write() as conn:
            result = conn.execute(update(t.model_versions).where(
                t.model_versions.c.name == name, t.model_versions.c.version == version)
                .values(description=description))
        if result.rowcount == 0:
            raise NotFound(f"model {name!r} has no version {version}")

    # ---------------------------------------------------------------- aliases
    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str | None, reason: str | None
    ) -> AliasEvent:
        name, alias = _found(name), validate_alias(alias)
        now = now_ms()
        al = t.model_aliases
        with self.db.write() as conn:
            exists = conn.execute(select(t.model_versions.c.version).where(
                t.model_versions.c.name == name, t.model_versions.c.version == version,
                t.model_versions.c.deleted_at.is_(None)).with_for_update()).first()
            if exists is None:
                raise NotFound(f"model {name!r} has no version {version}; cannot point "
                               f"alias {alias!r} at it")
            previous = conn.execute(select(al.c.version).where(
                al.c.name == name, al.c.alias == alias).with_for_update()).scalar()
            if previous is None:
                conn.execute(insert(al).values(name=name, alias=alias, version=version,
                                               updated_at=now))
            else:
                conn.execute(update(al).where(al.c.name == name, al.c.alias == alias)
                             .values(version=version, updated_at=now))
            event = AliasEvent(name, alias, previous, version, actor, reason, now)
            conn.execute(insert(t.alias_events).values(**event.__dict__))
        return event

    def delete_alias(self, name: str, alias: str, *, actor: str | None,
                     reason: str | None) -> AliasEvent:
        name, alias = _found(name), _found(alias)
        al = t.model_aliases
        now = now_ms()
        with self.db.write() as conn:
            previous = conn.execute(select(al.c.version).where(
                al.c.name == name, al.c.alias == alias).with_for_update()).scalar()
            if previous is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            conn.execute(delete(al).where(al.c.name == name, al.c.alias == alias))
            event = AliasEvent(name, alias, previous, None, actor, reason, now)
            conn.execute(insert(t.alias_events).values(**event.__dict__))
        return event

    def resolve_alias(self, name: str, alias: str) -> int:
        name, alias = _found(name), _found(alias)
        al = t.model_aliases
        with self.db.read() as conn:
            version = conn.execute(select(al.c.version).where(
                al.c.name == name, al.c.alias == alias)).scalar()
        if version is None:
            self.get_registered_model(name)  # NotFound for the model itself first
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        return int(version)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        name, alias = _found(name), _found(alias) if alias is not None else None
        ev = t.alias_events
        query = select(ev).where(ev.c.name == name).order_by(ev.c.at, ev.c.id)
        if alias is not None:
            query = query.where(ev.c.alias == alias)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [AliasEvent(r.name, r.alias, r.from_version, r.to_version, r.actor, r.reason, r.at)
                for r in rows]

    def alias_version_at(self, name: str, alias: str, at_ms: int) -> int | None:
        """Which version the alias pointed at, at time ``at_ms`` (None: unset then)."""
        name, alias = _found(name), _found(alias)
        ev = t.alias_events
        with self.db.read() as conn:
            row = conn.execute(select(ev.c.to_version).where(
                ev.c.name == name, ev.c.alias == alias, ev.c.at <= at_ms)
                .order_by(ev.c.at.desc(), ev.c.id.desc()).limit(1)).first()
        return None if row is None else row.to_version

    # ---------------------------------------------------------------- helpers
    def _upsert_tag(self, table: Any, owner: dict[str, Any], key: str, value: str,
                    missing: str) -> None:
        stmt = self.db.upsert(table).values(**owner, key=validate_key("tag", key), value=str(value))
        stmt = stmt.on_conflict_do_update(index_elements=[*owner, "key"],
                                          set_={"value": stmt.excluded.value})
        try:
            with self.db.write() as conn:
                conn.execute(stmt)
        except SAIntegrityError:
            raise NotFound(missing) from None
