"""MkDocs hook: the docs' figures come from the result files committed under ``docs/results/``.

A page writes a marker where a table or a figure belongs, and the build replaces it:

* ``{{ results_table("NAME") }}``: the rows of ``docs/results/NAME.json`` as a Markdown table,
  followed by its provenance line (command as run, the current command where the entry point
  has moved, machine, threads, date, commit, a link to the file). Options, as keyword
  arguments: ``table="ID"`` picks one of the file's ``tables``; ``rows="figures.arms"`` takes the
  rows from a list or an object inside the record instead (dotted path; an object gives one row
  per entry, its name in the column ``key``; one ``*`` in the path takes every entry at that
  level and joins what it reaches by row name, each part under the name the ``*`` matched, so
  ``rows="figures.results.*.all"`` turns ``{target: {arm: figures}}`` into one row per arm with
  columns ``TARGET.METRIC``); ``columns="a, b.c"`` picks and orders columns (dotted keys reach
  into nested objects; as a list, an entry is a key, ``[key, label]``, ``[key, label, format]``
  or ``{"key", "label", "format", "ci95"}``, where ``ci95`` names the key of the value's
  interval when it is not one of the pairings below); ``format=".4f"`` writes every float with
  that format spec (a column's own ``format`` wins; ``"+.4f"`` signs a difference, ``".1%"``
  writes a share as a percentage); ``provenance=False`` leaves the line out (for a second table
  of the same file on one page).
* ``{{ result("NAME", "rows", 0, "p50_ms") }}``: one value of the file, reached by that path, for
  a figure inside a sentence (``format=".4f"`` as above).

The result file (every field is described in ``docs/results/README.md``) is a JSON object with
``name``, ``command``, ``machine``, ``threads``, ``date``, ``commit`` and either ``rows`` (a list
of objects), ``tables`` (``{ID: {"rows": [...], "columns": [...], "title": "..."}}``) or
``figures`` (a list of objects, read as rows, or an object of named figures, one row each), or
else a marker names its rows with ``rows=...``; ``columns`` (a list of ``[key, label]`` pairs)
orders and names the columns, otherwise every key of the rows is a column, in order of
appearance. A value ``{"value": v, "ci95": [lo, hi]}`` is written ``v [lo, hi]``, and so are the
pairings the benchmarks write: a key ``K`` beside
``K_ci95`` is one cell ``K``, and in an object with more keys (``{"diff", "ci95", "p_value"}``,
``{"value", "ci95", "repeated_cases"}``) ``ci95`` goes with ``diff`` or ``value``; ``null`` is
written as a dash. A record of the S3-Rec results (``without_refit`` and ``with_refit`` figures,
``benchmarks/s3rec_results.py collect``) becomes one row per protocol, against the best published
figure it holds under ``published``.

A missing file, a missing field, an unknown table, a ``rows`` path that reaches nothing or a
column no row has stops the build with a message naming the page, the file and what is missing
(``tests/docs/test_results_pages.py`` renders every page this way without MkDocs).

The configuration page is rendered from the code in the same way, so it cannot drift from it:
``{{ config_groups() }}`` lists every option file under ``configs/`` with its first comment line,
and ``{{ config_schema("src/journeyrec/config.py") }}`` (optionally naming classes) every key of
the structured-config dataclasses with its type, default and the comment written beside it.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = DOCS / "results"
REQUIRED = ("name", "command", "machine", "threads", "date", "commit")
MARKER = re.compile(r"\{\{\s*(results_table|result|config_groups|config_schema)\((.*?)\)\s*\}\}", re.DOTALL)
# code is left as written, so a page can show a marker without it being rendered
CODE_OR_MARKER = re.compile(r"(?P<code>^[ \t]*```.*?^[ \t]*```|`[^`\n]*`)|" + MARKER.pattern, re.DOTALL | re.MULTILINE)


class ResultsError(ValueError):
    """A marker that cannot be rendered from the committed result files."""


def load_result(name: str, results: Path = RESULTS) -> dict[str, Any]:
    path = results / f"{name}.json"
    if not path.is_file():
        raise ResultsError(f"{path}: no such result file (write it with `python -m benchmarks NAME --save {name}`)")
    record = json.loads(path.read_text(encoding="utf-8"))
    missing = [f for f in REQUIRED if f not in record]
    if "rows" not in record and "tables" not in record:
        figures = record.get("figures")
        if isinstance(figures, dict) and figures.get("benchmark") == "record-run":
            record["rows"] = _run_rows(figures["metrics"])
        elif isinstance(record.get("without_refit"), dict):
            record["rows"] = _refit_rows(record)
        elif isinstance(figures, list):  # a list of result objects: one row each
            record["rows"] = figures
        elif isinstance(figures, dict):  # named figures: one row per figure
            record["rows"] = [{"figure": k, "value": v} for k, v in flatten(figures).items()]
        elif figures is not None:
            missing.append("rows, tables or figures")
    if missing:
        raise ResultsError(f"{path}: missing field(s) {', '.join(missing)}")
    if record["name"] != name:
        raise ResultsError(f"{path}: its name is {record['name']!r}, the file name says {name!r}")
    return record


RUN_SPLITS = ("test", "test_seen_excluded", "valid", "valid_seen_excluded")
RUN_METRICS = ("ndcg@10", "hr@10", "mrr@10", "ndcg@20", "hr@20")


def _run_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A training run's ``metrics.json`` (``benchmarks record-run``) as one row per split and
    protocol, each metric with its interval."""
    rows = []
    for split in RUN_SPLITS:
        if f"{split}/ndcg@10" not in metrics:
            continue
        row: dict[str, Any] = {"split": split, "cases": metrics.get(f"{split}/n_cases", metrics.get("test/n_cases"))}
        for m in RUN_METRICS:
            value, low, high = (metrics.get(f"{split}/{m}{s}") for s in ("", "_ci95_low", "_ci95_high"))
            row[m] = value if low is None else {"value": value, "ci95": [low, high]}
        rows.append(row)
    return rows


