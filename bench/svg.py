"""Small SVG charts for BENCHMARKS.md: horizontal bars and lines.

Standard library only. Each function returns the SVG document as a string;
bench/run.py writes it to bench/charts/.
"""

from xml.sax.saxutils import escape

FONT = 'font-family="sans-serif" font-size="12"'
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _format_number(value):
    if value == int(value) or value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _nice_top(value):
    """Return a round axis maximum at or above value."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def bar_chart(title, bars, unit, width=640):
    """Draw horizontal bars: bars is a list of (label, value), and unit labels the axis."""
    label_width = 260
    bar_height, gap, top = 22, 8, 36
    plot_width = width - label_width - 70
    top_value = _nice_top(max((value for _, value in bars), default=0))
    height = top + len(bars) * (bar_height + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" {FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * (bar_height + gap)
        length = plot_width * value / top_value
        colour = COLOURS[index % len(COLOURS)]
        parts += [
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" {FONT}>{escape(label)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{colour}"/>',
            f'<text x="{label_width + length + 4:.1f}" y="{y + 15}" {FONT}>{_format_number(value)}</text>',
        ]
    axis_y = top + len(bars) * (bar_height + gap)
    parts += [
        f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + plot_width}" y2="{axis_y}" stroke="#444"/>',
        f'<text x="{label_width}" y="{axis_y + 16}" {FONT}>0</text>',
        f'<text x="{label_width + plot_width}" y="{axis_y + 16}" text-anchor="end" {FONT}>'
        f"{_format_number(top_value)} {escape(unit)}</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def line_chart(title, series, x_label, y_label, width=640, height=320):
    """Draw lines: series maps a name to a list of (x, y) points, on shared axes from 0."""
    left, right, top, bottom = 60, 20, 36, 44
    plot_width = width - left - right
    plot_height = height - top - bottom
    points = [point for line in series.values() for point in line]
    x_top = _nice_top(max((x for x, _ in points), default=0))
    y_top = _nice_top(max((y for _, y in points), default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" {FONT} font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{left + plot_width}" y2="{top + plot_height}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_height}" stroke="#444"/>',
        f'<text x="{left}" y="{top + plot_height + 16}" {FONT}>0</text>',
        f'<text x="{left + plot_width}" y="{top + plot_height + 16}" text-anchor="end" {FONT}>{_format_number(x_top)}</text>',
        f'<text x="{left + plot_width / 2:.0f}" y="{height - 8}" text-anchor="middle" {FONT}>{escape(x_label)}</text>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {FONT}>{_format_number(y_top)}</text>',
        f'<text x="{left - 6}" y="{top + plot_height}" text-anchor="end" {FONT}>0</text>',
        f'<text x="14" y="{top + plot_height / 2:.0f}" {FONT} transform="rotate(-90 14 {top + plot_height / 2:.0f})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for index, (name, line) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(
            f"{left + plot_width * x / x_top:.1f},{top + plot_height * (1 - y / y_top):.1f}" for x, y in line
        )
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(
            f'<text x="{left + plot_width - 4}" y="{top + 14 + 16 * index}" text-anchor="end" '
            f'fill="{colour}" {FONT}>{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
