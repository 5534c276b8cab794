"""README.md is for users: short, the two Quickstart commands that .ci/run executes, no dated
measurements, and every figure of its results table found in the result file that row links to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
QUICKSTART = [
    'python3.11 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && '
    ".venv/bin/python scripts/train.py experiment=demo",
    ".venv/bin/python -m pytest -q",
]


def section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def test_readme_is_short_and_keeps_the_two_quickstart_commands():
    assert len(README.splitlines()) <= 300
    block = re.search(r"^```bash\n(.*?)^```", section("Quickstart"), re.S | re.M).group(1)  # what .ci/run reads
    assert [line for line in block.splitlines() if line.strip()] == QUICKSTART


def test_readme_holds_no_dated_measurement_or_commit():
    prose = re.sub(r"^```.*?^```", "", README, flags=re.S | re.M)  # example output may show ids
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", prose)
    assert not re.search(r"\btoday\b", prose, re.I)
    assert not re.search(r"\b(commit|main) `?[0-9a-f]{7,40}\b", prose)


def test_every_headline_figure_is_in_the_result_file_its_row_links_to():
    rows = [r for r in section("Results").splitlines() if r.startswith("| [")]
    assert len(rows) >= 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        files = re.findall(r"\(docs/results/(\w+)\.json\)", cells[-1])
        assert files, row
        text = " ".join((ROOT / "docs" / "results" / f"{f}.json").read_text() for f in files)
        known = {float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)}
        for number in re.findall(r"(?<![\w@.,])\d+(?:,\d{3})*(?:\.\d+)?", cells[1]):
            # the README may round a file's figure; the digits it shows must be the file's
            decimals = len(number.split(".")[1]) if "." in number else 0
            assert float(number.replace(",", "")) in {round(k, decimals) for k in known}, (number, files)
