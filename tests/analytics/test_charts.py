"""SVG charts: valid XML, every label escaped, open interval ends drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from marlin.analytics.bt import Ranking, pair_counts, rank
from marlin.analytics.charts import ci_chart, heatmap

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert('x')</script>"


def parse(svg: str) -> ET.Element:
    # The SVG is our own output under test, not untrusted input, so the stdlib parser is fine.
    return ET.fromstring(svg)  # noqa: S314


def ranking_with_hostile_name() -> Ranking:
    outcomes = [(EVIL, "b & co", 1.0), ("b & co", EVIL, 1.0), ("b & co", "c", 1.0)] * 3
    outcomes += [("c", EVIL, 0.5), ("c", "b & co", 1.0)]
    return rank(pair_counts([EVIL, "b & co", "c"], outcomes), rounds=50, seed=0)


def test_ci_chart_is_valid_svg_with_a_row_per_agent_and_escaped_labels() -> None:
    ranking = ranking_with_hostile_name()
    svg = ci_chart(ranking, width=640)
    root = parse(svg)
    assert root.tag == f"{SVG}svg" and root.get("width") == "640"
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert len(root.findall(f".//{SVG}circle")) == 3
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert f"1. {ranking.agents[0].agent}" in texts
    assert any(EVIL in t for t in texts)  # the parsed text is the literal name, shown as text


def test_ci_chart_draws_an_arrow_for_an_unbounded_interval() -> None:
    outcomes = [("champ", "b", 1.0)] * 3 + [("b", "c", 1.0), ("c", "b", 1.0), ("champ", "c", 1.0)]
    ranking = rank(pair_counts(["champ", "b", "c"], outcomes), rounds=30)
    assert ranking.agents[0].upper == np.inf
    root = parse(ci_chart(ranking))
    assert len(root.findall(f".//{SVG}polygon")) >= 1


def test_heatmap_is_valid_svg_with_cells_values_and_an_accessible_title() -> None:
    ranking = ranking_with_hostile_name()
    svg = heatmap(ranking.labels, ranking.win_rate, title="Win rate <all criteria>")
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "Win rate <all criteria>"  # type: ignore[union-attr]
    assert "<script>" not in svg and "<all criteria>" not in svg
    assert len(root.findall(f".//{SVG}rect")) == 9
    cell_texts = {t.text for t in root.iter(f"{SVG}text") if t.get("font-size") == "10"}
    assert f"{ranking.win_rate[0, 1]:.2f}" in cell_texts


def test_heatmap_rejects_a_matrix_that_does_not_match_the_labels() -> None:
    with pytest.raises(ValueError, match="matrix must be 2 x 2"):
        heatmap(["a", "b"], np.zeros((3, 3)), title="t")
