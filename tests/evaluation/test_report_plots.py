"""The accuracy-vs-coverage plot labels its points without overlaps: the text boxes of the
labels, as matplotlib's renderer lays them out, intersect neither each other nor the legend, and
each stays near its point."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from journeyrec.evaluation import report


def drawn_labels(monkeypatch, tmp_path, points):
    """Plot ``points`` through the real function; return the figure's label texts and boxes, the
    legend's box and the display position of every point."""
    figures = []
    save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: (figures.append(fig), save(fig, path))[1])
    path = report.plot_accuracy_vs_coverage(
        points, tmp_path / "acc.png", "coverage@10 (test)", "NDCG@10 (test)", "accuracy vs coverage"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)  # closing the figure detached its canvas; the layout is the figure's own
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    labels = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}
    assert len(labels) == len(ax.texts)  # one text per label
    legend = ax.get_legend().get_window_extent(renderer)
    where = {str(p["label"]): ax.transData.transform((p["x"], p["y"])) for p in points}
    return labels, legend, where, fig.dpi / 72.0


def baselines_and_model() -> list[dict]:
    # recent_popularity equals popularity when its window covers every training event (a source
    # without wall-clock time): two baselines on one spot
    return [
        {"x": 0.30, "y": 0.050, "label": "sasrec", "kind": "model"},
        {"x": 0.0168, "y": 0.0849, "label": "popularity", "kind": "baseline"},
        {"x": 0.0168, "y": 0.0849, "label": "recent_popularity", "kind": "baseline"},
        {"x": 0.26, "y": 0.047, "label": "cooccurrence", "kind": "baseline"},
    ]


def crowded_runs() -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "x": 0.28 + 0.04 * rng.random(),
            "y": 0.045 + 0.01 * rng.random(),
            "label": f"run-{i}-sasrec-lr0.001",
            "kind": "run",
        }
        for i in range(10)
    ]


@pytest.mark.parametrize(
    "points", [baselines_and_model(), baselines_and_model() + crowded_runs()], ids=["baselines", "crowded"]
)
def test_accuracy_vs_coverage_labels_do_not_overlap(monkeypatch, tmp_path, points):
    labels, legend, where, pt = drawn_labels(monkeypatch, tmp_path, points)
    assert {"sasrec", "popularity", "recent_popularity", "cooccurrence"} <= set(labels)  # the model and every baseline
    assert set(labels) <= {str(p["label"]) for p in points}
    for (a, box_a), (b, box_b) in itertools.combinations(labels.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
    for name, box in labels.items():
        assert not box.overlaps(legend), name
        x, y = where[name]  # near its point: the nearest corner of the text within 130 points
        assert np.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1)) <= 130 * pt, name
