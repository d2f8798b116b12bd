"""Charts drawn server-side by pygal as SVG, cleaned for a CSP without inline scripts or styles.

pygal puts a <script> (its tooltip config) and a <style> in every chart. The <script> is dropped (the charts need
no JavaScript), the tooltip layer and `style` attributes go with it, and the <style> text is served instead from
/charts.css: each chart has a fixed id (`chart-<name>`) so its rules there apply to it alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from xml.etree import ElementTree

import pygal
from markupsafe import Markup
from pygal.graph.graph import Graph
from pygal.style import Style

# Importing pygal appends a legacy import hook for its map plugins (unused here), which makes Python warn on every
# later import that reaches it: take it back out.
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != "PluginImportFixer"]
SVG_NS = "{http://www.w3.org/2000/svg}"
STYLE = Style(
    background="transparent", plot_background="transparent", foreground="#1d2330", foreground_strong="#1d2330",
    foreground_subtle="#5b6474", colors=("#2f6fdf", "#d9822b", "#2a9d63", "#b03a48", "#7a5cc4", "#5b6474"),
    font_family="system-ui, sans-serif", label_font_size=12, major_label_font_size=12, legend_font_size=13,
    title_font_size=15, value_font_size=12, tooltip_font_size=12,
)
# Every chart a page may show: its CSS is built once from these names.
KINDS: dict[str, type[Graph]] = {
    "spend": pygal.Line, "requests": pygal.Bar, "hits": pygal.Line, "latency": pygal.Bar, "errors": pygal.Bar,
    "savings-kind": pygal.HorizontalBar, "savings-model": pygal.HorizontalBar,
    "savings-tenant": pygal.HorizontalBar, "savings-tag": pygal.HorizontalBar,
}
Series = Sequence[tuple[str, Sequence[float | Decimal | None]]]


def _chart(name: str, title: str, labels: Sequence[str]) -> Graph:
    chart = KINDS[name](
        style=STYLE, js=[], disable_xml_declaration=True, width=800, height=320, title=title,
        show_legend=True, legend_at_bottom=True, x_label_rotation=0, truncate_label=-1, show_minor_x_labels=False,
        x_labels_major_every=max(1, len(labels) // 8), margin=12, print_values=False, include_x_axis=True,
    )
    chart.uuid = name  # a fixed id: /charts.css holds its rules
    chart.x_labels = list(labels)
    return chart


def _clean(tree: ElementTree.Element) -> str:
    """The SVG without scripts, styles, tooltips or inline style attributes."""
    for parent in list(tree.iter()):
        for child in list(parent):
            tag = str(child.tag).removeprefix(SVG_NS)
            if tag in ("script", "style") or "tooltip-overlay" in child.get("class", ""):
                parent.remove(child)
        parent.attrib.pop("style", None)
    return ElementTree.tostring(tree, encoding="unicode")


def render(name: str, title: str, labels: Sequence[str], series: Series) -> Markup:
    """An inline SVG chart of `series` (name, values per label); safe to place in a page as it is."""
    chart = _chart(name, title, labels)
    for label, values in series:
        chart.add(label, [None if v is None else float(v) for v in values])
    tree = chart.render_tree()
    tree.set("role", "img")
    tree.set("aria-label", title)
    return Markup(_clean(tree))  # noqa: S704 (pygal's own SVG; every label and title is escaped by ElementTree)


def _style_of(name: str) -> str:
    chart = _chart(name, "", ["x"])
    chart.add("", [1.0])
    found = [e.text or "" for e in chart.render_tree().iter() if str(e.tag).removeprefix(SVG_NS) == "style"]
    return "".join(found)


def chart_css() -> str:
    """The stylesheet of every chart kind (pygal's own CSS, scoped by each chart's id)."""
    return "\n".join(_style_of(name) for name in KINDS)
