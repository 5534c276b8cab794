"""Evaluation reports: Markdown and HTML from one list of blocks, with PNG plots.

A report is built as a list of blocks (heading, paragraph, bullet list, table, image); the same
blocks render to ``report.md`` (readable on disk and in MLflow) and ``report.html`` (self-
contained apart from the PNGs next to it), so the two never disagree. Plot functions take plain
arrays and write one PNG each (matplotlib, Agg backend, imported lazily).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from journeyrec.evaluation.metrics import ranking_metrics
from journeyrec.evaluation.statistics import ci_keys
from journeyrec.io import atomic_path, atomic_write_text

__all__ = [
    "Report",
    "fmt_ci",
    "plot_metric_vs_k",
    "plot_accuracy_vs_coverage",
    "plot_popularity_distribution",
    "plot_training_curves",
    "PLOT_KS",
]

PLOT_KS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_ci(metrics: Mapping[str, float], key: str, digits: int = 4) -> str:
    """``0.1234 [0.1200, 0.1270]`` (value and 95% interval) or the value alone."""
    v = metrics.get(key)
    lo, hi = (metrics.get(k) for k in ci_keys(key))
    if v is None:
        return "n/a"
    if lo is None or hi is None or any(math.isnan(x) for x in (lo, hi)):
        return fmt(float(v), digits)
    return f"{fmt(float(v), digits)} [{fmt(float(lo), digits)}, {fmt(float(hi), digits)}]"


@dataclass
class Report:
    """Blocks in order; ``write(directory)`` renders report.md and report.html."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", ([str(h) for h in header], [[fmt(c) for c in r] for r in rows])))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {v}" for v in value] + [""]
            elif kind == "table":
                header, rows = value
                esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
                out.append("| " + " | ".join(map(esc, header)) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
                out.append("")
            elif kind == "image":
                path, caption = value
                out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{e(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(v)}</li>" for v in value) + "</ul>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{e(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "image":
                path, caption = value
                body.append(
                    f'<figure><img src="{e(path)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'
                )
        style = (
            "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}"
            "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:0.25rem 0.5rem;"
            "text-align:right;font-variant-numeric:tabular-nums}td:first-child,th:first-child{text-align:left}"
            "th{background:#f3f3f3}img{max-width:100%}figcaption{color:#555;font-size:0.9rem}code{background:#f3f3f3}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
        )

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        d = Path(directory)
        return atomic_write_text(d / "report.md", self.markdown() + "\n"), atomic_write_text(
            d / "report.html", self.html()
        )


def _inline(text: str) -> str:
    """Escape, then render `code` spans (the only inline markup the reports use)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# --- plots ----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def plot_metric_vs_k(
    ranks: Mapping[str, np.ndarray], path: str | Path, title: str, ks: Sequence[int] = PLOT_KS
) -> Path:
    """NDCG@K and HR@K against K for each system (computed from the per-case ranks)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, r in ranks.items():
        m = ranking_metrics(r, ks)
        for ax, metric in zip(axes, ("ndcg", "hr")):
            ax.plot(list(ks), [m[f"{metric}@{k}"] for k in ks], marker="o", label=name)
    for ax, metric in zip(axes, ("NDCG@K", "HR@K")):
        ax.set_xscale("log")
        ax.set_xticks(list(ks))
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("K")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_accuracy_vs_coverage(
    points: Sequence[Mapping[str, Any]], path: str | Path, x_label: str, y_label: str, title: str
) -> Path:
    """Scatter of accuracy vs coverage; ``points`` have x, y, label and kind (run | model | baseline).
    Labels are placed so that none overlaps another, the legend or a marker: the model's and the
    baselines' always (with a leader line when they must move away), a run's only where there is
    room near its point (up to 12 runs; their names are in MLflow)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles: dict[str, dict[str, Any]] = {  # scatter keywords per kind
        "run": dict(color="#999999", marker="o", s=25),
        "model": dict(color="#d62728", marker="*", s=160),
        "baseline": dict(color="#1f77b4", marker="s", s=60),
    }
    labelled: list[tuple[float, float, str, bool]] = []
    markers: list[tuple[float, float, float]] = []
    for kind in ("model", "baseline", "run"):  # label priority: the model first, then the baselines
        pts = [p for p in points if p["kind"] == kind]
        if not pts:
            continue
        ax.scatter(
            [p["x"] for p in pts],
            [p["y"] for p in pts],
            label={"run": "runs of the experiment"}.get(kind, kind),
            zorder={"run": 2, "baseline": 3, "model": 4}[kind],
            **styles[kind],
        )
        markers += [(p["x"], p["y"], math.sqrt(styles[kind]["s"]) / 2) for p in pts]
        if kind != "run" or len(pts) <= 12:
            labelled += [(p["x"], p["y"], str(p["label"])[:28], kind != "run") for p in pts]
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.margins(0.12)  # room for labels at the edges
    legend = ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )  # outside: the plot is for labels
    ax.set_title(title)
    _place_labels(fig, ax, labelled, markers, [legend])
    return _save(fig, path)


# Label offsets tried around a point, nearest first: distances (points) x directions.
_LABEL_RADII = (4, 9, 16, 25, 36, 50, 70, 95, 130, 180, 250)
_OPTIONAL_RADIUS = 25
_LABEL_DIRECTIONS = tuple((math.cos(a), math.sin(a)) for a in np.deg2rad([30, -30, 150, -150, 90, -90, 0, 180]))


def _place_labels(
    fig: Any,
    ax: Any,
    labels: Sequence[tuple[float, float, str, bool]],
    markers: Sequence[tuple[float, float, float]],
    obstacles: Sequence[Any],
    fontsize: float = 7,
) -> list[Any]:
    """Annotate each (x, y, text, required) at the nearest offset where its text box overlaps no
    label placed before it, no obstacle (the legend) and no marker (x, y, radius in points),
    inside the axes if possible; far offsets get a leader line. A label that is not required is
    left out when there is no such place within ``_OPTIONAL_RADIUS`` of its point. Greedy in the
    given order, measured with the figure's own renderer, so what is checked is what is drawn."""
    if not labels:
        return []
    fig.canvas.draw()  # fixes the axis limits and the legend's place
    ax.set_autoscale_on(False)
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    taken = [o.get_window_extent(renderer) for o in obstacles]
    centres = [ax.transData.transform((x, y)) for x, y, _ in markers]
    dots = [(c, r * px) for c, (_, _, r) in zip(centres, markers)]
    inside = ax.get_window_extent(renderer)
    placed = []
    for x, y, text, required in labels:
        probe = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize)
        choice = None
        radii = _LABEL_RADII if required else [r for r in _LABEL_RADII if r <= _OPTIONAL_RADIUS]
        for strict in (True, False) if required else (True,):  # inside the axes and clear of markers, else anywhere
            for radius, (dx, dy) in ((r, d) for r in radii for d in _LABEL_DIRECTIONS):
                where = _offset(radius, dx, dy)
                box = _measure(probe, renderer, where)
                if any(box.overlaps(t) for t in taken):
                    continue
                if strict and (not _contains(inside, box) or any(_hits(box, c, rad) for c, rad in dots)):
                    continue
                choice = (radius, where, box)
                break
            if choice:
                break
        if choice is None and required:  # more labels than room: keep the label on its point rather than drop it
            where = _offset(0, 0.0, 0.0)
            choice = (0, where, _measure(probe, renderer, where))
        probe.remove()
        if choice is None:
            continue
        radius, (xytext, ha, va), box = choice
        line = dict(arrowstyle="-", color="#777777", lw=0.6, shrinkA=0, shrinkB=3) if radius >= 16 else None
        placed.append(
            ax.annotate(
                text,
                (x, y),
                xytext=xytext,
                textcoords="offset points",
                fontsize=fontsize,
                ha=ha,
                va=va,
                arrowprops=line,
                zorder=5,
            )
        )
        taken.append(box)
    return placed


def _offset(radius: float, dx: float, dy: float) -> tuple[tuple[float, float], str, str]:
    """Offset (points) and alignment of a label put ``radius`` away in direction (dx, dy): the
    text grows away from its point."""
    return (
        (radius * dx, radius * dy),
        "left" if dx > 0.1 else "right" if dx < -0.1 else "center",
        "bottom" if dy > 0.1 else "top" if dy < -0.1 else "center",
    )


def _measure(probe: Any, renderer: Any, where: tuple[tuple[float, float], str, str]) -> Any:
    """The text box (display units, with a small margin) of ``probe`` placed at ``where``."""
    from matplotlib.text import Text

    xytext, ha, va = where
    probe.xyann = xytext
    probe.set_horizontalalignment(ha)
    probe.set_verticalalignment(va)
    probe.update_positions(renderer)
    return Text.get_window_extent(probe, renderer).padded(1.5)


def _contains(outer: Any, box: Any) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def _hits(box: Any, centre: np.ndarray, radius: float) -> bool:
    """Whether ``box`` (display units) comes within ``radius`` of ``centre``."""
    nx = min(max(centre[0], box.x0), box.x1)
    ny = min(max(centre[1], box.y0), box.y1)
    return (nx - centre[0]) ** 2 + (ny - centre[1]) ** 2 < radius**2


def plot_popularity_distribution(
    counts: np.ndarray, recommended: Mapping[str, np.ndarray], consumed: np.ndarray, path: str | Path, title: str
) -> Path:
    """Share of recommended items (top-K lists of each system) and of consumed items (targets) by
    the item's training popularity (log-spaced bins): popularity bias at a glance."""
    plt = _pyplot()
    counts = np.asarray(counts, dtype=np.float64)
    top = max(1.0, counts.max())
    # integer bins [lo, hi): 0, 1, then log-spaced up to the most popular item
    edges = np.unique(np.concatenate([[0, 1], np.ceil(np.logspace(0, math.log10(top + 1), 12))])).astype(np.int64)
    edges[-1] = max(edges[-1], int(top) + 1)
    centers = np.arange(len(edges) - 1)
    labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist())]

    def share(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        ids = ids[ids > 0]
        h, _ = np.histogram(counts[ids], bins=edges)
        return h / max(1, len(ids))

    fig, ax = plt.subplots(figsize=(9, 4))
    series = {"consumed (targets)": share(consumed), **{f"recommended: {k}": share(v) for k, v in recommended.items()}}
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(
            centers + i * width - 0.4 + width / 2,
            values,
            width=width,
            label=name,
            color="black" if i == 0 else None,
            alpha=0.85,
        )
    ax.set_xticks(centers)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("item popularity: training interactions")
    ax.set_ylabel("share of items")
    ax.legend(fontsize=7)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_training_curves(histories: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, title: str) -> Path:
    """One panel per metric: value against epoch/step, from MLflow metric histories."""
    plt = _pyplot()
    names = [n for n, h in histories.items() if h]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        steps, values = zip(*histories[name])
        ax.plot(range(1, len(values) + 1), values, marker=".")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


# --- the evaluation report ------------------------------------------------------------------


def _prefixed(prefix: str, key: str) -> str:
    return f"{prefix}{key}"


def evaluation_report(
    title: str,
    metrics: Mapping[str, float],
    systems: Sequence[tuple[str, str]],
    settings: Mapping[str, Any],
    provenance: Sequence[tuple[str, Any]],
    ks: Sequence[int],
    splits: Sequence[str],
    paired: Sequence[tuple[str, Any]] = (),
    plots: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> Report:
    """The report of one evaluation: provenance, settings, accuracy with 95% intervals for every
    system (model and baselines, ``systems`` = [(name, metric-key prefix)]), paired lift over the
    baselines, beyond accuracy, segment breakdowns, sampled metrics (only if asked for), plots."""
    rep = Report(title)
    rep.heading("Provenance")
    rep.table(["what", "value"], [[k, v] for k, v in provenance])
    rep.heading("How these numbers were computed")
    rep.bullets(
        [
            f"`{k}`: {v if not isinstance(v, Mapping) else '; '.join(f'{a}: {b}' for a, b in v.items())}"
            for k, v in settings.items()
        ]
    )
    protocols = (
        ("all", "all items ranked"),
        ("seen_excluded", "items seen before the target excluded; a target that repeats one is a miss"),
    )
    for split in splits:
        n = metrics.get(f"{split}/n_cases")
        rep.heading(f"Accuracy on {split} ({fmt(n, 0) if n is not None else '?'} cases, full ranking)")
        share = metrics.get(f"{split}/repeat_target_share")
        if share:
            rep.paragraph(
                f"{share:.1%} of the targets repeat an item the user had before: misses under "
                "`seen_excluded` (S3-Rec's rule), ranked under `all`."
            )
        for protocol, label in protocols:
            pfx = f"{split}/" if protocol == "all" else f"{split}_{protocol}/"
            header = ["system"] + [f"{m}@{k}" for k in ks for m in ("HR", "NDCG", "MRR")]
            rows = [
                [name] + [fmt_ci(metrics, _prefixed(sp, f"{pfx}{m}@{k}")) for k in ks for m in ("hr", "ndcg", "mrr")]
                for name, sp in systems
            ]
            rep.paragraph(f"Protocol `{protocol}` ({label}); value [95% bootstrap interval]. Keys `{pfx}...`.")
            rep.table(header, rows)
    if paired:
        rep.heading("Lift over the baselines (paired, same cases)")
        rep.paragraph(
            "diff = B - A per case, averaged; interval: bootstrap of the mean difference; p: paired "
            "sign-flip permutation test (two-sided)."
        )
        rep.table(
            ["comparison", "metric", "A", "B", "B - A [95% CI]", "relative", "p", "cases"],
            [
                [
                    label,
                    r.metric,
                    f"{r.mean_a:.4f}",
                    f"{r.mean_b:.4f}",
                    f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                    f"{(r.diff / r.mean_a * 100):+.1f}%" if r.mean_a else "n/a",
                    f"{r.p_value:.4g}",
                    r.n,
                ]
                for label, r in paired
            ],
        )
    split = "test" if "test" in splits else splits[0]
    if any(f"{split}/coverage@{ks[0]}" in metrics or f"{sp}{split}/coverage@{ks[0]}" in metrics for _, sp in systems):
        rep.heading(f"Beyond accuracy on {split}")
        for protocol, label in protocols:
            pfx = f"{split}/" if protocol == "all" else f"{split}_{protocol}/"
            header = ["system"] + [f"{m}@{k}" for k in ks for m in ("coverage", "diversity", "novelty", "arp", "gini")]
            rows = [
                [name]
                + [
                    fmt_ci(metrics, f"{sp}{pfx}{m}@{k}", 3 if m in ("novelty", "arp") else 4)
                    for k in ks
                    for m in ("coverage", "diversity", "novelty", "arp", "gini")
                ]
                for name, sp in systems
            ]
            rep.paragraph(
                f"Protocol `{protocol}` ({label}). coverage: share of the catalogue recommended to anybody; "
                "diversity: mean pairwise attribute (Jaccard) distance within a list; novelty: mean self-information "
                "(bits); arp: mean training count of listed items; gini: concentration of exposure."
            )
            rep.table(header, rows)
    seg_prefix = f"segments/{split}/"
    segmenters = sorted({k[len(seg_prefix) :].split("/")[0] for k in metrics if k.startswith(seg_prefix)})
    if segmenters:
        k0 = ks[0]
        rep.heading(f"Breakdown by segment ({split}, protocol `all`, NDCG@{k0} [95% CI])")
        for seg in segmenters:
            base = f"{seg_prefix}{seg}/"
            labels = sorted(
                {k[len(base) :].split("/")[0] for k in metrics if k.startswith(base)},
                key=lambda s: (
                    not s[:1].isdigit(),
                    int(s.split("-")[0].removesuffix("plus")) if s[:1].isdigit() else 0,
                    s,
                ),
            )
            rows = []
            for lab in labels:
                rows.append(
                    [lab, fmt(metrics.get(f"{base}{lab}/n_cases"), 0)]
                    + [fmt_ci(metrics, f"{sp}{base}{lab}/ndcg@{k0}") for _, sp in systems]
                )
            rep.paragraph(f"Segmenter `{seg}`.")
            rep.table(["segment", "cases"] + [name for name, _ in systems], rows)
    n_sampled = int(settings.get("sampled_negatives", 0) or 0)
    if n_sampled:
        rep.heading(f"SAMPLED metrics: {n_sampled} negatives (asked for; NOT comparable with full ranking)")
        for sp_split in splits:
            key = f"{sp_split}_sampled{n_sampled}"
            rep.paragraph(f"Keys `{key}/...`: the target ranked among {n_sampled} random unseen items only.")
            rep.table(
                ["system"] + [f"sampled {m}@{k}" for k in ks for m in ("HR", "NDCG")],
                [
                    [name] + [fmt_ci(metrics, f"{sp}{key}/{m}@{k}") for k in ks for m in ("hr", "ndcg")]
                    for name, sp in systems
                ],
            )
    if plots:
        rep.heading("Plots")
        for path, caption in plots:
            rep.image(path, caption)
    if notes:
        rep.heading("Notes")
        rep.bullets(notes)
    return rep


def summary_text(
    metrics: Mapping[str, float],
    systems: Sequence[tuple[str, str]],
    where: Sequence[tuple[str, str]],
    ks: Sequence[int],
    split: str = "test",
) -> str:
    """One screen: where everything is, and the headline metrics of every system with intervals."""
    k = ks[0]
    lines = ["", "=" * 100]
    lines += [f"{a:<15}: {b}" for a, b in where]
    n = metrics.get(f"{split}/n_cases")
    lines.append(f"{split}, full ranking{f', {int(n)} cases' if n is not None else ''}; value [95% CI]")
    lines.append(f"{'system':<20}{'protocol':<15}{'NDCG@' + str(k):>26}{'HR@' + str(k):>26}{'coverage@' + str(k):>13}")
    for name, sp in systems:
        for proto, pfx in (("all", f"{split}/"), ("seen_excluded", f"{split}_seen_excluded/")):
            lines.append(
                f"{name:<20}{proto:<15}{fmt_ci(metrics, sp + pfx + f'ndcg@{k}'):>26}"
                f"{fmt_ci(metrics, sp + pfx + f'hr@{k}'):>26}{fmt(metrics.get(sp + pfx + f'coverage@{k}')):>13}"
            )
    lines.append("=" * 100)
    return "\n".join(lines)
