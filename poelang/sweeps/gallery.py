"""OUTDIR/index.html: one page, no outside scripts or styles, a row per table row with its outputs,
parameters, settings and scores; a click on a column's header sorts by it."""
from __future__ import annotations

import html
import json
from pathlib import Path

from poelang.outputs import write_text_atomic

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
th:hover { background: #e4e4e4; }
img, video { max-width: 160px; max-height: 160px; image-rendering: pixelated; margin-right: 4px; }
.failed { background: #fff0f0; }
pre { white-space: pre-wrap; font-size: 12px; margin: 0; max-width: 40em; }
"""

_SCRIPT = """
document.querySelectorAll("th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = th.dataset.order !== "up";
  document.querySelectorAll("th").forEach(h => delete h.dataset.order);
  th.dataset.order = up ? "up" : "down";
  const key = row => row.cells[column].dataset.sort ?? row.cells[column].textContent;
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const order = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    return up ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}));
"""


def write_gallery(out_dir: str | Path, records: list[dict], title: str) -> Path:
    out_dir = Path(out_dir)
    params = sorted({k for r in records for k in r.get("params", {})})
    settings = sorted({k for r in records for k in r.get("settings", {})})
    head = ["id", "status", "outputs", *params, *settings, "seed", "score", "seconds", "error"]
    rows = [_row(r, params, settings) for r in records]
    page = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{sum(r.get('status') == 'ok' for r in records)} of {len(records)} rows ok. "
            f"Click a column's name to sort.</p>\n<table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>\n" + "\n".join(rows) + f"\n</tbody></table><script>{_SCRIPT}</script></body></html>\n")
    path = out_dir / "index.html"
    write_text_atomic(path, page)
    return path


def _row(r: dict, params: list[str], settings: list[str]) -> str:
    cells = [_cell(r["id"]), _cell(r.get("status", "")), f"<td>{_previews(r.get('outputs', []))}</td>"]
    cells += [_cell(_show(r.get("params", {}).get(p))) for p in params]
    cells += [_cell(_show(r.get("settings", {}).get(s))) for s in settings]
    score = _score(r)
    cells += [_cell("" if r.get("seed") is None else r["seed"]),
              _cell("" if score is None else f"{score:.4g}", "" if score is None else repr(score)),
              _cell(f"{r.get('seconds', 0):.1f}", repr(r.get("seconds", 0))),
              f"<td><pre>{html.escape(r.get('error') or '')}</pre></td>"]
    css = "" if r.get("status") == "ok" else " class='failed'"
    return f"<tr{css}>" + "".join(cells) + "</tr>"


def _cell(text, sort: str = "") -> str:
    attribute = f" data-sort='{html.escape(sort, quote=True)}'" if sort else ""
    return f"<td{attribute}>{html.escape(str(text))}</td>"


def _show(value) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def _score(r: dict) -> float | None:
    scores = [s for values in r.get("scores", {}).values() for s in values]
    return max(scores) if scores else None


def _previews(outputs: list[str]) -> str:
    shown = []
    for path in outputs:
        src = html.escape(path, quote=True)
        suffix = Path(path).suffix.lower()
        if suffix in (".png", ".jpg", ".jpeg", ".gif"):
            shown.append(f"<a href='{src}'><img src='{src}' alt='{src}' loading='lazy'></a>")
        elif suffix == ".mp4":
            shown.append(f"<video src='{src}' controls muted loop></video>")
        elif suffix == ".html":
            shown.append(f"<a href='{src}'>trace</a>")
    return "".join(shown)