def _refit_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """An S3-Rec results record (``benchmarks.s3rec_results collect``, ``blend``) as one row per
    protocol it holds: the test figures at the picked epoch, then after the refit, each against
    ``published``; a blend record's rows also hold the figure without the blend and the paired gain."""
    published = record.get("published") or {}
    rows = []
    refit = f" ({record['refit_epochs']} epochs)" if record.get("refit_epochs") else ""
    for proto, label in (("without_refit", "without refit"), ("with_refit", f"with refit{refit}")):
        if not isinstance(record.get(proto), dict):
            continue
        fig = record[proto]
        epochs = f"{record.get('epochs')} ({record.get('best_epoch')})" if record.get("epochs") else None
        if epochs and proto == "with_refit":
            epochs = f"{epochs} + {record.get('refit_epochs')}"
        cpu = record.get("cpu_seconds")
        blend = {}
        if "gain_ndcg@10" in fig:
            blend = {
                "without_blend_ndcg@10": fig.get("without_blend_ndcg@10"),
                "gain_ndcg@10": {"value": fig["gain_ndcg@10"], "ci95": fig.get("gain_ndcg@10_ci95")},
            }
        rows.append(
            {
                "file": record.get("file"),
                "published": published.get("model"),
                "published_ndcg@10": published.get("ndcg@10"),
                "published_hr@10": published.get("hr@10"),
                "protocol": label,
                "ndcg@10": {"value": fig["ndcg@10"], "ci95": fig.get("ndcg@10_ci95")},
                "vs_published": fig["ndcg@10"] / published["ndcg@10"] - 1 if published.get("ndcg@10") else None,
                "goal": fig.get("goal_ndcg@10"),
                "vs_goal": fig.get("vs_goal"),
                "hr@10": {"value": fig["hr@10"], "ci95": fig.get("hr@10_ci95")},
                "epochs": epochs,
                "wall_min": record["wall_seconds"] / 60 if record.get("wall_seconds") is not None else None,
                "cpu_min": cpu / 60 if cpu is not None else None,
                **blend,
            }
        )
    return rows


