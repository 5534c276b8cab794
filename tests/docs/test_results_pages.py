"""The documentation site: every page's tables and figures render from the result files committed
under docs/results/ (a missing file, field, table or column fails), the configuration page lists
every key of every structured config, and ``mkdocs build --strict`` passes with the network
blocked and leaves no page loading anything from outside."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NETBLOCK = ROOT / "tests" / "netblock"


def load_hooks():
    spec = importlib.util.spec_from_file_location("journeyrec_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


hooks = load_hooks()
PAGES = sorted(p for p in DOCS.rglob("*.md"))
UNRENDERED = re.compile(r"\{\{\s*(results_table|result|config_groups|config_schema)\(")


def outside_code(markdown: str) -> str:
    return re.sub(r"^[ \t]*```.*?^[ \t]*```|`[^`\n]*`", "", markdown, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_page_renders_from_the_committed_files(page):
    rendered = hooks.render_markdown(page.read_text(encoding="utf-8"), str(page.relative_to(DOCS)))
    assert not UNRENDERED.search(outside_code(rendered)), page


def test_every_result_file_has_its_provenance_and_is_shown_somewhere():
    files = sorted((DOCS / "results").glob("*.json"))
    assert files
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    for path in files:
        record = hooks.load_result(path.stem)
        assert all(str(record[f]).strip() for f in hooks.REQUIRED), path
        assert f'"{path.stem}"' in text, f"{path.name} is not shown on any page"


def write(results: Path, name: str, **fields) -> None:
    record = {
        "name": name,
        "command": "python -m benchmarks x",
        "machine": "2-core test CPU, no GPU",
        "threads": 1,
        "date": "2026-01-01T00:00:00+00:00",
        "commit": "abc1234",
        **fields,
    }
    (results / f"{name}.json").write_text(json.dumps(record))


def test_a_table_renders_values_intervals_and_its_provenance(tmp_path):
    write(
        tmp_path,
        "t",
        command_now="python -m benchmarks y",
        load=1.5,
        columns=[["system", "system"], ["m.ndcg", "NDCG@10"], ["n", "cases"]],
        rows=[
            {"system": "A|B", "m": {"ndcg": {"value": 0.0639, "ci95": [0.0613, 0.0666]}}, "n": 22363},
            {"system": "C [x]", "m": {"ndcg": None}, "n": 5},
        ],
    )
    got = hooks.render_markdown(
        'Intro.\n\n{{ results_table("t") }}\n\nSee `{{ result("t") }}`.', "sub/page.md", results=tmp_path
    )
    table = got.split("\n\n")[1].splitlines()
    assert table == [
        "| system | NDCG@10 | cases |",
        "|---|---|---|",
        "| A\\|B | 0.0639 [0.0613, 0.0666] | 22,363 |",
        "| C \\[x\\] | – | 5 |",
    ]
    provenance = got.split("\n\n")[2]
    for part in (
        "`python -m benchmarks x`",
        "now: `python -m benchmarks y`",
        "2-core test CPU",
        "threads: 1",
        "2026-01-01T00:00:00+00:00",
        "`abc1234`",
        "load: 1.5",
        "(../results/t.json)",
    ):
        assert part in provenance, part
    assert got.endswith('See `{{ result("t") }}`.')  # code is left as written
    assert hooks.render_markdown('{{ result("t", "rows", 0, "n") }}', results=tmp_path) == "22,363"


def test_named_figures_render_one_row_each(tmp_path):
    write(
        tmp_path,
        "f",
        figures={"p50_ms": 1.8, "http": {"p99_ms": 7.9, "errors": 0}, "ndcg": {"value": 0.5, "ci95": [0.4, 0.6]}},
    )
    table = hooks.render_table("f", provenance=False, results=tmp_path).splitlines()
    assert table == [
        "| figure | value |",
        "|---|---|",
        "| p50_ms | 1.8 |",
        "| http.p99_ms | 7.9 |",
        "| http.errors | 0 |",
        "| ndcg | 0.5 [0.4, 0.6] |",
    ]


def test_missing_files_fields_tables_and_columns_fail_with_the_page_named(tmp_path):
    write(tmp_path, "ok", tables={"a": {"rows": [{"x": 1}]}})
    write(tmp_path, "no_commit", rows=[{"x": 1}])
    record = json.loads((tmp_path / "no_commit.json").read_text())
    del record["commit"]
    (tmp_path / "no_commit.json").write_text(json.dumps(record))
    write(tmp_path, "no_rows", figures=3)
    cases = {
        '{{ results_table("absent") }}': "no such result file",
        '{{ results_table("no_commit") }}': "missing field(s) commit",
        '{{ results_table("ok", table="b") }}': "no table 'b'",
        '{{ results_table("ok") }}': "holds several tables",
        '{{ results_table("ok", table="a", columns="x, y") }}': "no row has the column 'y'",
        '{{ result("ok", "tables", "a", "rows", 3) }}': "nothing at",
        '{{ results_table("ok", table=) }}': "cannot read the marker",
    }
    for marker, message in cases.items():
        with pytest.raises(hooks.ResultsError) as err:
            hooks.render_markdown(f"text\n\n{marker}\n", "guide.md", results=tmp_path)
        assert str(err.value).startswith("guide.md: ") and message in str(err.value), (marker, str(err.value))


@pytest.mark.parametrize(
    "module, path",
    [
        ("journeyrec.config", "src/journeyrec/config.py"),
        ("journeyrec.serving.settings", "src/journeyrec/serving/settings.py"),
        ("journeyrec.bundle.settings", "src/journeyrec/bundle/settings.py"),
    ],
)
def test_the_configuration_page_lists_every_key_of_every_schema(module, path):
    """Checked against the dataclasses themselves, so a key the page's parser missed fails here."""
    rendered = hooks.render_config_schema(path)
    sections = {
        m.group(1): body
        for m in re.finditer(r"^### `(\w+)`.*?\n(.*?)(?=^### |\Z)", rendered, re.S | re.M)
        for body in [m.group(2)]
    }
    mod = importlib.import_module(module)
    classes = {
        name: cls for name, cls in vars(mod).items() if dataclasses.is_dataclass(cls) and cls.__module__ == mod.__name__
    }
    assert set(classes) == set(sections)
    for name, cls in classes.items():
        own = list(cls.__dict__.get("__annotations__", {}))  # the keys this class declares (or re-declares)
        listed = re.findall(r"^\| `(\w+)` \|", sections[name], re.M)
        assert listed == own, name


