"""The in-flight history of a drain wait, drawn two ways: a unicode sparkline (Markdown, the
terminal) and an inline SVG chart (HTML, printable: no script, no external asset)."""

from __future__ import annotations

from html import escape

BARS = "▁▂▃▄▅▆▇█"
UNKNOWN = "?"  # a reading that was unknown (not 0)


def sparkline(samples: list[list[float | None]], width: int = 60) -> str:
    """One character per sample (the newest ``width``); ``?`` marks an unknown reading, `` `` a new wait."""
    values = [s[1] for s in samples][-width:]
    known = [v for v in values if v is not None]
    top = max(known, default=0) or 1
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(" " if samples[len(samples) - len(values) + i][0] is None else UNKNOWN)
        else:
            out.append(BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))])
    return "".join(out)


def svg_chart(samples: list[list[float | None]], *, title: str, width: int = 480, height: int = 120) -> str:
    """A step chart of in-flight requests against seconds into the wait; gaps where unknown."""
    points = [(t, v) for t, v in samples if t is not None]
    pad_l, pad_r, pad_t, pad_b = 36, 10, 18, 24
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    t_max = max((t for t, _ in points), default=0.0) or 1.0
    v_max = max((v for _, v in points if v is not None), default=0) or 1
    x = lambda t: pad_l + t / t_max * w  # noqa: E731
    y = lambda v: pad_t + h - v / v_max * h  # noqa: E731
    segments: list[list[str]] = [[]]
    prev_y = None
    for t, v in points:
        if v is None:
            segments.append([])
            prev_y = None
            continue
        if prev_y is not None:
            segments[-1].append(f"{x(t):.1f},{prev_y:.1f}")
        prev_y = y(v)
        segments[-1].append(f"{x(t):.1f},{prev_y:.1f}")
    lines = "".join(f'<polyline class="series" points="{" ".join(s)}"/>' for s in segments if s)
    unknown = "".join(f'<circle class="unknown" cx="{x(t):.1f}" cy="{pad_t + h:.1f}" r="2.5"><title>unknown at {t:g}s</title></circle>'
                      for t, v in points if v is None)
    axes = (f'<line class="axis" x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}"/>'
            f'<line class="axis" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}"/>'
            f'<text x="{pad_l - 4}" y="{pad_t + 4}" text-anchor="end">{v_max:g}</text>'
            f'<text x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end">0</text>'
            f'<text x="{pad_l}" y="{height - 6}">0 s</text>'
            f'<text x="{pad_l + w}" y="{height - 6}" text-anchor="end">{t_max:.0f} s</text>'
            f'<text x="{pad_l}" y="12">{escape(title)}</text>')
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>{axes}{lines}{unknown}</svg>')
