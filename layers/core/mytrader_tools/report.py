"""A self-contained HTML report (inline SVG, no scripts, nothing fetched): equity curves against
buy-and-hold, drawdowns, decision mix over time, LLM accuracy by confidence, sample decisions."""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import datetime

from mytrader.metrics import accuracy_by_confidence

COLORS = {"baseline": "#6b7280", "consensus": "#2563eb", "override": "#dc2626", "advisory": "#16a34a",
          "buy_and_hold": "#f59e0b", "demo": "#7c3aed"}
W, H, PAD = 900, 260, 40
SIGNED_PERCENT = {"total_return", "cagr"}  # fractions in the figures and the JSON, percentages in tables
PERCENT = {"max_drawdown", "win_rate", "exposure", "llm_accuracy"}


def metric_text(key: str, value: object) -> str:
    """A figure as tables show it: returns and rates in %, cost in USD, counts as integers."""
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key in SIGNED_PERCENT:
            return f"{value * 100:+,.1f}%"
        if key in PERCENT:
            return f"{value * 100:,.1f}%"
        if key.endswith("_usd"):
            return f"{value:,.4f}" if value < 100 else f"{value:,.2f}"
        if isinstance(value, float):
            return f"{value:,.2f}"
        return f"{value:,}"
    return str(value)


def _polyline(points: list[tuple[float, float]], color: str, width: float = 1.5) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{path}"/>'


