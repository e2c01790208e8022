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


def _polyline(points: list[tuple[float, float]], color: str, width: float = 1.5, dashed: bool = False) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash} points="{path}"/>'


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) that span lo..hi in about `count` steps."""
    import math

    span = hi - lo if hi > lo else abs(hi) or 1.0
    raw = span / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + k * step for k in range(int(math.ceil((hi - first) / step)) + 1)]


def _clip_to_common_end(series: dict[str, list[tuple[datetime, float]]]) -> dict[str, list[tuple[datetime, float]]]:
    """Every curve up to the earliest last point of any curve: the x axis ends with the window, not after it."""
    ends = [pts[-1][0] for pts in series.values() if pts]
    if not ends:
        return series
    stop = min(ends)
    return {name: [(t, v) for t, v in pts if t <= stop] for name, pts in series.items()}


def _line_chart(series: dict[str, list[tuple[datetime, float]]], title: str, fmt=lambda v: f"{v:,.0f}",
                log_scale: bool = False) -> str:
    """`log_scale` is used only when the values span 2x or more; over a small range a log axis only bends ticks."""
    import math

    series = _clip_to_common_end(series)
    allpts = [(t.timestamp(), v) for s in series.values() for t, v in s if v is not None]
    if not allpts:
        return ""
    lo_real, hi_real = min(p[1] for p in allpts), max(p[1] for p in allpts)
    log_scale = log_scale and lo_real > 0 and hi_real / lo_real >= 2
    ticks = [v for v in nice_ticks(lo_real, hi_real) if not log_scale or v > 0]
    lo_real, hi_real = min(lo_real, ticks[0]), max(hi_real, ticks[-1])
    tx = lambda v: math.log(max(v, 1e-9)) if log_scale else v  # noqa: E731
    t0, t1 = min(p[0] for p in allpts), max(p[0] for p in allpts)
    v0, v1 = tx(lo_real), tx(hi_real)
    v1 = v1 if v1 > v0 else v0 + 1
    sx = lambda t: PAD + 20 + (t - t0) / max(t1 - t0, 1) * (W - 2 * PAD - 20)  # noqa: E731
    sy = lambda v: H - PAD + (PAD * 2 - H) * (tx(v) - v0) / (v1 - v0)  # noqa: E731
    shown = f"{title} (log scale)" if log_scale else title
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{html.escape(shown)}">',
             f'<text x="{PAD}" y="18" font-size="13" font-weight="600">{html.escape(shown)}</text>']
    for real in ticks:
        y = sy(real)
        parts.append(f'<line x1="{PAD + 20}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="2" y="{y + 4:.1f}" font-size="10" fill="#6b7280">{html.escape(fmt(real))}</text>')
    ordered = sorted(series, key=lambda n: n == "demo")  # the demo on top: it may lie exactly on the backtest
    for name in ordered:
        pts = series[name]
        step = max(1, len(pts) // 1500)
        thin = [(sx(t.timestamp()), sy(v)) for t, v in pts[::step] if v is not None]
        parts.append(_polyline(thin, COLORS.get(name, "#111827"), dashed=name == "demo"))
    parts.append(f'<text x="{PAD + 20}" y="{H - 8}" font-size="10" fill="#6b7280">'
                 f'{datetime.fromtimestamp(t0).date()} … {datetime.fromtimestamp(t1).date()}</text>')
    parts.append(_legend([(n, COLORS.get(n, "#111827")) for n in series], PAD + 260))
    parts.append("</svg>")
    return "".join(parts)


def _legend(items: list[tuple[str, str]], x: float) -> str:
    out = []
    for name, color in items:
        out.append(f'<rect x="{x:.0f}" y="8" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14:.0f}" y="17" font-size="11">{html.escape(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(out)


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
             '<text x="40" y="18" font-size="13" font-weight="600">Decisions per year</text>']
    colors = {"BUY": "#16a34a", "SELL": "#dc2626", "HOLD": "#9ca3af"}
    totals = Counter[str]()
    for c in by_year.values():
        totals.update(c)
    parts.append(_legend([(f"{act} ({totals[act]:,})", colors[act]) for act in colors], PAD + 200))
    for k, y in enumerate(years):
        base: float = H - PAD
        for act in ("BUY", "SELL", "HOLD"):
            n = by_year[y][act]
            h = n / peak * (H - 2 * PAD - 24)
            base -= h
            parts.append(f'<rect x="{PAD + k * bw + 2:.1f}" y="{base:.1f}" width="{bw - 4:.1f}" height="{h:.1f}" '
                         f'fill="{colors[act]}"><title>{y} {act}: {n}</title></rect>')
        parts.append(f'<text x="{PAD + k * bw + 2:.1f}" y="{H - PAD + 14}" font-size="10">{y}</text>'
                     f'<text x="{PAD + k * bw + 2:.1f}" y="{base - 4:.1f}" font-size="10">'
                     f'{sum(by_year[y].values()):,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _accuracy_bars(acc: list[dict]) -> str:
    if not acc:
        return "<p>No LLM answers to score.</p>"
    bw = (W - 2 * PAD) / len(acc)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="accuracy by confidence">',
             '<text x="40" y="18" font-size="13" font-weight="600">Advisor accuracy by confidence bucket</text>']
    for k, row in enumerate(acc):
        x = PAD + k * bw + 6
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="10">{row["bucket"]} (n={row["n"]})</text>')
        a = row["accuracy"]
        if a is None:  # an empty bucket: no bar, and the table's dash
            parts.append(f'<text x="{x:.1f}" y="{H - PAD - 4}" font-size="10">—</text>')
            continue
        h = a * (H - 2 * PAD - 10)
        parts.append(f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{bw - 12:.1f}" height="{h:.1f}" fill="#2563eb">'
                     f'<title>{row["bucket"]}: {a:.1%} of {row["n"]}</title></rect>'
                     f'<text x="{x:.1f}" y="{H - PAD - h - 4:.1f}" font-size="10">{a:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict], cols: list[str], fmt=lambda key, v: _fmt(v), text_cols: frozenset[str] = frozenset(),
           cls: str = "") -> str:
    """`text_cols`: columns of words, left-aligned (numbers are right-aligned)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    tds = {c: "<td class=text>" if c in text_cols else "<td>" for c in cols}
    body = "".join("<tr>" + "".join(f"{tds[c]}{html.escape(fmt(c, r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


SAMPLE_TEXT = frozenset({"symbol", "final", "strategy", "llm", "reasoning", "key factors"})


def quarantine_text(quarantined: dict[str, int]) -> str | None:
    """"NVDA 2, ORCL 0": the bars the data guard refused to decide on, per symbol; None if nothing was checked."""
    if not quarantined:
        return None
    return ", ".join(f"{sym} {n:,}" for sym, n in sorted(quarantined.items()))


def quarantine_line(results: dict) -> str | None:
    """The data guard's quarantined bars per symbol, of the first run that checked its data, and why the first
    quarantined bar of each symbol was."""
    run = next((r for r in results.values() if getattr(r, "quarantined", None)), None)
    text = quarantine_text(run.quarantined if run is not None else {})
    if not text:
        return None
    reasons = "; ".join(f"{sym} first: {why}" for sym, why in sorted(getattr(run, "first_quarantine", {}).items()))
    return f"Data guard, quarantined bars (no decision on them): {text}." + (f" ({reasons})" if reasons else "")


def render_report(results: dict, title: str, advisor_label: str, notes: list[str] | None = None) -> str:
    """`results` maps run name -> BacktestResult."""
    metric_cols = ["run", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor",
                   "trades", "exposure", "llm_accuracy", "scored", "fresh_calls", "cache_hits", "cost_usd"]
    rows = [{"run": name, **r.metrics, "scored": len(r.llm_scored) if r.llm_scored else None,
             "cache_hits": r.metrics.get("llm_cache_hits"),
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
                            "confidence": f"{d.advice.confidence:.2f}", "size %": f"{d.position_size_pct:.2f}",
                            "reasoning": d.advice.reasoning, "key factors": ", ".join(d.advice.key_factors)})
    css = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#111827}"
           "table{border-collapse:collapse;font-size:11px;margin:8px 0 20px;max-width:100%}"
           "td,th{border:1px solid #e5e7eb;padding:3px 5px;text-align:right}th{background:#f3f4f6}"
           "td:first-child,td.text{text-align:left}td:first-child{white-space:nowrap}"
           ".note{background:#fef3c7;padding:8px 12px;border-radius:6px;font-size:13px}.foot{font-size:12px}")
    guard = quarantine_line(results)
    notes = [*(notes or []), *([guard] if guard else [])]
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in (notes or []))
    sample_cols = ["date", "symbol", "final", "strategy", "llm", "confidence", "size %", "reasoning", "key factors"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{css}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Advisor: {html.escape(advisor_label)}. Returns and rates in %; fresh calls were sent to the model,
cache hits were answered from the response cache; cost in USD, each run as if run alone.</p>
<ul>{note_html}</ul>
<h2>Summary</h2>{_table(rows, metric_cols, metric_text)}
<p class="foot">LLM accuracy: the share of scored advisor answers (column "scored") that matched the hindsight
label; win rate and profit factor are "—" where no trade closed (buy-and-hold holds, it does not trade). Runs are
scored over their own answers: a row with fewer scored answers (e.g. calls whose horizon runs past the end of that
run's data) can show a different accuracy even when its fills are the same.</p>
<h2>Equity</h2>{_line_chart(equity, "Equity (log scale)", log_scale=True)}
<h2>Drawdowns</h2>{_line_chart(dd, "Drawdown from peak", fmt=lambda v: f"{v:.1%}")}
<h2>Decision mix</h2>{_decision_mix(decided.decisions if decided else [])}
<h2>Advisor accuracy by confidence</h2>
<p>Accuracy: the advice matched the hindsight label (forward return over the horizon, HOLD band ±1.5 %).</p>
{_accuracy_bars(acc)}{_table(acc, ["bucket", "n", "accuracy"], lambda k, v: metric_text(
    "llm_accuracy" if k == "accuracy" else k, v))}
<h2>Sample decisions</h2>{_table(samples, sample_cols, text_cols=SAMPLE_TEXT)}
</body></html>"""
