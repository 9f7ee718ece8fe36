"""Server-drawn charts (frontend/charts.py): real axes for one point, a few and many."""
from __future__ import annotations

import json

from frontend.charts import bar_chart, line_chart, nice_ticks


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.31, 0.34)[0] <= 0.31 and nice_ticks(0.31, 0.34)[-1] >= 0.34


def test_one_point_sits_in_the_middle_of_a_real_axis_as_a_dot():
    chart = line_chart({"train loss": [(10, 0.693)]}, x_label="step", y_label="loss")
    line = chart["lines"][0]
    assert line["points"] == "" and len(line["dots"]) == 1  # no line through a single point
    dot = line["dots"][0]
    assert abs(dot["x"] - (chart["left"] + chart["right"]) / 2) < 1
    assert [t["label"] for t in chart["x_ticks"]] == ["9", "9.5", "10", "10.5", "11"]
    assert chart["y_ticks"][0]["label"] != chart["y_ticks"][-1]["label"]
    assert dot["tip"] == "train loss at step 10: 0.693"


def test_few_points_get_a_line_with_dots_and_many_a_line_with_dots_shown_on_hover():
    few = line_chart({"a": [(1, 1.0), (2, 0.5), (3, 0.25)], "b": []}, x_label="step", y_label="loss")
    assert [line["name"] for line in few["lines"]] == ["a"] and len(few["lines"][0]["dots"]) == 3 and not few["lines"][0]["many"]
    many = line_chart({"a": [(i, 1 / (i + 1)) for i in range(500)]}, x_label="step", y_label="loss")
    line = many["lines"][0]
    assert line["many"] and len(line["points"].split()) == 500
    assert len(json.loads(many["hover"])[0]["points"]) == 500  # every point readable on hover
    assert [t["label"] for t in many["x_ticks"]] == ["0", "100", "200", "300", "400"]


def test_fixed_ranges_and_percent_labels():
    chart = line_chart({"accuracy": [(1, 0.5), (2, 0.75)]}, x_label="step", y_label="accuracy", y_min=0, y_max=1, percent=True)
    assert [t["label"] for t in chart["y_ticks"]] == ["0%", "20%", "40%", "60%", "80%", "100%"]
    assert line_chart({}, x_label="x", y_label="y") is None


def test_bars_start_at_zero_with_count_ticks_and_reference_marks():
    chart = bar_chart([{"label": "1", "value": 0.4, "ref": 0.25, "tip": "p1"}, {"label": "2", "value": 0.1, "ref": 0.25, "tip": "p2"}],
                      x_label="position", y_label="first", percent=True)
    assert chart["y_ticks"][0]["label"] == "0%" and chart["bars"][0]["ref_y"] is not None
    assert chart["bars"][0]["height"] > chart["bars"][1]["height"] > 0
    one = bar_chart([{"label": "0.9", "value": 1, "tip": "1 task"}], x_label="W", y_label="tasks")
    assert [t["label"] for t in one["y_ticks"]] == ["0", "1"]  # counts: whole ticks only
    assert bar_chart([], x_label="x", y_label="y") is None
