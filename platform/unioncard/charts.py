"""Charts as inline SVG markup built on the server: pure functions of (label, value) rows, labels escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

Format = Callable[[int], str]

WIDTH = 720
NARROW = 480  # a chart in half a desktop row: a smaller canvas, so its text is drawn larger
ROW_HEIGHT = 30
BAR_HEIGHT = 18
LABEL_WIDTH = 170
VALUE_WIDTH = 150
LABEL_CHARS_MAX = 12


def grouped(number: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{number:,}"


def short(label: str, limit: int = LABEL_CHARS_MAX) -> str:
    """The label cut to `limit` characters with an ellipsis; the full label goes into a <title>."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def share(value: int, largest: int, length: float) -> float:
    """value's part of `length` when `largest` fills it; zero, negative or empty data give 0."""
    if largest <= 0 or value <= 0:
        return 0.0
    return round(length * min(value, largest) / largest, 2)


def _label(label: str, y: int, label_width: int = LABEL_WIDTH) -> str:
    x = label_width - 10
    return f'<text class="chart-label" x="{x}" y="{y + 14}" text-anchor="end">{escape(short(label))}</text>'


def _frame(chart_id: str, title: str, desc: str, width: int, height: int, body: list[str]) -> str:
    head = (
        f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>'
    )
    return head + "".join(body) + "</svg>"


def _empty(chart_id: str, title: str, desc: str, empty_text: str, width: int = WIDTH) -> str:
    body = [f'<text class="chart-empty" x="{width / 2}" y="34" text-anchor="middle">{escape(empty_text)}</text>']
    return _frame(chart_id, title, desc, width, 60, body)


def horizontal_bars(
    rows: Sequence[tuple[str, int]],
    *,
    chart_id: str,
    title: str,
    desc: str,
    value_text: Format,
    empty_text: str,
    width: int = WIDTH,
) -> str:
    """One bar per row, longest for the largest value, with its label on the left and its value on the right."""
    if not rows:
        return _empty(chart_id, title, desc, empty_text, width)
    label_width = LABEL_WIDTH * width // WIDTH
    plot = width - label_width - VALUE_WIDTH * width // WIDTH
    largest = max(value for _, value in rows)
    body = []
    for index, (label, value) in enumerate(rows):
        y = index * ROW_HEIGHT + 6
        length = share(value, largest, plot)
        body.append(
            f'<g class="bar"><title>{escape(label)}: {escape(value_text(value))}</title>'
            f"{_label(label, y, label_width)}"
            f'<rect class="chart-bar" x="{label_width}" y="{y}" width="{length}" height="{BAR_HEIGHT}" rx="3"/>'
            f'<text class="chart-value" x="{label_width + length + 8}" y="{y + 14}">{escape(value_text(value))}</text>'
            "</g>"
        )
    return _frame(chart_id, title, desc, width, len(rows) * ROW_HEIGHT + 8, body)


