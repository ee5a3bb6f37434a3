"""The metadata store's tables (SQLAlchemy Core). Alembic migrations must match these.

Times are integer milliseconds since the epoch (UTC). Ids are 32-char hex UUIDv7.
``latest_metrics`` keeps one row per (run, key) so that search and listing never scan
the full metric history.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = String(32)
KEY = String(250)
PARAM_VALUE = String(6000)
TAG_VALUE = Text()
NAME = String(256)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("lifecycle", String(16), nullable=False, default="active"),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms); gc purges
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", ID, ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", TAG_VALUE, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", ID, primary_key=True),
    Column("experiment_id", ID, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("parent_run_id", ID, ForeignKey("runs.run_id"), nullable=True),
    Column("name", NAME, nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("user", String(128), nullable=True),
    Column("host", String(256), nullable=True),
    Column("entry_point", Text, nullable=True),
    Column("git_commit", String(64), nullable=True),
    Column("git_branch", String(256), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("git_diff_hash", String(64), nullable=True),
    Column("python_version", String(32), nullable=True),
    Column("packages", Text, nullable=True),  # JSON object {name: version}
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms); gc purges
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_run_id"),
    Index(None, "status"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", PARAM_VALUE, nullable=False),
    # Search starts from (key, value). PostgreSQL caps btree rows at ~2.7 kB and params may
    # hold 6,000 chars, so there a hash index on the value (any size) does the job.
    Index("ix_params_key_value_run_id", "key", "value", "run_id").ddl_if(dialect="sqlite"),
    Index("ix_params_value_hash", "value", postgresql_using="hash").ddl_if(
        dialect="postgresql"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", TAG_VALUE, nullable=False),
    Index(None, "key"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("value", Float, nullable=True),  # NULL with is_nan for NaN (SQLite has no NaN)
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(None, "run_id", "key", "step"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Float, nullable=True),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(None, "key", "value", "run_id"),  # covering: search reads no table rows
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "digest"),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("version", Integer, nullable=True),
    Column("role", String(64), nullable=False),
    Column("source", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "name", "version"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms); gc purges
    Column("purged_version", Integer, nullable=True),  # highest version gc removed
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("name", NAME, ForeignKey("registered_models.name", ondelete="CASCADE"),
           primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", TAG_VALUE, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", NAME, ForeignKey("registered_models.name", ondelete="CASCADE"),
           primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.run_id"), nullable=True),
    Column("artifact_path", String(1024), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("manifest", Text, nullable=False),  # JSON: the model's manifest
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms); gc purges
    Index(None, "run_id"),
    Index(None, "content_hash"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", TAG_VALUE, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"],
                         ondelete="CASCADE"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("alias", KEY, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"],
                         ondelete="CASCADE"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("name", NAME, ForeignKey("registered_models.name", ondelete="CASCADE"),
           nullable=False),
    Column("alias", KEY, nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),  # NULL: the alias was deleted
    Column("actor", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", BigInteger, nullable=False),
    Index(None, "name", "alias", "at"),
)


datasets = Table(
    "datasets",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("purged_version", Integer, nullable=True),  # highest version gc removed
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", NAME, ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),  # of the canonical Parquet snapshot
    Column("size_bytes", BigInteger, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("schema", Text, nullable=False),  # JSON: [{name, type, nullable}]
    Column("profile", Text, nullable=False),  # JSON: DatasetProfile.to_dict()
    Column("source", Text, nullable=True),
    Column("parent_version", Integer, nullable=True),
    Column("created_by_run", ID, ForeignKey("runs.run_id", ondelete="SET NULL"), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms); gc purges
    UniqueConstraint("name", "digest"),  # identical content is one version
    Index(None, "digest"),
)

dataset_sources = Table(
    "dataset_sources",
    metadata,
    # A file once logged: re-logging it unchanged is a hash of its bytes, not a re-parse.
    Column("name", NAME, ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("raw_digest", String(64), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["name", "version"],
                         ["dataset_versions.name", "dataset_versions.version"],
                         ondelete="CASCADE"),
)


# ---------------------------------------------------------------------------- pipelines
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", ID, primary_key=True),
    Column("pipeline", NAME, nullable=False),
    Column("ref", Text, nullable=True),  # "module:qualname" when importable (resume, schedules)
    Column("params", Text, nullable=False),  # JSON object
    Column("status", String(16), nullable=False),  # running|finished|failed|abandoned|killed
    Column("executor", String(64), nullable=False),
    Column("tracking_run_id", ID, ForeignKey("runs.run_id", ondelete="SET NULL"),
           nullable=True),
    Column("resumed_from", ID, nullable=True),
    Column("schedule_id", ID, nullable=True),
    Column("outputs", Text, nullable=True),  # JSON: the pipeline's returned structure
    Column("error", Text, nullable=True),
    Column("host", String(256), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
    Column("heartbeat_at", BigInteger, nullable=False),
    Index(None, "pipeline", "started_at"),
    Index(None, "status", "heartbeat_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("step_run_id", ID, primary_key=True),
    Column("pipeline_run_id", ID, ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"),
           nullable=False),
    Column("node", NAME, nullable=False),  # unique within the pipeline run
    Column("step", NAME, nullable=False),  # the step function's name
    Column("position", Integer, nullable=False),  # topological order
    Column("status", String(16), nullable=False),  # pending|running|finished|cached|failed|skipped
    Column("upstream", Text, nullable=False),  # JSON list of node names
    Column("params", Text, nullable=False),  # JSON: literal arguments
    Column("code_hash", String(64), nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("cached_from", ID, nullable=True),  # the step run whose outputs were reused
    Column("attempts", Integer, nullable=False, default=0),
    Column("tracking_run_id", ID, ForeignKey("runs.run_id", ondelete="SET NULL"),
           nullable=True),
    Column("log_digest", String(64), nullable=True),  # captured stdout/stderr blob
    Column("error", Text, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    UniqueConstraint("pipeline_run_id", "node"),
    Index(None, "cache_key", "status"),
)

step_outputs = Table(
    "step_outputs",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_runs.step_run_id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", KEY, primary_key=True),
    Column("digest", String(64), nullable=False),  # content hash of the materialized value
    Column("materializer", String(64), nullable=False),
    Column("files", Text, nullable=False),  # JSON [[relative path, blob digest, size], ...]
    # A small single-file value lives here instead of the blob store: no file, no fsync.
    Column("inline", LargeBinary, nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("dataset_name", NAME, nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("model_name", NAME, nullable=True),
    Column("model_version", Integer, nullable=True),
    Index(None, "digest"),
    Index(None, "dataset_name", "dataset_version"),
    Index(None, "model_name", "model_version"),
)

step_inputs = Table(
    "step_inputs",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_runs.step_run_id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", KEY, primary_key=True),  # the argument
    Column("digest", String(64), nullable=False),
    Column("source_node", NAME, nullable=False),
    Column("source_output", KEY, nullable=False),
    Index(None, "digest"),
)

# ---------------------------------------------------------------------------- schedules
schedules = Table(
    "schedules",
    metadata,
    Column("schedule_id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("pipeline_ref", Text, nullable=False),  # "module:qualname"
    Column("cron", String(128), nullable=False),
    Column("params", Text, nullable=False),  # JSON object
    Column("executor", String(64), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("next_run_at", BigInteger, nullable=False),
    Column("last_run_at", BigInteger, nullable=True),
    Column("last_pipeline_run_id", ID, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "enabled", "next_run_at"),
)

leases = Table(
    "leases",
    metadata,
    # A named lock with an expiry, held by one process at a time (e.g. the scheduler).
    Column("name", KEY, primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)


# ---------------------------------------------------------------------------- serving
deployments = Table(
    "deployments",
    metadata,
    # A served endpoint; what it serves is its newest plan revision.
    Column("name", NAME, primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

deployment_plans = Table(
    "deployment_plans",
    metadata,
    # Every plan a deployment ever had, numbered from 1; servers poll the newest.
    Column("deployment", NAME, ForeignKey("deployments.name", ondelete="CASCADE"),
           primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("plan", Text, nullable=False),  # JSON: kind + model references
    Column("reason", Text, nullable=True),
    Column("actor", String(256), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    # Ground truth for a logged prediction row, possibly days later; the newest wins.
    # Keyed per deployment: one deployment's client never relabels another's rows.
    Column("request_id", String(64), nullable=False),
    Column("row", Integer, nullable=False),
    Column("deployment", NAME, nullable=False),
    Column("value", Text, nullable=False),  # JSON scalar: a label or a number
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("deployment", "request_id", "row"),
    Index(None, "deployment", "received_at"),
)


# ---------------------------------------------------------------------------- monitoring
monitor_results = Table(
    "monitor_results",
    metadata,
    # One evaluation of a deployment over a window of its prediction log.
    Column("result_id", ID, primary_key=True),
    Column("deployment", NAME, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("result", Text, nullable=False),  # the whole result as JSON
    Column("report_path", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "deployment", "created_at"),
)


# ---------------------------------------------------------------------------- continuous training
ct_events = Table(
    "ct_events",
    metadata,
    # Every decision of the loop (trigger, retrain, gate, rollout step, promotion,
    # rollback), with its evidence; append-only, ordered by id (UUIDv7, time-sortable).
    Column("event_id", ID, primary_key=True),
    Column("model", NAME, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON object
    Column("actor", String(256), nullable=True),
    Column("at", BigInteger, nullable=False),
    Index(None, "model", "at"),
)


def exists_on(obj: object, dialect: str) -> bool:
    """Whether a schema object is created on ``dialect`` (honours ``.ddl_if(dialect=...)``).

    Alembic's autogenerate does not look at ``ddl_if``; its ``include_object`` hook uses this.
    """
    condition = getattr(obj, "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return True
    wanted = condition.dialect
    return dialect == wanted if isinstance(wanted, str) else dialect in wanted


ct_controllers = Table(
    "ct_controllers",
    metadata,
    # One continuous-training controller per model: its state machine and its lease.
    # Every change is a compare-and-swap on seq by the lease holder, so a step commits
    # once, and two controllers never both act.
    Column("model", NAME, primary_key=True),
    Column("state", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("cycle", BigInteger, nullable=False),
    Column("data", Text, nullable=False),       # JSON object: the state's working data
    Column("requests", Text, nullable=False),   # JSON list: retrain/approve/reject asks
    Column("updated_at", BigInteger, nullable=False),
    Column("lease_holder", String(128), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
)



# ---------------------------------------------------------------------------- team server
users = Table(
    "users",
    metadata,
    # People and services that call the team server. No passwords: they hold API tokens.
    Column("name", NAME, primary_key=True),  # canonical (ratchet.store.auth_store.user_name)
    Column("role", String(16), nullable=False),  # reader|writer|admin
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),  # a disabled user's tokens stop working
)

api_tokens = Table(
    "api_tokens",
    metadata,
    # Only the SHA-256 of a token's secret is kept: the plain token is shown once.
    Column("token_id", ID, primary_key=True),
    Column("user_name", NAME, ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("label", String(256), nullable=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),  # updated at most once a minute
    Index(None, "user_name"),
)

grants = Table(
    "grants",
    metadata,
    # A user's level on one experiment, model or deployment; it overrides the role's level
    # there, up or down ("none" shuts a writer out of one model).
    Column("user_name", NAME, ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # experiment|model|deployment
    Column("resource", NAME, nullable=False),
    Column("level", String(16), nullable=False),  # none|read|write|admin
    PrimaryKeyConstraint("user_name", "kind", "resource"),
)

audit_log = Table(
    "audit_log",
    metadata,
    # One row per state change through the server: who, what, when, from where.
    Column("event_id", ID, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(128), nullable=False),  # e.g. "registry.set_alias"
    Column("kind", String(16), nullable=True),
    Column("resource", NAME, nullable=True),
    Column("client", String(128), nullable=True),  # the remote address
    Column("detail", Text, nullable=True),  # a short JSON summary
    Index(None, "at"),
)

server_replies = Table(
    "server_replies",
    metadata,
    # The reply to an idempotent POST, by its client-chosen key: a retried request gets
    # the first answer instead of doing the work twice. status NULL: still in progress.
    Column("key", String(64), primary_key=True),
    Column("actor", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Index(None, "created_at"),
)


# ---------------------------------------------------------------------------- logged models
# MLflow 3's logged models. A model's files are artifacts ``models/<model_id>/...`` of its
# holder run (its source run, or a run made for it), so every file stays a run artifact.
logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(64), primary_key=True),  # "m-" + 32 hex
    Column("experiment_id", ID, ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
           nullable=False),
    Column("name", NAME, nullable=False),
    Column("artifact_run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"),
           nullable=False),
    Column("artifact_path", String(1024), nullable=False),
    Column("source_run_id", ID, ForeignKey("runs.run_id", ondelete="SET NULL"), nullable=True),
    Column("status", String(16), nullable=False),  # pending|ready|failed
    Column("status_message", Text, nullable=True),
    Column("model_type", String(256), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # soft-deleted at (ms)
    Index(None, "experiment_id", "created_at"),
    Index(None, "artifact_run_id"),
    Index(None, "source_run_id"),
)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", PARAM_VALUE, nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", TAG_VALUE, nullable=False),
)

logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"),
           nullable=False),
    Column("key", KEY, nullable=False),
    Column("value", Float, nullable=True),  # NULL with is_nan for NaN
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="SET NULL"), nullable=True),
    Column("dataset_name", NAME, nullable=True),
    Column("dataset_digest", String(64), nullable=True),
    Index(None, "model_id", "key"),
)

logged_model_outputs = Table(
    "logged_model_outputs",
    metadata,
    # A run's outputs (MLflow's log_outputs): the models it produced, at a step.
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"),
           primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "model_id"),
)

logged_model_inputs = Table(
    "logged_model_inputs",
    metadata,
    # A run's model inputs (MLflow's log_inputs with models): the models it used.
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"),
           primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "model_id"),
)


# ---------------------------------------------------------------------------- feature store
# Entities, feature views and on-demand views, each a numbered series of immutable
# definitions (a changed definition is a new version); the spec is canonical JSON.
feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(16), primary_key=True),  # entity | feature_view | on_demand
    Column("name", NAME, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
)

feature_materializations = Table(
    "feature_materializations",
    metadata,
    # One materialization of a view's rows with event times in (start, end] into an online
    # store; the latest end per (view, store) is where the next incremental run starts.
    Column("materialization_id", ID, primary_key=True),
    Column("view", NAME, nullable=False),
    Column("view_version", BigInteger, nullable=False),
    Column("online_store", String(512), nullable=False),
    Column("start_at", BigInteger, nullable=True),  # µs since the epoch, exclusive; NULL: all
    Column("end_at", BigInteger, nullable=False),  # µs since the epoch, inclusive
    Column("rows", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "view", "online_store", "end_at"),
)

feature_training_sets = Table(
    "feature_training_sets",
    metadata,
    # A training set logged as a dataset version, and the definition versions it was built
    # from: the lineage from a model's training data back to its feature definitions.
    Column("dataset_name", NAME, primary_key=True),
    Column("dataset_version", BigInteger, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "kind", "name"),
)
