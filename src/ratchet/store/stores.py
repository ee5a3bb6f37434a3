"""The store interface: every table-backed store of one database, behind one object.

This is the seam the team server plugs into. Clients and library code reach the metadata
only through ``workspace.stores.<name>``; today ``SqlStores`` answers with SQL over one
``Database`` (SQLite or PostgreSQL). A remote implementation provides the same attribute
names with the same methods over HTTP, and nothing above this layer changes.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.store.audit_store import AuditStore
    from ratchet.store.auth_store import AuthStore
    from ratchet.store.ct_event_store import CTEventStore
    from ratchet.store.ct_state_store import CTStateStore
    from ratchet.store.database import Database
    from ratchet.store.dataset_store import DatasetStore
    from ratchet.store.deletion import DeletionStore
    from ratchet.store.deployment_store import DeploymentStore
    from ratchet.store.feature_definition_store import FeatureDefinitionStore
    from ratchet.store.logged_model_store import LoggedModelStore
    from ratchet.store.monitor_store import MonitorStore
    from ratchet.store.pipeline_store import PipelineStore
    from ratchet.store.registry_store import RegistryStore
    from ratchet.store.reply_store import ReplyStore
    from ratchet.store.schedule_store import ScheduleStore
    from ratchet.store.tracking_store import TrackingStore


class SqlStores:
    """Each store built once, on first use, over the same ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def tracking(self) -> TrackingStore:
        """Experiments, runs, params, metrics, tags, artifacts, dataset inputs."""
        from ratchet.store.tracking_store import TrackingStore

        return TrackingStore(self.db)

    @cached_property
    def registry(self) -> RegistryStore:
        """Registered models, versions, aliases and their history."""
        from ratchet.store.registry_store import RegistryStore

        return RegistryStore(self.db)

    @cached_property
    def logged_models(self) -> LoggedModelStore:
        """MLflow 3's logged models (their files are artifacts of a holder run)."""
        from ratchet.store.logged_model_store import LoggedModelStore

        return LoggedModelStore(self.db)

    @cached_property
    def datasets(self) -> DatasetStore:
        from ratchet.store.dataset_store import DatasetStore

        return DatasetStore(self.db)

    @cached_property
    def features(self) -> FeatureDefinitionStore:
        """The feature store's definitions, materializations and training-set lineage."""
        from ratchet.store.feature_definition_store import FeatureDefinitionStore

        return FeatureDefinitionStore(self.db)

    @cached_property
    def pipelines(self) -> PipelineStore:
        from ratchet.store.pipeline_store import PipelineStore

        return PipelineStore(self.db)

    @cached_property
    def schedules(self) -> ScheduleStore:
        from ratchet.store.schedule_store import ScheduleStore

        return ScheduleStore(self.db)

    @cached_property
    def deployments(self) -> DeploymentStore:
        """Deployments, their plans, change history and feedback."""
        from ratchet.store.deployment_store import DeploymentStore

        return DeploymentStore(self.db)

    @cached_property
    def monitor(self) -> MonitorStore:
        from ratchet.store.monitor_store import MonitorStore

        return MonitorStore(self.db)

    @cached_property
    def ct_state(self) -> CTStateStore:
        from ratchet.store.ct_state_store import CTStateStore

        return CTStateStore(self.db)

    @cached_property
    def ct_events(self) -> CTEventStore:
        from ratchet.store.ct_event_store import CTEventStore

        return CTEventStore(self.db)

    @cached_property
    def deletion(self) -> DeletionStore:
        """Soft delete, restore and purge across the other stores' tables."""
        from ratchet.store.deletion import DeletionStore

        return DeletionStore(self.db)

    @cached_property
    def auth(self) -> AuthStore:
        """The team server's users, API tokens and per-resource grants."""
        from ratchet.store.auth_store import AuthStore

        return AuthStore(self.db)

    @cached_property
    def audit(self) -> AuditStore:
        """The audit log of state changes made through the team server."""
        from ratchet.store.audit_store import AuditStore

        return AuditStore(self.db)

    @cached_property
    def replies(self) -> ReplyStore:
        """The team server's replies to idempotent writes (server-side only)."""
        from ratchet.store.reply_store import ReplyStore

        return ReplyStore(self.db)

    def __repr__(self) -> str:
        return f"SqlStores({self.db!r})"