def _line_chart(series: dict[str, list[tuple[datetime, float]]], title: str, fmt=lambda v: f"{v:,.0f}",
                log_scale: bool = False) -> str:
    import math

    allpts = [(t.timestamp(), v) for s in series.values() for t, v in s if v is not None]
    if not allpts:
        return ""
    tx = lambda v: math.log(max(v, 1e-9)) if log_scale else v  # noqa: E731
    t0, t1 = min(p[0] for p in allpts), max(p[0] for p in allpts)
    v0, v1 = min(tx(p[1]) for p in allpts), max(tx(p[1]) for p in allpts)
    v1 = v1 if v1 > v0 else v0 + 1
    sx = lambda t: PAD + (t - t0) / max(t1 - t0, 1) * (W - 2 * PAD)  # noqa: E731
    sy = lambda v: H - PAD + (PAD * 2 - H) * (tx(v) - v0) / (v1 - v0)  # noqa: E731
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{PAD}" y="18" font-size="13" font-weight="600">{html.escape(title)}</text>']
    for k in range(5):
        v = v0 + (v1 - v0) * k / 4
        real = math.exp(v) if log_scale else v
        y = sy(real)
        parts.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="2" y="{y + 4:.1f}" font-size="10" fill="#6b7280">{html.escape(fmt(real))}</text>')
    for name, pts in series.items():
        step = max(1, len(pts) // 1500)
        thin = [(sx(t.timestamp()), sy(v)) for t, v in pts[::step] if v is not None]
        parts.append(_polyline(thin, COLORS.get(name, "#111827")))
    parts.append(f'<text x="{PAD}" y="{H - 8}" font-size="10" fill="#6b7280">'
                 f'{datetime.fromtimestamp(t0).date()} … {datetime.fromtimestamp(t1).date()}</text>')
    legend_x = PAD + 200
    for name in series:
        parts.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{COLORS.get(name, "#111827")}"/>'
                     f'<text x="{legend_x + 14}" y="17" font-size="11">{html.escape(name)}</text>')
        legend_x += 24 + 8 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _drawdowns(equity: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    out, peak = [], 0.0
    for t, v in equity:
        peak = max(peak, v)
        out.append((t, -(1 - v / peak) if peak else 0.0))
    return out


def _decision_mix(decisions) -> str:
    by_year: dict[int, Counter] = defaultdict(Counter)
    for d in decisions:
        by_year[d.bar_ts.year][d.action.value] += 1
    if not by_year:
        return "<p>No decisions.</p>"
    years = sorted(by_year)
    peak = max(sum(c.values()) for c in by_year.values()) or 1
    bw = (W - 2 * PAD) / len(years)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="decision mix">',
             '<text x="40" y="18" font-size="13" font-weight="600">Decisions per year (BUY / SELL / HOLD asked)</text>']
    colors = {"BUY": "#16a34a", "SELL": "#dc2626", "HOLD": "#9ca3af"}
    for k, y in enumerate(years):
        base: float = H - PAD
        for act in ("BUY", "SELL", "HOLD"):
            n = by_year[y][act]
            h = n / peak * (H - 2 * PAD - 10)
            base -= h
            parts.append(f'<rect x="{PAD + k * bw + 2:.1f}" y="{base:.1f}" width="{bw - 4:.1f}" height="{h:.1f}" '
                         f'fill="{colors[act]}"><title>{y} {act}: {n}</title></rect>')
        parts.append(f'<text x="{PAD + k * bw + 2:.1f}" y="{H - PAD + 14}" font-size="10">{y}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _accuracy_bars(acc: list[dict]) -> str:
    if not acc:
        return "<p>No LLM answers to score.</p>"
    bw = (W - 2 * PAD) / len(acc)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="accuracy by confidence">',
             '<text x="40" y="18" font-size="13" font-weight="600">Advisor accuracy by confidence bucket</text>']
    for k, row in enumerate(acc):
        a = row["accuracy"] or 0.0
        h = a * (H - 2 * PAD - 10)
        x = PAD + k * bw + 6
        parts.append(f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{bw - 12:.1f}" height="{h:.1f}" fill="#2563eb">'
                     f'<title>{row["bucket"]}: {a:.1%} of {row["n"]}</title></rect>'
                     f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="10">{row["bucket"]} (n={row["n"]})</text>'
                     f'<text x="{x:.1f}" y="{H - PAD - h - 4:.1f}" font-size="10">{a:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict], cols: list[str], fmt=lambda key, v: _fmt(v)) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c, r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_report(results: dict, title: str, advisor_label: str, notes: list[str] | None = None) -> str:
    """`results` maps run name -> BacktestResult."""
    metric_cols = ["run", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor",
                   "trades", "exposure", "llm_accuracy", "fresh_calls", "cache_hits", "cost_usd"]
    rows = [{"run": name, **r.metrics, "cache_hits": r.metrics.get("llm_cache_hits"),
             "fresh_calls": r.metrics["llm_calls"] - r.metrics["llm_cache_hits"] if "llm_cache_hits" in r.metrics
             else r.metrics.get("llm_calls")} for name, r in results.items()]
    equity = {name: r.equity for name, r in results.items() if r.equity}
    dd = {name: _drawdowns(r.equity) for name, r in results.items() if r.equity}
    llm_runs = [r for r in results.values() if r.llm_scored]
    acc = accuracy_by_confidence(llm_runs[0].llm_scored) if llm_runs else []
    decided = next((r for n, r in results.items() if n in ("consensus", "override", "demo") and r.decisions),
                   next((r for r in results.values() if r.decisions), None))
    samples = []
    if decided:
        with_llm = [d for d in decided.decisions if d.advice is not None][:: max(1, len(decided.decisions) // 40)][:12]
        for d in with_llm:
            samples.append({"date": d.bar_ts.date().isoformat(), "symbol": d.symbol, "final": d.action.value,
                            "strategy": d.strategy.action.value, "llm": d.advice.decision.value,
                            "confidence": d.advice.confidence, "size %": d.position_size_pct,
                            "reasoning": d.advice.reasoning, "key factors": ", ".join(d.advice.key_factors)})
    css = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:980px;color:#111827}"
           "table{border-collapse:collapse;font-size:11px;margin:8px 0 20px;display:block;overflow-x:auto;"
           "max-width:100%}td,th{border:1px solid #e5e7eb;"
           "padding:3px 6px;text-align:right}th{background:#f3f4f6}td:first-child{text-align:left}"
           ".note{background:#fef3c7;padding:8px 12px;border-radius:6px;font-size:13px}")
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in (notes or []))
    sample_cols = ["date", "symbol", "final", "strategy", "llm", "confidence", "size %", "reasoning", "key factors"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{css}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Advisor: {html.escape(advisor_label)}. Returns and rates in %; fresh calls were sent to the model,
cache hits were answered from the response cache; cost in USD, each run as if run alone.</p>
<ul>{note_html}</ul>
<h2>Summary</h2>{_table(rows, metric_cols, metric_text)}
<h2>Equity</h2>{_line_chart(equity, "Equity (log scale)", log_scale=True)}
<h2>Drawdowns</h2>{_line_chart(dd, "Drawdown from peak", fmt=lambda v: f"{v:.1%}")}
<h2>Decision mix</h2>{_decision_mix(decided.decisions if decided else [])}
<h2>Advisor accuracy by confidence</h2>
<p>Accuracy: the advice matched the hindsight label (forward return over the horizon, HOLD band ±1.5 %).</p>
{_accuracy_bars(acc)}{_table(acc, ["bucket", "n", "accuracy"], lambda k, v: metric_text(
    "llm_accuracy" if k == "accuracy" else k, v))}
<h2>Sample decisions</h2>{_table(samples, sample_cols)}
</body></html>"""
