"""``report.html``: one self-contained page per run (images embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from ..train.metrics_log import read_metrics
from .figures import learning_curves

MANIFEST = "pictures.json"  # [{"file": ..., "caption": ...}], written by the run's task
EVALUATIONS = "evaluations.jsonl"  # one record per evaluation (dgm.experiments.runner)

_STYLE = """
body { font-family: system-ui, -apple-system, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; } td, th { border: 1px solid #ccc; padding: .3rem .7rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .85rem; }
table.matrix { margin: .2rem 0; } table.matrix td, table.matrix th { padding: .1rem .4rem; font-size: .85rem; }
img { max-width: 100%; border: 1px solid #ddd; } figure { margin: 1rem 0 2rem; } figcaption { color: #555; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _format(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.1f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_format(x)}" for k, x in v.items())
    return str(v)


def _matrix(key: str, rows: list[list[Any]]) -> str:
    """A confusion matrix (or any list of equal rows) as a table with labelled axes."""
    confusion = "confusion" in key
    head = "true \\ predicted" if confusion else "row \\ column"
    cols = len(rows[0])
    header = "".join(f"<th>{j}</th>" for j in range(cols))
    body = "".join(
        f"<tr><th>{i}</th>" + "".join(f'<td class="num">{_format(v)}</td>' for v in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    note = (
        '<div class="sub">rows: the true count; columns: the inferred count</div>'
        if confusion
        else ""
    )
    return f'<table class="matrix"><tr><th>{head}</th>{header}</tr>{body}</table>{note}'


def _cell(key: str, v: Any) -> str:
    """A final metric's cell: a labelled table for a matrix, else the formatted value."""
    if (
        isinstance(v, list)
        and v
        and all(isinstance(r, list) and len(r) == len(v[0]) and r for r in v)
    ):
        return _matrix(key, v)
    return html.escape(_format(v))


def _evaluations_table(records: list[dict[str, Any]]) -> str:
    """When, on which checkpoint, with which settings each evaluation ran, and what it gave."""
    head = (
        "<tr><th>when</th><th>checkpoint (step)</th><th>how</th><th>seed</th>"
        "<th>seconds</th><th>computed</th></tr>"
    )
    rows = []
    for r in records:
        how = "after training" if r.get("after_training") else "dgm eval"
        if r.get("overrides"):
            how += " " + " ".join(f"--set {o}" for o in r["overrides"])
        computed = ", ".join(
            f"{k} {_format(v)}" for k, v in r.get("metrics", {}).items() if not isinstance(v, list)
        )
        rows.append(
            f"<tr><td>{html.escape(str(r.get('time', '')))}</td>"
            f"<td>{html.escape(str(r.get('checkpoint')))} ({r.get('step')})</td>"
            f"<td><code>{html.escape(how)}</code></td><td>{r.get('seed')}</td>"
            f'<td class="num">{_format(r.get("seconds"))}</td>'
            f"<td>{html.escape(computed)}</td></tr>"
        )
    return f'<table id="evaluations">{head}{"".join(rows)}</table>'


def listed_pictures(run: Path) -> list[tuple[str, str]]:
    """The pictures a run lists in ``pictures.json`` (file, caption), in its order.

    A run directory without the list (written before runs had one) shows every PNG file in
    it, captioned by its name.
    """
    manifest = run / MANIFEST
    if manifest.is_file():
        listed = [(str(p["file"]), str(p["caption"])) for p in json.loads(manifest.read_text())]
    else:
        listed = [
            (p.name, p.stem.replace("_", " ").capitalize())
            for p in sorted(run.glob("*.png"))
            if p.name != "learning_curves.png"
        ]
    return [("learning_curves.png", "Learning curves"), *listed]


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from the run's config, metrics and pictures; return its path."""
    run = Path(run_dir)
    config_path = run / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{run} is not a dgm run directory (no config.yaml); give the --out directory of `dgm train`"
        )
    config = yaml.safe_load(config_path.read_text())
    final: dict[str, Any] = {}
    if (run / "final_metrics.json").is_file():
        final = json.loads((run / "final_metrics.json").read_text())
    records = read_metrics(run / "metrics.jsonl")
    learning_curves(records, run / "learning_curves.png")
    name = html.escape(str(config.get("name", run.name)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>dgm run: {name}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{name}</h1>",
        f'<p class="sub">{html.escape(str(config.get("description", "")))}<br>run directory: <code>{html.escape(str(run.resolve()))}</code></p>',
        "<h2>Final metrics</h2>",
    ]
    evaluations = read_metrics(run / EVALUATIONS)
    if final:
        if "eval_checkpoint" in final:
            parts.append(
                f'<p class="sub">Evaluated checkpoint: <code>checkpoints/'
                f"{html.escape(str(final['eval_checkpoint']))}</code> (step "
                f"{html.escape(str(final.get('eval_step')))})"
                + ("; each evaluation is listed under Evaluations below" if evaluations else "")
                + ".</p>"
            )
        rows = "".join(
            f'<tr><th>{html.escape(k)}</th><td class="num">{_cell(k, v)}</td></tr>'
            for k, v in final.items()
        )
        parts.append(f'<table id="metrics">{rows}</table>')
    else:
        parts.append("<p>No final metrics yet (the run has not finished its evaluation).</p>")
    if evaluations:  # the pictures are drawn by the latest evaluation
        latest = evaluations[-1]
        parts.append(
            f'<p class="sub">The pictures below are from <code>checkpoints/'
            f"{html.escape(str(latest.get('checkpoint')))}</code> (step {latest.get('step')}), "
            f"drawn {html.escape(str(latest.get('time')))}; the learning curves from "
            "<code>metrics.jsonl</code>.</p>"
        )
    for file, caption in listed_pictures(run):
        if Path(file).name == file and (run / file).is_file():  # files of the run only
            text = html.escape(caption)
            parts.append(
                f'<figure><img alt="{text}" src="{_data_uri(run / file)}"><figcaption>{text}</figcaption></figure>'
            )
    if evaluations:
        parts.append("<h2>Evaluations</h2>")
        parts.append(_evaluations_table(evaluations))
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(config_path.read_text())}</pre>")
    parts.append("</body></html>")
    out = run / "report.html"
    out.write_text("\n".join(parts))
    return out
