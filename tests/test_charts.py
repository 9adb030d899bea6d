"""The SVG charts: labels escaped, empty and zero data drawn, bar lengths in proportion to the values."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest

from unioncard import charts
from unioncard.money import format_yuan_grouped

SVG = "{http://www.w3.org/2000/svg}"


def bars(rows: list[tuple[str, int]]) -> str:
    return charts.horizontal_bars(rows, chart_id="c", title="各镇补贴", desc="合计", value_text=format_yuan_grouped,
                                  empty_text="暂无数据")  # fmt: skip


def widths(svg: str, css_class: str = "chart-bar") -> list[float]:
    root = ElementTree.fromstring(svg)
    return [float(rect.get("width", "0")) for rect in root.iter(f"{SVG}rect")
            if rect.get("class") == css_class and rect.get("height") == str(charts.BAR_HEIGHT)]  # fmt: skip


def test_labels_are_escaped_and_the_markup_parses() -> None:
    svg = bars([('<script>alert("x")</script> & 东镇', 100), ("西镇", 50)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&amp; 东镇" in svg
    root = ElementTree.fromstring(svg)  # well-formed XML, or this raises
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c-title c-desc"
    assert root.find(f"{SVG}title").text == "各镇补贴"  # type: ignore[union-attr]
    titles = [element.text for element in root.iter(f"{SVG}title")]
    assert '<script>alert("x")</script> & 东镇: 1.00' in titles  # the full label, unescaped once parsed


def test_bar_lengths_are_in_proportion() -> None:
    found = widths(bars([("a", 400), ("b", 100), ("c", 300)]))
    assert found[0] == charts.WIDTH - charts.LABEL_WIDTH - charts.VALUE_WIDTH  # the largest fills the plot
    narrow = widths(charts.horizontal_bars([("a", 2), ("b", 1)], chart_id="n", title="t", desc="d", value_text=str,
                                           empty_text="-", width=charts.NARROW))  # fmt: skip
    assert 0 < narrow[0] < found[0] and narrow[1] == pytest.approx(narrow[0] / 2)
    assert found[1] == pytest.approx(found[0] / 4) and found[2] == pytest.approx(found[0] * 3 / 4)


def test_zero_and_empty_data() -> None:
    assert widths(bars([("a", 0), ("b", 0)])) == [0.0, 0.0]  # no division by zero
    empty = bars([])
    assert "暂无数据" in empty and ElementTree.fromstring(empty).find(f"{SVG}rect") is None
    assert "暂无数据" in charts.columns([], chart_id="d", title="t", desc="d", value_text=str, count_text=str,
                                      value_word="v", count_word="n", empty_text="暂无数据")  # fmt: skip
    assert charts.share(5, 0, 100) == 0.0 and charts.share(-5, 10, 100) == 0.0


def test_budget_bars_fill_the_used_part_on_one_scale() -> None:
    svg = charts.used_of_budget(
        [("a", 250, 1000), ("b", 500, 500), ("c<", 0, 0)], chart_id="b", title="预算", desc="d",
        value_text=format_yuan_grouped, used_word="已用", left_word="剩余", empty_text="-",
    )  # fmt: skip
    budget, used = widths(svg, "chart-rest"), widths(svg, "chart-bar")
    assert budget[1] == pytest.approx(budget[0] / 2) and budget[2] == 0.0
    assert used[0] == pytest.approx(budget[0] / 4) and used[1] == pytest.approx(budget[1])
    assert ">25%<" in svg and ">100%<" in svg and "c&lt;" in svg


def test_columns_scale_to_a_round_top_and_draw_the_counts() -> None:
    rows = [(str(day), day * 1000, day) for day in range(1, 31)]
    svg = charts.columns(rows, chart_id="d", title="每日", desc="d", value_text=format_yuan_grouped, count_text=str,
                         value_word="补贴", count_word="笔数", empty_text="-")  # fmt: skip
    root = ElementTree.fromstring(svg)
    heights = [float(r.get("height", "0")) for r in root.iter(f"{SVG}rect") if r.get("class") == "chart-bar"][1:]
    assert len(heights) == 30 and heights[-1] == pytest.approx(heights[0] * 30)  # the first rect is the legend
    assert charts.nice_ceiling(30_000) == 50_000 and charts.nice_ceiling(0) == 1 and charts.nice_ceiling(7) == 10
    points = root.find(f"{SVG}polyline").get("points", "").split()  # type: ignore[union-attr]
    assert len(points) == 30
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-tick"]
    assert ticks == [str(day) for day in range(1, 31, 2)]  # at most 16 labels under 30 columns


def test_yuan_groups_thousands() -> None:
    assert format_yuan_grouped(123456789) == "1,234,567.89"
    assert format_yuan_grouped(5) == "0.05" and format_yuan_grouped(-100000) == "-1,000.00"
    assert charts.grouped(1234567) == "1,234,567"
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d", format_yuan_grouped(10**12))
