"""The backtest tearsheet: `render_report` writes one self-contained HTML file (see page.py).

Modules: charts (PNG bytes), tables (HTML fragments), page (the file); the numbers come from
tapeflow.backtest.analysis and formatting from tapeflow.backtest.formatting.
"""

from tapeflow.backtest.analysis.periods import monthly_returns
from tapeflow.backtest.formatting import format_metric, headline_pairs, metric_kind
from tapeflow.backtest.report.charts import png_size
from tapeflow.backtest.report.page import EQUITY_PNG, MAX_TRADES, equity_png_path, render_report
from tapeflow.backtest.report.tables import TRADES_CSV

__all__ = ["EQUITY_PNG", "MAX_TRADES", "TRADES_CSV", "equity_png_path", "format_metric", "headline_pairs", "metric_kind",
           "monthly_returns", "png_size", "render_report"]
