"""The report's SVG plots: round tick values that cover the data, labelled axes, a legend,
train and validation of one metric in one chart, and the confusion matrix heat map."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest

from tipi.report.experiments import Curve, split_name
from tipi.report.plots import Series, heat_map, line_chart, nice_ticks, tick_text

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0.1157, 1.9),
        (0.82, 0.98),
        (1, 4),
        (1, 12),
        (0, 0),
        (0.5, 0.5),
        (1e-5, 3e-5),
        (-3, 7),
        (3, 250),
        (0.00044, 0.003),
        (1e6, 5e6),
    ],
)
def test_ticks_are_round_evenly_spaced_and_cover_the_data(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 2 <= len(ticks) <= 12
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5, 10)
    labels = [tick_text(t, ticks) for t in ticks]
    assert len(set(labels)) == len(labels)  # no two ticks read the same


def test_integer_ticks_for_epochs():
    assert nice_ticks(1, 3, 6, integer=True) == [1, 2, 3]
    ticks = nice_ticks(1, 40, 6, integer=True)
    assert all(float(t).is_integer() for t in ticks) and ticks[-1] >= 40


def test_tick_labels_have_the_decimals_their_step_needs():
    assert [tick_text(t, [0, 0.5, 1.0]) for t in (0, 0.5, 1.0)] == ["0.0", "0.5", "1.0"]
    assert tick_text(0.85, [0.8, 0.85, 0.9]) == "0.85"
    assert tick_text(10, [0, 5, 10]) == "10"


@pytest.mark.parametrize(
    ("metric", "family", "split"),
    [
        ("train_loss", "loss", "train"),
        ("val_loss", "loss", "val"),
        ("loss/valid", "loss", "val"),
        ("validation.accuracy", "accuracy", "val"),
        ("test_f1_macro", "f1_macro", "test"),
        ("lr", "lr", ""),
        ("trainer_steps", "trainer_steps", ""),
    ],
)
def test_a_metric_name_gives_its_family_and_split(metric, family, split):
    assert split_name(metric) == (family, split)
    assert Curve(metric, "train", "epoch", ()).family == family


def test_a_line_chart_has_axes_with_tick_values_labels_and_a_legend():
    train = Series("train_loss", ((1, 1.9), (2, 1.1), (3, 0.7)))
    val = Series("val_loss", ((1, 1.8), (2, 1.2), (3, 0.8)), color="#ef6c00", dash="6 3")
    svg = line_chart("loss", [train, val], "epoch", "loss")
    root = ET.fromstring(svg)
    texts = {t.get("class"): [] for t in root.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        texts[t.get("class")].append("".join(t.itertext()))
    assert texts["axis-label x-label"] == ["epoch"]
    assert texts["axis-label y-label"] == ["loss"]
    assert texts["tick x-tick"] == ["1", "2", "3"]
    assert texts["tick y-tick"] == ["0.5", "1.0", "1.5", "2.0"]
    assert any(t.startswith("train_loss") for t in texts["legend-label"])
    assert any(t.startswith("val_loss") for t in texts["legend-label"])
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 2 and lines[1].get("stroke-dasharray") == "6 3"
    # the points sit inside the plot area
    frame = root.find(f"{SVG}rect")
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    x1, y1 = x0 + float(frame.get("width")), y0 + float(frame.get("height"))
    for line in lines:
        for point in line.get("points").split():
            x, y = map(float, point.split(","))
            assert x0 - 0.1 <= x <= x1 + 0.1 and y0 - 0.1 <= y <= y1 + 0.1


def test_a_chart_of_one_flat_point_still_draws():
    svg = line_chart("acc", [Series("acc", ((5, 0.9),))], "step", "acc")
    ET.fromstring(svg)
    assert "nan" not in svg.lower()


def test_the_heat_map_shows_every_count_with_axes():
    matrix = [[5, 1, 0], [0, 7, 2], [1, 0, 9]]
    svg = heat_map(matrix)
    root = ET.fromstring(svg)
    assert len(root.findall(f"{SVG}rect")) == 9
    words = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "predicted" in words and "true" in words
    for value in (5, 7, 9, 2):
        assert str(value) in words
    assert re.search(r'class="heat-map"', svg)