def test_config_groups_list_every_option_file():
    rendered = hooks.render_config_groups()
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        group = path.parent.name if path.parent != ROOT / "configs" else "(top level)"
        assert f"| `{group}` | `{path.stem}` |" in rendered, path


@pytest.mark.slow
def test_the_site_builds_strict_offline_and_loads_nothing_from_outside(tmp_path):
    log = tmp_path / "netblock.log"
    env = dict(
        os.environ,
        JOURNEYREC_NETBLOCK_LOG=str(log),
        NO_MKDOCS_2_WARNING="1",
        PYTHONPATH=os.pathsep.join([str(NETBLOCK), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not log.exists() or not log.read_text().strip(), log.read_text()
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) >= len(PAGES)
    external = re.compile(r"<(?:link|script|img|iframe)\b[^>]*\b(?:href|src)=\"(?:https?:)?//", re.I)
    for page in pages:
        assert not external.search(page.read_text(encoding="utf-8")), page
    performance = (tmp_path / "site" / "performance.html").read_text(encoding="utf-8")
    assert "python -m benchmarks train-vs-peer" in performance and "<table>" in performance


def test_rows_from_a_path_pair_each_value_with_its_interval_and_format_it(tmp_path):
    write(
        tmp_path,
        "arms",
        figures={
            "arms": {
                "fp32": {"ndcg": 0.043490349779170906, "ndcg_ci95": [0.0295762, 0.0597964], "wall": 17.2},
                "bf16": {
                    "ndcg": 0.0434,
                    "ndcg_ci95": [0.0295, 0.0598],
                    "minus_fp32": {"diff": -4e-05, "ci95": [-0.00012, 0.0], "p_value": 1.0},
                    "wall": 21.3,
                },
            }
        },
    )
    marker = (
        '{{ results_table("arms", rows="figures.arms", format=".4f", provenance=False, '
        'columns=["key", ["ndcg", "NDCG@10 [95% CI]"], ["minus_fp32.diff", "minus fp32", "+.4f"], '
        '["minus_fp32.p_value", "p", ".3g"], ["wall", "wall (s)", ".0f"]]) }}'
    )
    assert hooks.render_markdown(marker, results=tmp_path).splitlines() == [
        "| key | NDCG@10 \\[95% CI\\] | minus fp32 | p | wall (s) |",
        "|---|---|---|---|---|",
        "| fp32 | 0.0435 [0.0296, 0.0598] | – | – | 17 |",
        "| bf16 | 0.0434 [0.0295, 0.0598] | -0.0000 [-0.0001, +0.0000] | 1 | 21 |",
    ]
    value = '{{ result("arms", "figures", "arms", "fp32", "ndcg", format=".3f") }}'
    assert hooks.render_markdown(value, results=tmp_path) == "0.043"


def test_a_star_in_the_rows_path_joins_the_parts_by_row_name(tmp_path):
    results = {
        "next_cart": {"all": {"a": {"ndcg": 0.5, "ndcg_ci95": [0.4, 0.6]}, "b": {"ndcg": 0.55}}},
        "next_item": {"all": {"a": {"ndcg": 0.3}, "b": {"ndcg": 0.35}}, "cases": 12},
        "next_buy": {"cases": 3},  # no "all": left out
    }
    write(tmp_path, "ab", figures={"results": results})
    table = hooks.render_table(
        "ab",
        rows="figures.results.*.all",
        columns="key, next_cart.ndcg, next_item.ndcg",
        provenance=False,
        results=tmp_path,
    )
    assert table.splitlines()[2:] == ["| a | 0.5 [0.4, 0.6] | 0.3 |", "| b | 0.55 | 0.35 |"]


def test_an_explicit_interval_key_and_an_object_with_value_and_ci95(tmp_path):
    write(
        tmp_path,
        "lat",
        figures={"backends": [{"backend": "sqlite", "diff_ms": 0.487, "diff_ci95": [0.078, 0.885]}]},
        rules=[{"run": "demo", "rule": {"ndcg": {"value": 0.17801, "ci95": [0.16565, 0.18945], "repeated": 0.0}}}],
    )
    lat = hooks.render_table(
        "lat",
        rows="figures.backends",
        columns=[{"key": "diff_ms", "label": "d", "ci95": "diff_ci95", "format": "+.2f"}],
        provenance=False,
        results=tmp_path,
    )
    assert lat.splitlines()[2] == "| +0.49 [+0.08, +0.89] |"
    rules = hooks.render_table(
        "lat",
        rows="rules",
        columns="run, rule.ndcg.value, rule.ndcg.repeated",
        format=".4f",
        provenance=False,
        results=tmp_path,
    )
    assert rules.splitlines()[2] == "| demo | 0.1780 [0.1656, 0.1895] | 0.0000 |"


def test_a_wrong_rows_path_names_the_file_and_the_path(tmp_path):
    write(tmp_path, "w", figures={"arms": {"fp32": {"x": 1}}, "n": 3})
    cases = {
        '{{ results_table("w", rows="figures.armz") }}': "docs/results/w.json: nothing at 'figures.armz' "
        "(stopped at 'armz')",
        '{{ results_table("w", rows="figures.n") }}': "'figures.n' is neither a list nor an object of rows",
        '{{ results_table("w", rows="figures.*.y") }}': "nothing at 'figures.*.y'",
        '{{ results_table("w", rows="figures.arms", columns="key, y") }}': "no row has the column 'y'",
        '{{ results_table("w", rows="figures.arms", columns=[{"key": "x", "ci95": "x_lo"}]) }}': "no row has the "
        "column 'x_lo'",
    }
    for marker, message in cases.items():
        with pytest.raises(hooks.ResultsError) as err:
            hooks.render_markdown(marker, "guide.md", results=tmp_path)
        assert str(err.value).startswith("guide.md: ") and message in str(err.value), (marker, str(err.value))