def used_of_budget(
    rows: Sequence[tuple[str, int, int]],
    *,
    chart_id: str,
    title: str,
    desc: str,
    value_text: Format,
    used_word: str,
    left_word: str,
    empty_text: str,
) -> str:
    """Per row (label, used, budget) a bar as long as the budget, its used part filled; budgets share one scale."""
    if not rows:
        return _empty(chart_id, title, desc, empty_text)
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    largest = max(budget for _, _, budget in rows)
    legend_y = 16
    body = [
        f'<rect class="chart-bar" x="{LABEL_WIDTH}" y="{legend_y - 11}" width="14" height="14" rx="2"/>'
        f'<text class="chart-legend" x="{LABEL_WIDTH + 20}" y="{legend_y}">{escape(used_word)}</text>'
        f'<rect class="chart-rest" x="{LABEL_WIDTH + 120}" y="{legend_y - 11}" width="14" height="14" rx="2"/>'
        f'<text class="chart-legend" x="{LABEL_WIDTH + 140}" y="{legend_y}">{escape(left_word)}</text>'
    ]
    for index, (label, used, budget) in enumerate(rows):
        y = 30 + index * ROW_HEIGHT
        whole = share(budget, largest, plot)
        filled = min(share(used, largest, plot), whole)
        percent = f"{100 * used // budget}%" if budget > 0 else "—"
        note = f"{value_text(used)} / {value_text(budget)}"
        body.append(
            f'<g class="bar"><title>{escape(label)}: {escape(used_word)} {escape(note)} ({percent})</title>'
            f"{_label(label, y)}"
            f'<rect class="chart-rest" x="{LABEL_WIDTH}" y="{y}" width="{whole}" height="{BAR_HEIGHT}" rx="3"/>'
            f'<rect class="chart-bar" x="{LABEL_WIDTH}" y="{y}" width="{filled}" height="{BAR_HEIGHT}" rx="3"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + whole + 8}" y="{y + 14}">{percent}</text>'
            "</g>"
        )
    return _frame(chart_id, title, desc, WIDTH, 30 + len(rows) * ROW_HEIGHT + 8, body)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^n at or above value (at least 1): a round top for an axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def columns(
    rows: Sequence[tuple[str, int, int]],
    *,
    chart_id: str,
    title: str,
    desc: str,
    value_text: Format,
    count_text: Format,
    value_word: str,
    count_word: str,
    empty_text: str,
) -> str:
    """Per row (label, value, count) a column of the value; the counts as a line on their own scale."""
    if not rows:
        return _empty(chart_id, title, desc, empty_text)
    left, right, top, bottom, height = 110, 60, 34, 30, 260
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    value_top = max(nice_ceiling(max(value for _, value, _ in rows)), 2)  # 2 at least: a middle grid line
    count_top = max(nice_ceiling(max(count for _, _, count in rows)), 2)
    slot = plot_w / len(rows)
    body = [
        f'<rect class="chart-bar" x="{left}" y="6" width="14" height="14" rx="2"/>'
        f'<text class="chart-legend" x="{left + 20}" y="18">{escape(value_word)}</text>'
        f'<line class="chart-line" x1="{left + 170}" y1="13" x2="{left + 190}" y2="13"/>'
        f'<text class="chart-legend" x="{left + 196}" y="18">{escape(count_word)}</text>'
    ]
    for part in (0, 1, 2):
        y = top + plot_h - plot_h * part / 2
        body.append(
            f'<line class="chart-grid" x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}"/>'
            f'<text class="chart-axis" x="{left - 8}" y="{y + 5}" text-anchor="end">'
            f"{escape(value_text(value_top * part // 2))}</text>"
            f'<text class="chart-axis" x="{left + plot_w + 8}" y="{y + 5}">'
            f"{escape(count_text(count_top * part // 2))}</text>"
        )
    points = []
    tick_every = -(-len(rows) // 16)  # at most 16 labels under the columns
    for index, (label, value, count) in enumerate(rows):
        x = left + index * slot
        tall = share(value, value_top, plot_h)
        centre = round(x + slot / 2, 2)
        points.append(f"{centre},{round(top + plot_h - share(count, count_top, plot_h), 2)}")
        tick = ""
        if index % tick_every == 0:
            tick = (
                f'<text class="chart-tick" x="{centre}" y="{height - 10}" text-anchor="middle">{escape(label)}</text>'
            )
        body.append(
            f'<g class="column"><title>{escape(label)}: {escape(value_word)} {escape(value_text(value))}, '
            f"{escape(count_word)} {escape(count_text(count))}</title>"
            f'<rect class="chart-bar" x="{round(x + slot * 0.15, 2)}" y="{round(top + plot_h - tall, 2)}" '
            f'width="{round(slot * 0.7, 2)}" height="{tall}"/>{tick}</g>'
        )
    body.append(f'<polyline class="chart-line" points="{" ".join(points)}"/>')
    return _frame(chart_id, title, desc, WIDTH, height, body)