def _pair_intervals(row: dict[str, Any]) -> dict[str, Any]:
    """``K`` beside ``K_ci95``, and ``diff`` (or else ``value``) beside ``ci95``, as interval objects."""
    partner = "diff" if _is_number(row.get("diff")) else "value" if _is_number(row.get("value")) else None
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_ci95") and _is_number(row.get(key[: -len("_ci95")])) and _is_pair(value):
            continue
        if key == "ci95" and partner and _is_pair(value):
            continue
        ci = row.get(f"{key}_ci95", row.get("ci95") if key == partner else None)
        out[key] = {"value": value, "ci95": ci} if _is_number(value) and _is_pair(ci) else value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(v is None or _is_number(v) for v in value)


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys; a ``{"value", "ci95"}`` object (or a value paired with its
    interval, see ``_pair_intervals``) stays one cell."""
    out: dict[str, Any] = {}
    if not _is_interval(row):
        row = _pair_intervals(row)
    for key, value in row.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_interval(value) and value:
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def _is_interval(value: Any) -> bool:
    return isinstance(value, dict) and set(value) <= {"value", "ci95"} and "value" in value


def fmt(value: Any, spec: str | None = None) -> str:
    """One cell; ``spec`` (a format spec such as ``".4f"``) is applied to every float in it."""
    if value is None:
        return "–"
    if _is_interval(value):
        ci = value.get("ci95")
        v = fmt(value["value"], spec)
        return f"{v} [{fmt(ci[0], spec)}, {fmt(ci[1], spec)}]" if ci else v
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if spec:
            return format(value, spec)
        return repr(value) if abs(value) < 10_000 else f"{value:,.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, spec) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v, spec)}" for k, v in value.items()) or "–"
    # a table cell: pipes would split it, brackets would read as link references
    return str(value).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")


Column = tuple[str, str, "str | None", "str | None"]  # key, label, format spec, interval key


def _columns(spec: Any, rows: list[dict[str, Any]], where: str) -> list[Column]:
    if spec is None:
        seen: dict[str, None] = {}
        for r in rows:
            seen.update(dict.fromkeys(r))
        return [(k, k, None, None) for k in seen]
    if isinstance(spec, str):
        spec = [c.strip() for c in spec.split(",") if c.strip()]
    cols: list[Column] = []
    for c in spec:
        if isinstance(c, str):
            col: Column = (c, c, None, None)
        elif isinstance(c, (list, tuple)):
            col = (c[0], c[1], c[2] if len(c) > 2 else None, None)
        else:
            col = (c["key"], c.get("label", c["key"]), c.get("format"), c.get("ci95"))
        for key in col[::3]:
            if key is not None and not any(key in r for r in rows):
                raise ResultsError(
                    f"{where}: no row has the column {key!r} (columns: {sorted({k for r in rows for k in r})})"
                )
        cols.append(col)
    return cols


def _cell(row: dict[str, Any], col: Column, spec: str | None) -> str:
    key, _, own, ci = col
    value = row.get(key)
    if ci is not None and _is_number(value):
        value = {"value": value, "ci95": row.get(ci)}
    return fmt(value, own or spec)


def _walk(node: Any, path: list[Any], where: str, steps: list[Any]) -> Any:
    for step in path:
        try:
            node = node[int(step) if isinstance(node, list) and str(step).lstrip("-").isdigit() else step]
        except (KeyError, IndexError, TypeError):
            raise ResultsError(f"{where}: nothing at {'.'.join(map(str, steps))!r} (stopped at {step!r})") from None
    return node


def _as_rows(node: Any, where: str, path: str) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [r if isinstance(r, dict) else {"value": r} for r in node]
    if isinstance(node, dict):
        return [{"key": k, **v} if isinstance(v, dict) else {"key": k, "value": v} for k, v in node.items()]
    raise ResultsError(f"{where}: {path!r} is neither a list nor an object of rows")


def pick_rows(record: dict[str, Any], path: str, where: str) -> list[dict[str, Any]]:
    """The rows at a dotted ``path`` of the record (see ``rows=`` in the module docstring)."""
    steps = path.split(".")
    if steps.count("*") > 1:
        raise ResultsError(f"{where}: rows={path!r} has more than one '*'")
    if "*" not in steps:
        return _as_rows(_walk(record, steps, where, steps), where, path)
    star = steps.index("*")
    parts = _walk(record, steps[:star], where, steps)
    if not isinstance(parts, dict):
        raise ResultsError(f"{where}: {'.'.join(steps[:star])!r} is not an object, so '*' has nothing to take")
    joined: dict[str, dict[str, Any]] = {}
    for part, node in parts.items():
        inner = node
        for step in steps[star + 1 :]:
            inner = inner.get(step) if isinstance(inner, dict) else None
        if inner is None:
            continue  # a part without this entry (a target one data set lacks)
        for row in _as_rows(inner, where, path):
            joined.setdefault(str(row.pop("key", len(joined))), {})[part] = row
    if not joined:
        raise ResultsError(f"{where}: nothing at {path!r}")
    return [{"key": k, **v} for k, v in joined.items()]


def render_table(
    name: str,
    table: str | None = None,
    columns: Any = None,
    provenance: bool = True,
    rows: str | None = None,
    format: str | None = None,
    page_dir: str = "",
    results: Path = RESULTS,
) -> str:
    """The Markdown of one ``results_table`` marker (see the module docstring)."""
    record = load_result(name, results)
    where = f"docs/results/{name}.json"
    if rows is not None:
        part = {"rows": pick_rows(record, rows, where)}
        where = f"{where} rows {rows!r}"
    elif table is not None:
        tables = record.get("tables") or {}
        if table not in tables:
            raise ResultsError(f"{where}: no table {table!r} (tables: {sorted(tables)})")
        part = tables[table]
        where = f"{where} table {table!r}"
    elif "rows" in record:
        part = record
    elif "tables" in record:
        raise ResultsError(f"{where}: holds several tables ({sorted(record['tables'])}); name one with table=...")
    else:
        raise ResultsError(f"{where}: no rows, tables or figures; name the list to show with rows=...")
    if not part.get("rows"):
        raise ResultsError(f"{where}: no rows")
    flat = [flatten(r) for r in part["rows"]]
    cols = _columns(columns if columns is not None else part.get("columns"), flat, where)
    lines = ["| " + " | ".join(fmt(c[1]) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r, c, format) for c in cols) + " |" for r in flat]
    out = "\n".join(lines)
    if part.get("title"):
        out = f"*{part['title']}*\n\n{out}"
    if provenance:
        out += "\n\n" + provenance_line(record, page_dir)
    return out


def provenance_line(record: dict[str, Any], page_dir: str = "") -> str:
    link = posixpath.relpath(f"results/{record['name']}.json", page_dir or ".")
    parts = [f"Command: `{record['command']}`"]
    if record.get("command_now") and record["command_now"] != record["command"]:
        parts.append(f"now: `{record['command_now']}`")
    dirty = " (uncommitted changes)" if record.get("dirty") else ""
    parts += [
        f"machine: {record['machine']}",
        f"threads: {fmt(record['threads'])}",
        f"date: {record['date']}",
        f"commit: `{record['commit']}`{dirty}",
    ]
    if record.get("load") is not None:
        parts.append(f"load: {fmt(record['load'])}")
    parts.append(f"data: [`{record['name']}.json`]({link})")
    note = f"\n\n{record['notes']}" if record.get("notes") else ""
    return "<small>" + " · ".join(parts) + "</small>" + note


def render_value(name: str, *path: Any, results: Path = RESULTS, format: str | None = None) -> str:
    """The Markdown of one ``result`` marker: the value at ``path`` in the result file."""
    value: Any = load_result(name, results)
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise ResultsError(f"docs/results/{name}.json: nothing at {list(path)!r} (stopped at {step!r})") from None
    return fmt(value, format)


def render_config_groups(configs: str = "configs") -> str:
    """Every option file of every config group, with the first line of its leading comment."""
    root = ROOT / configs
    if not root.is_dir():
        raise ResultsError(f"{root}: no such directory")
    lines = ["| group | option | what it is |", "|---|---|---|"]
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*/*.yaml")):
        group = path.parent.name if path.parent != root else "(top level)"
        lines.append(f"| `{group}` | `{path.stem}` | {fmt(_first_comment(path))} |")
    return "\n".join(lines)


def _first_comment(path: Path) -> str:
    text = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        body = stripped.lstrip("#").strip()
        if body.startswith("@package"):
            continue
        if not body and text:
            break
        text.append(body)
    sentence = " ".join(text)
    return sentence if sentence else "–"


FIELD = re.compile(r"^    (\w+): ([^=#]+?)(?:\s*=\s*(.+?))?\s*(?:#\s?(.*))?$")


def render_config_schema(module: str, *classes: str) -> str:
    """One table per dataclass of ``module`` (or of ``classes``): key, type, default, comment."""
    path = ROOT / module
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    found = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef) and _is_dataclass(n)}
    missing = [c for c in classes if c not in found]
    if missing:
        raise ResultsError(f"{module}: no dataclass {', '.join(missing)}")
    out = []
    for name in classes or list(found):
        node = found[name]
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        out.append(f"### `{name}`" + (f" (adds to `{'`, `'.join(bases)}`)" if bases else ""))
        doc = ast.get_docstring(node)
        if doc:
            out.append(" ".join(doc.split()))
        rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
        pending: list[str] = []
        for lineno in range(node.body[0].lineno - 1, (node.end_lineno or node.body[-1].lineno)):
            text = lines[lineno]
            if text.strip().startswith("#"):
                pending.append(text.strip().lstrip("#").strip().lstrip("-").strip())
                continue
            m = FIELD.match(text)
            if m is None:
                pending = []
                continue
            key, typ, default, comment = m.groups()
            default = (
                (default if default and default.strip() != "MISSING" else "required")
                .replace("field(default_factory=dict)", "{}")
                .replace("field(default_factory=list)", "[]")
            )
            meaning = " ".join([*pending, comment or ""]).strip()
            rows.append(f"| `{key}` | `{typ.strip()}` | `{default.strip()}` | {fmt(meaning) if meaning else ''} |")
            pending = []
        out.append("\n".join(rows))
    return "\n\n".join(out)


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "dataclass")
        or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "dataclass")
        for d in node.decorator_list
    )


def _call(args_text: str) -> tuple[list[Any], dict[str, Any]]:
    call = ast.parse(f"f({args_text})", mode="eval").body
    assert isinstance(call, ast.Call)
    return [ast.literal_eval(a) for a in call.args], {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}


def render_markdown(markdown: str, page: str = "", results: Path = RESULTS) -> str:
    """Every marker of a page replaced; ``page`` (its path under docs/) names it in errors and
    places the links to the result files."""
    page_dir = posixpath.dirname(page)

    def replace(m: re.Match[str]) -> str:
        if m.group("code"):
            return m.group(0)
        try:
            args, kwargs = _call(m.group(3))
            if m.group(2) == "result":
                return render_value(*args, results=results, **kwargs)
            if m.group(2) == "config_groups":
                return render_config_groups(*args, **kwargs)
            if m.group(2) == "config_schema":
                return render_config_schema(*args, **kwargs)
            return render_table(*args, page_dir=page_dir, results=results, **kwargs)
        except ResultsError as exc:
            raise ResultsError(f"{page or 'a page'}: {exc}") from None
        except (SyntaxError, ValueError, TypeError) as exc:
            raise ResultsError(f"{page or 'a page'}: cannot read the marker {m.group(0)!r}: {exc}") from None

    return CODE_OR_MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # MkDocs' hook signature
    return render_markdown(markdown, page.file.src_uri)
