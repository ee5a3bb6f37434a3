"""``ratchet check``: the CI/CD gate for a candidate model, as a pull-request comment.

Three checks, each reported with its numbers:

1. **data** — the holdout (and optionally the training data) against a schema YAML;
2. **model** — the candidate loads, its signature accepts the holdout (the server's own
   validator, so what passes here passes in production), and it predicts every row;
3. **champion** — candidate and champion scored on the same holdout and judged by the
   promotion gate (metric margin, slices, latency budget).

The result renders as Markdown; the CLI exits non-zero when any check fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.ct.gate import GateDecision, GatePolicy, LoadedPredictor, decide, evaluate_model
from ratchet.errors import InvalidInput, RatchetError, RequestInvalid

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.registry import RegistryClient
    from ratchet.workspace import Workspace


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    candidate: str
    champion: str | None
    checks: tuple[CheckResult, ...]
    decision: GateDecision | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_markdown(self) -> str:
        icon = {True: "✅", False: "❌"}
        lines = [f"## ratchet check: {icon[self.passed]} "
                 f"{'passed' if self.passed else 'failed'}", "",
                 f"Candidate `{self.candidate}`"
                 + (f" vs champion `{self.champion}`" if self.champion else "") + ".", "",
                 "| check | result | summary |", "|---|---|---|"]
        lines += [f"| {c.name} | {icon[c.passed]} | {_cell(c.summary)} |" for c in self.checks]
        for c in self.checks:
            if c.details:
                lines += ["", f"### {c.name}", ""]
                lines += [f"- {_cell(d)}" for d in c.details]
        if self.decision is not None:
            evidence = self.decision.evidence
            champion, challenger = evidence["champion"], evidence["challenger"]
            lines += ["", "### scores on the holdout", "",
                      f"| | {evidence['metric']} | rows | p99 latency (ms) | top features |",
                      "|---|---|---|---|---|"]
            for label, ev in (("champion", champion), ("candidate", challenger)):
                if ev is None:
                    continue
                latency = "-" if ev["latency_p99_ms"] is None else f"{ev['latency_p99_ms']:.2f}"
                lines.append(f"| {label} | {ev['score']:.4f} | {ev['n']} | {latency} | "
                             f"{', '.join(ev['top_features']) or '-'} |")
            slices = sorted(set(challenger["slices"]) | set((champion or {}).get("slices", {})))
            if slices:
                lines += ["", "| slice | champion | candidate |", "|---|---|---|"]
                for name in slices:
                    ours = challenger["slices"].get(name)
                    theirs = (champion or {}).get("slices", {}).get(name)
                    lines.append(f"| {_cell(name)} | {_num(theirs)} | {_num(ours)} |")
            for flag in self.decision.flags:
                lines.append(f"\n> ⚠️ {_cell(flag)}")
        return "\n".join(lines) + "\n"


def run_check(candidate: str, holdout: pd.DataFrame, label: str, *,
              champion: str | None = None, policy: GatePolicy | None = None,
              schema: str | None = None, workspace: Workspace | None = None
              ) -> CheckReport:
    """Run the three checks for ``candidate`` (a model URI) on a labeled ``holdout``."""
    from ratchet.registry import RegistryClient
    from ratchet.workspace import resolve

    if label not in holdout.columns:
        raise InvalidInput(f"the holdout has no label column {label!r} (columns: "
                           f"{', '.join(map(str, holdout.columns))})")
    registry = resolve(workspace).client(RegistryClient)
    policy = policy or GatePolicy()
    checks = [_data_check(holdout, schema)]
    if holdout.empty:  # nothing to score: a model check on no rows proves nothing
        return CheckReport(candidate, champion, tuple(checks))
    model_check, model = _model_check(registry, candidate, holdout, label)
    if model_check.passed and model is not None:
        model_check = _label_check(model, holdout[label]) or model_check
    checks.append(model_check)
    decision = None
    if model is not None and model_check.passed:
        decision = _champion_check(registry, model, champion, holdout, label, policy)
        checks.append(_decision_result(decision, champion))
    return CheckReport(candidate, champion, tuple(checks), decision)


def _data_check(holdout: pd.DataFrame, schema: str | None) -> CheckResult:
    if holdout.empty:
        return CheckResult("data", False, "the holdout has no rows: nothing to check the "
                           "candidate on")
    if schema is None:
        return CheckResult("data", True, f"{len(holdout):,} holdout rows; no schema given")
    from ratchet.data.validation import validate

    report = validate(holdout, schema)
    details = tuple(f"{f.column or 'table'}: {f.check} ({f.failing_count} rows)"
                    for f in report.failures)
    return CheckResult("data", report.passed, report.headline(), details)


def _model_check(registry: RegistryClient, candidate: str, holdout: pd.DataFrame,
                 label: str) -> tuple[CheckResult, Any]:
    from ratchet.serving.request_formats import ParsedRequest
    from ratchet.serving.request_validation import RequestValidator

    try:
        model = registry.load(candidate)
    except RatchetError as exc:
        return CheckResult("model", False, f"cannot load {candidate}: {exc}"), None
    features = holdout.drop(columns=[label])
    validator = RequestValidator(model.signature, allowed_extra=tuple(features.columns))
    try:
        columns = {c: features[c].to_numpy() for c in features.columns}
        validator.validate(ParsedRequest(columns, len(features)))
    except RequestInvalid as exc:
        details = tuple(p["msg"] for p in exc.problems[:20])
        return CheckResult("model", False, f"the holdout does not match the candidate's "
                           f"signature ({exc.total} problems)", details), model
    except InvalidInput as exc:
        return CheckResult("model", False, str(exc)), model
    try:
        predictions = model.predict(features)
    except Exception as exc:  # a model that raises on valid rows fails the check
        return CheckResult("model", False, f"predict raised {type(exc).__name__}: {exc}"), model
    if len(predictions) != len(features):
        return CheckResult("model", False, f"{len(predictions)} predictions for "
                           f"{len(features)} rows"), model
    return CheckResult("model", True, f"loads ({model.flavor}), signature accepts all "
                       f"{len(features):,} rows, predicts every row"), model


def _label_check(model: Any, labels: pd.Series) -> CheckResult | None:
    """A classifier scored on labels it has never seen scores 0 for a reason that is not
    the model's: say so instead (usually the label column or its encoding is wrong)."""
    classes = getattr(model.raw, "classes_", None)
    if classes is None:
        return None
    known = {_plain(c) for c in classes}
    seen = {_plain(v) for v in labels.dropna().unique()}
    if seen and not seen & known:
        shown = ", ".join(sorted(map(repr, seen))[:10])
        return CheckResult("model", False, f"none of the holdout's labels ({shown}) is among "
                           f"the candidate's classes ({', '.join(sorted(map(repr, known)))}): "
                           "check the --label column and its encoding")
    return None


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so 1 (int64) and 1 (int) compare equal."""
    return value.item() if hasattr(value, "item") else value


def _champion_check(registry: RegistryClient, model: Any, champion: str | None,
                    holdout: pd.DataFrame, label: str, policy: GatePolicy) -> GateDecision:
    features, y = holdout.drop(columns=[label]), holdout[label]
    ours = evaluate_model(LoadedPredictor(model), features, y, policy=policy)
    theirs = None
    if champion is not None:
        theirs = evaluate_model(LoadedPredictor(registry.load(champion)), features, y,
                                policy=policy)
    return decide(policy, theirs, ours)


def _decision_result(decision: GateDecision, champion: str | None) -> CheckResult:
    evidence = decision.evidence
    score = evidence["challenger"]["score"]
    if champion is None:
        summary = f"{evidence['metric']} {score:.4f}; no champion to compare with"
    else:
        summary = (f"{evidence['metric']} {score:.4f} vs {evidence['champion']['score']:.4f} "
                   f"(needs > +{evidence['policy']['margin']:g}, better with "
                   f"{evidence['policy']['confidence'] * 100:g}% confidence)")
        low, high = (evidence.get("test") or {}).get("interval") or (None, None)
        if low is not None and high is not None:
            summary += f"; improvement in [{low:+.4f}, {high:+.4f}]"
    return CheckResult("champion", decision.passed, summary, decision.reasons + decision.flags)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
