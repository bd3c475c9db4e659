"""Charts as inline SVG strings, drawn in Python: the report needs no JavaScript and no network.

Every chart is wrapped in ``<figure class="chart" data-chart="ID">`` so a test (or a person) can
find each one; a chart without data is not drawn (the caller shows a sentence instead).
"""
from __future__ import annotations

import math
from html import escape

PALETTE = ("#2f6db5", "#e07b39", "#3a9d5d", "#c9473f", "#8a63b8", "#8c6d4f", "#d16ba5", "#6b7b8c",
           "#b5a33a", "#2bb0b8", "#5c5c9c", "#a0522d")
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Noto Sans CJK SC, sans-serif"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def figure(chart_id: str, title: str, svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="chart" data-chart="{escape(chart_id)}"><h4>{escape(title)}</h4>'
            f"{svg}{cap}</figure>")


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(label)}" {FONT} font-size="12">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text, anchor: str = "start", size: int = 12, fill: str = "#222",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}" '
            f'font-weight="{weight}">{escape(str(text))}</text>')


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"


def nice_top(value: float) -> float:
    """The axis top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten (ticks in quarters)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 4, 5, 8, 10) if m * power >= value)


def bar_chart(items: list[tuple[str, float]], label: str, unit: str = "", width: int = 560) -> str:
    """Horizontal bars, one per (label, value), value and share written at the end of each bar."""
    bar_h, gap, left, right = 22, 6, 170, 110
    height = len(items) * (bar_h + gap) + 10
    top = max((v for _, v in items), default=0) or 1
    total = sum(v for _, v in items) or 1
    body = []
    for i, (name, value) in enumerate(items):
        y = 5 + i * (bar_h + gap)
        w = (width - left - right) * value / top
        body.append(_text(left - 8, y + bar_h * 0.7, name, anchor="end"))
        body.append(f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{color(i)}">'
                    f"<title>{escape(name)}: {fmt(value)}{unit}</title></rect>")
        body.append(_text(left + w + 6, y + bar_h * 0.7, f"{fmt(value)}{unit}  ({100 * value / total:.1f}%)"))
    return _svg(width, height, body, label)


def grouped_bars(categories: list[str], series: dict[str, list[float]], label: str, width: int = 620,
                 height: int = 260, percent: bool = False, errors: dict[str, list[tuple[float, float]]] | None = None
                 ) -> str:
    """Vertical bars per category, one bar per series (e.g. predicted vs actual, treated vs control);
    optional error bars (low, high) per series and category."""
    top_pad, longest = 24, max((len(c) for c in categories), default=0) * 6.5
    slanted = longest > (width - 60) / max(len(categories), 1)
    left = 50 + (int(min(longest * 0.9, 200)) - 40 if slanted else 0)  # room for the first slanted label
    bottom = 60 + (int(0.45 * longest) if slanted else 0)
    height = height + bottom - 60
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    values = [v for vs in series.values() for v in vs if v is not None and not math.isnan(v)]
    highs = [hi for es in (errors or {}).values() for _, hi in es if hi is not None]
    top = nice_top(max(values + highs + [0]) * 1.05)
    body = [f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#888"/>']
    for k in range(5):
        v = top * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#eee"/>')
        body.append(_text(left - 4, y + 4, f"{100 * v:.0f}%" if percent else fmt(v), anchor="end", size=10))
    n_series = max(len(series), 1)
    slot = plot_w / max(len(categories), 1)
    bar_w = slot * 0.8 / n_series
    for s, (name, vals) in enumerate(series.items()):
        for c, v in enumerate(vals):
            if v is None or math.isnan(v):
                continue
            x = left + c * slot + slot * 0.1 + s * bar_w
            h = plot_h * v / top
            body.append(f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar_w:.1f}" '
                        f'height="{max(h, 0.5):.1f}" fill="{color(s)}"><title>{escape(categories[c])} · '
                        f'{escape(name)}: {f"{100 * v:.1f}%" if percent else fmt(v)}</title></rect>')
            for lo, hi in ([(errors or {}).get(name, [])[c]] if (errors or {}).get(name) else []):
                if lo is None or hi is None:
                    continue
                cx = x + bar_w / 2
                y_lo, y_hi = top_pad + plot_h - plot_h * lo / top, top_pad + plot_h - plot_h * hi / top
                body.append(f'<line x1="{cx:.1f}" y1="{y_lo:.1f}" x2="{cx:.1f}" y2="{y_hi:.1f}" stroke="#222"/>')
    for c, name in enumerate(categories):
        x = left + c * slot + slot / 2
        if slanted:  # slanted, so long action names do not run into each other
            body.append(f'<g transform="rotate(-25 {x:.1f} {top_pad + plot_h + 12})">'
                        + _text(x, top_pad + plot_h + 12, name, anchor="end", size=11) + "</g>")
        else:
            body.append(_text(x, top_pad + plot_h + 16, name, anchor="middle", size=11))
    for s, name in enumerate(series):
        x = left + s * 150
        body.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{color(s)}"/>')
        body.append(_text(x + 16, height - 12, name, size=11))
    return _svg(width, height, body, label)


def heatmap(rows: list[str], cols: list[str], cells: dict[tuple[str, str], tuple[float, str]], label: str,
            row_title: str, col_title: str, width: int = 620) -> str:
    """A grid of cells (row, col) -> (count, caption), shaded by count."""
    left, top_pad, cell_h = 70, 30, 58
    cell_w = (width - left - 10) / max(len(cols), 1)
    height = top_pad + cell_h * len(rows) + 30
    top = max((v for v, _ in cells.values()), default=0) or 1
    body = [_text(left + (width - left) / 2, 14, col_title, anchor="middle", weight="bold")]
    for r, row in enumerate(rows):
        y = top_pad + r * cell_h
        body.append(_text(left - 8, y + cell_h / 2 + 4, row, anchor="end"))
        for c, col in enumerate(cols):
            x = left + c * cell_w
            value, caption = cells.get((row, col), (0, ""))
            shade = 0.08 + 0.85 * value / top
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 2:.1f}" height="{cell_h - 2}" '
                        f'fill="#2f6db5" fill-opacity="{shade:.2f}"><title>{escape(row)}, {escape(col)}: '
                        f'{fmt(value)} {escape(caption)}</title></rect>')
            ink = "#fff" if shade > 0.5 else "#222"
            body.append(_text(x + cell_w / 2, y + 22, fmt(value), anchor="middle", fill=ink, weight="bold"))
            body.append(_text(x + cell_w / 2, y + 40, caption, anchor="middle", size=10, fill=ink))
    for c, col in enumerate(cols):
        body.append(_text(left + c * cell_w + cell_w / 2, height - 10, col, anchor="middle"))
    body.append(_text(12, top_pad - 8, row_title, weight="bold"))
    return _svg(width, height, body, label)


def box_plot(groups: list[tuple[str, dict]], label: str, unit: str = "", width: int = 620) -> str:
    """Horizontal box plots: whiskers p05-p95, box p25-p75, median line, mean dot, per group."""
    row_h, left, right = 34, 215, 20
    height = row_h * len(groups) + 40
    lo = min((g["p05"] for _, g in groups), default=0)
    hi = max((g["p95"] for _, g in groups), default=1)
    span = (hi - lo) or 1
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + plot_w * (v - lo) / span

    body = []
    for k in range(5):
        v = lo + span * k / 4
        body.append(f'<line x1="{x(v):.1f}" y1="5" x2="{x(v):.1f}" y2="{height - 25}" stroke="#eee"/>')
        body.append(_text(x(v), height - 10, fmt(v) + unit, anchor="middle", size=10))
    for i, (name, g) in enumerate(groups):
        y = 10 + i * row_h
        mid = y + row_h / 2 - 4
        body.append(_text(left - 8, mid + 4, f"{name} (n={g['n']:,})", anchor="end"))
        body.append(f'<line x1="{x(g["p05"]):.1f}" y1="{mid}" x2="{x(g["p95"]):.1f}" y2="{mid}" stroke="#555"/>')
        body.append(f'<rect x="{x(g["p25"]):.1f}" y="{mid - 9}" width="{max(x(g["p75"]) - x(g["p25"]), 1):.1f}" '
                    f'height="18" fill="{color(i)}" fill-opacity="0.75"><title>{escape(name)}: p25 {fmt(g["p25"])}, '
                    f'median {fmt(g["p50"])}, p75 {fmt(g["p75"])}, mean {fmt(g["mean"])}</title></rect>')
        body.append(f'<line x1="{x(g["p50"]):.1f}" y1="{mid - 9}" x2="{x(g["p50"]):.1f}" y2="{mid + 9}" '
                    f'stroke="#111" stroke-width="2"/>')
        body.append(f'<circle cx="{x(min(max(g["mean"], lo), hi)):.1f}" cy="{mid}" r="3" fill="#fff" stroke="#111"/>')
    return _svg(width, height, body, label)


def line_chart(x_labels: list[str], series: dict[str, list[float]], label: str, width: int = 620,
               height: int = 240) -> str:
    """Lines over ordered x labels (dates or buckets); a single point is drawn as a dot."""
    left, right, top_pad, bottom = 55, 200, 12, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    top = nice_top(max(values + [0]) * 1.05)
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top_pad + plot_h - plot_h * v / top

    body = []
    for k in range(5):
        v = top * k / 4
        body.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + plot_w}" y2="{py(v):.1f}" stroke="#eee"/>')
        body.append(_text(left - 4, py(v) + 4, fmt(v), anchor="end", size=10))
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        body.append(_text(px(i), height - bottom + 16, x_labels[i], anchor="middle", size=10))
    for s, (name, vals) in enumerate(series.items()):
        points = [(px(i), py(v)) for i, v in enumerate(vals) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(points))
            body.append(f'<path d="{path}" fill="none" stroke="{color(s)}" stroke-width="2"/>')
        for x, y in points:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color(s)}"/>')
        last = next((v for v in reversed(vals) if v is not None), None)
        body.append(_text(left + plot_w + 10, top_pad + 14 + s * 16, f"{name}: {fmt(last)}", fill=color(s), size=11))
    return _svg(width, height, body, label)


def flow_chart(flows: list[tuple[str, str, int]], label: str, width: int = 620) -> str:
    """A two-column Sankey: sources on the left, targets on the right, bands as wide as the counts."""
    sources = sorted({f for f, _, _ in flows}, key=lambda k: -sum(n for a, _, n in flows if a == k))
    targets = sorted({t for _, t, _ in flows}, key=lambda k: -sum(n for _, b, n in flows if b == k))
    total = sum(n for _, _, n in flows) or 1
    gap, node_w, left, right = 12, 14, 165, 175
    usable = 260
    height = usable + gap * max(len(sources), len(targets)) + 20
    scale = usable / total

    def layout(nodes, side_totals):
        pos, y = {}, 10.0
        for node in nodes:
            pos[node] = y
            y += side_totals[node] * scale + gap
        return pos

    src_tot = {s: sum(n for a, _, n in flows if a == s) for s in sources}
    tgt_tot = {t: sum(n for _, b, n in flows if b == t) for t in targets}
    src_y, tgt_y = layout(sources, src_tot), layout(targets, tgt_tot)
    x0, x1 = left, width - right
    body = []
    src_off = dict.fromkeys(sources, 0.0)
    tgt_off = dict.fromkeys(targets, 0.0)
    ordered = sorted(flows, key=lambda f: (sources.index(f[0]), targets.index(f[1])))
    for f, t, n in ordered:
        h = n * scale
        ya, yb = src_y[f] + src_off[f], tgt_y[t] + tgt_off[t]
        src_off[f] += h
        tgt_off[t] += h
        xm = (x0 + node_w + x1) / 2
        d = (f"M{x0 + node_w},{ya:.1f} C{xm},{ya:.1f} {xm},{yb:.1f} {x1},{yb:.1f} "
             f"L{x1},{yb + h:.1f} C{xm},{yb + h:.1f} {xm},{ya + h:.1f} {x0 + node_w},{ya + h:.1f} Z")
        body.append(f'<path d="{d}" fill="{color(sources.index(f))}" fill-opacity="0.35" stroke="none">'
                    f"<title>{escape(f)} → {escape(t)}: {n:,}</title></path>")
    for i, s in enumerate(sources):
        h = max(src_tot[s] * scale, 1)
        body.append(f'<rect x="{x0}" y="{src_y[s]:.1f}" width="{node_w}" height="{h:.1f}" fill="{color(i)}"/>')
        body.append(_text(x0 - 6, src_y[s] + h / 2 + 4, f"{s} {src_tot[s]:,}", anchor="end"))
    for t in targets:
        h = max(tgt_tot[t] * scale, 1)
        body.append(f'<rect x="{x1}" y="{tgt_y[t]:.1f}" width="{node_w}" height="{h:.1f}" fill="#6b7b8c"/>')
        body.append(_text(x1 + node_w + 6, tgt_y[t] + h / 2 + 4, f"{t} {tgt_tot[t]:,}"))
    return _svg(width, int(height), body, label)
