"""Where a recorded backtest lives (``BacktestResult.record``; the dashboard's loop pages
read it): a run tagged ``BACKTEST_TAG`` = the model, with the result and the report as
artifacts and one headline metric per strategy. Import-free, so a reader (the dashboard)
does not load the controller and the registry at start-up to learn five names."""

from __future__ import annotations

BACKTEST_TAG = "ratchet.ct.backtest"
BACKTEST_RESULT = "backtest/result.json"
BACKTEST_REPORT = "backtest/report.html"
BACKTEST_METRIC = "backtest.accuracy."
BACKTEST_EXPERIMENT = "ct-backtests"
