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

_STYLE = """
body { font-family: system-ui, -apple-system, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; } td, th { border: 1px solid #ccc; padding: .3rem .7rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .85rem; }
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
    if final:
        rows = "".join(
            f'<tr><th>{html.escape(k)}</th><td class="num">{html.escape(_format(v))}</td></tr>'
            for k, v in final.items()
        )
        parts.append(f'<table id="metrics">{rows}</table>')
    else:
        parts.append("<p>No final metrics yet (the run has not finished its evaluation).</p>")
    for file, caption in listed_pictures(run):
        if Path(file).name == file and (run / file).is_file():  # files of the run only
            text = html.escape(caption)
            parts.append(
                f'<figure><img alt="{text}" src="{_data_uri(run / file)}"><figcaption>{text}</figcaption></figure>'
            )
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(config_path.read_text())}</pre>")
    parts.append("</body></html>")
    out = run / "report.html"
    out.write_text("\n".join(parts))
    return out
