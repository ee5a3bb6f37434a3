"""``ratchet monitor``: evaluate a deployment's recent traffic (drift, quality, performance)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    key_values,
    note,
    print_all,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput

app = typer.Typer(
    help="Monitoring: drift, data quality and performance of a deployment's recent traffic "
    "against its model's training data, with an HTML report.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
DeploymentName = Annotated[str, typer.Argument(help="The deployment to monitor.")]


@app.command("run")
def run(
    deployment: DeploymentName,
    window: Annotated[str, typer.Option(
        "--window", "-w", help="How far back from --end: 15min, 1h, 1h30min, 6h, 1d, 7d ...")] = "1h",
    end: Annotated[str | None, typer.Option(
        "--end", help="End of the window, ISO 8601 (default: now; naive means UTC).")] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Reference dataset NAME[@VERSION] (default: the model's "
        "training data, from lineage).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory for the HTML and JSON report (default: "
        "<home>/reports/<deployment>/).", file_okay=False)] = None,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", help="POST a JSON alert here when the verdict changes.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate one window, store the result, write the report, alert on a changed verdict."""
    from ratchet.monitoring.monitor import run_monitor
    from ratchet.monitoring.webhook import validate_webhook

    if webhook is not None:  # before any work: a bad URL is not found only when alerting
        webhook = validate_webhook(webhook, "--webhook")
    when = None
    if end is not None:
        try:
            when = datetime.fromisoformat(end)
        except ValueError:
            raise InvalidInput(f"--end {end!r} is not an ISO 8601 time "
                               "(e.g. 2026-11-22T13:00)") from None
    result = run_monitor(deployment, window=window, end=when, reference=reference,
                         report_dir=out, webhook=webhook,
                         workspace=Session().workspace)
    if as_json:
        print_json({**result.result, "report_html": str(result.report_html),
                    "report_json": str(result.report_json)})
        return
    alert = result.alert
    r = result.result
    drift = r.get("drift") or {}
    performance = r.get("performance") or {}
    metrics = performance.get("metrics") or {}
    estimated = performance.get("estimated") or {}
    print_all(key_values([
        ("deployment", r["deployment"]),
        ("model", f"{r['model']['name']} v{r['model']['version']}"),
        ("window", f"{r['window']['start']} .. {r['window']['end']}"),
        ("rows", r["rows"]),
        ("verdict", r["verdict"] + (f" (was {result.previous_verdict})" if result.changed
                                     else "")),
        ("drifted columns", ", ".join(drift.get("drifted_columns", [])) or "-"),
        ("labeled rows", performance.get("labeled", 0)),
        ("accuracy", metrics.get("accuracy")),
        ("estimated accuracy" + ("" if not estimated else " (calibrated)"
                                 if estimated.get("calibrated") else " (uncalibrated)"),
         estimated.get("accuracy")),
        ("report", str(result.report_html)),
        *([("webhook", f"{alert.webhook}: " + ("delivered" if alert.delivered else
                                               f"FAILED ({alert.error})"))]
          if alert is not None else []),
    ], title="monitor"))


@app.command("history")
def history(deployment: DeploymentName, limit: Annotated[int, typer.Option(
        "--limit", help="How many of the newest results.", min=1)] = 20,
            as_json: JsonOption = False) -> None:
    """Stored monitor results of a deployment, oldest first."""
    from ratchet.monitoring.monitor import list_monitor_results

    found = list_monitor_results(deployment, limit=limit, workspace=Session().workspace)
    if as_json:
        print_json([{"result_id": r.result_id, "verdict": r.verdict, "rows": r.rows,
                     "window_start": r.window_start, "window_end": r.window_end,
                     "report": r.report_path,
                     "drifted_columns": (r.result.get("drift") or {}).get("drifted_columns")}
                    for r in found])
        return
    if not found:
        note(f"no monitor results for {deployment!r} yet (`ratchet monitor run {deployment}`)")
        return
    out = table("at", "window end", "rows", "verdict", "drifted", "report")
    for r in found:
        drifted = (r.result.get("drift") or {}).get("drifted_columns") or []
        add_row(out, cell_time(r.created_at), cell_time(r.window_end), r.rows, r.verdict,
                ", ".join(drifted) or "-", r.report_path)
    console().print(out)
    say(f"{len(found)} result(s)")
