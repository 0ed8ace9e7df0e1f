"""The trace page (`trace.html`): what a run did, level by level, for a reader who was not there.

Title: the program and the sample. Then the provenance (poelang version,
program hash, seed, settings), the contact sheet (images: every particle's
x0_hat per level; vectors: a scatter per level with axes, ticks and a legend,
every particle that carries weight inside the axes), a plot of the ESS and of
the best and weighted-mean score over levels, the plan and the numbers.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["levels_plot", "page", "vector_sheet", "score_series"]

PER_ROW = 4  # scatter plots per row of the vector sheet


def vector_sheet(rows: list[Any]) -> "Image":
    """One scatter per level (LevelInfo with x0_hat [L, d]), on shared axes that hold every weighty particle."""
    import torch
    from PIL import Image

    from poelang.plots import vector_plot, weighty_bounds

    def points(info: Any) -> "torch.Tensor":
        x = info.x0_hat.double()
        return x[:, :2] if x.shape[1] >= 2 else torch.cat([x[:, :1], torch.zeros_like(x[:, :1])], 1)

    def weights(info: Any) -> "torch.Tensor":
        return torch.softmax(info.log_weights.double(), 0)

    limits = weighty_bounds(torch.cat([points(r) for r in rows]), torch.cat([weights(r) / weights(r).max() for r in rows]))
    plots = [vector_plot(points(r), weights(r), limits=limits,
                         title=f"level {r.level}  sigma={r.sigma:.3f}  ESS={r.ess:.1f}") for r in rows]
    width, height = plots[0].size
    sheet = Image.new("RGB", (width * min(PER_ROW, len(plots)), height * math.ceil(len(plots) / PER_ROW)), "white")
    for i, plot in enumerate(plots):
        sheet.paste(plot, ((i % PER_ROW) * width, (i // PER_ROW) * height))
    return sheet


def score_series(result: Any) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]]]:
    """Levels, ``{"ESS": …}`` and ``{"best score": …, "mean score (weighted)": …}`` over the trace."""
    import torch

    levels, ess, best, mean = [], [], [], []
    for info in result.trace:
        scores = info.scores.double()
        finite = torch.isfinite(scores)
        w = torch.softmax(info.log_weights.double().masked_fill(~finite, -math.inf), 0) if finite.any() else None
        levels.append(float(info.level))
        ess.append(float(info.ess))
        best.append(float(scores[finite].max()) if finite.any() else math.nan)
        mean.append(float((w[finite] * scores[finite]).sum()) if w is not None else math.nan)
    return levels, {"ESS": ess}, {"best score": best, "mean score (weighted)": mean}


def levels_plot(result: Any) -> "Image":
    """ESS above, best and weighted-mean score below, over levels."""
    from PIL import Image

    from poelang.plots import curves_plot

    levels, ess, scores = score_series(result)
    particles = int(result.particles.shape[0])
    top = curves_plot(levels, ess, title=f"effective sample size (of {particles} particles)", ylabel="ESS",
                      ylim=(0.0, float(particles)))
    if not result.reward_names:  # no reward: every score is 0
        return top
    bottom = curves_plot(levels, scores, title=f"reward score of the particles' x0_hat ({', '.join(result.reward_names)})",
                         ylabel="score")
    image = Image.new("RGB", (top.width, top.height + bottom.height), "white")
    image.paste(top, (0, 0))
    image.paste(bottom, (0, top.height))
    return image


def _png(image: "Image") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _provenance(record: dict[str, Any] | None) -> str:
    if not record:
        return "<p>No provenance recorded (the trace was written outside a program run).</p>"
    rows = [(k, record[k]) for k in ("poelang", "program", "program_sha256", "sample", "seed") if k in record]
    settings = record.get("settings") or {}
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    shown = ", ".join(f"{k} = {_source(v)}" for k, v in settings.items() if v is not None)
    if shown:
        cells += f"<tr><th>settings</th><td class='settings'>{html.escape(shown)}</td></tr>"
    return f"<table class='provenance'>{cells}</table>"


def _source(value: Any) -> str:
    """A setting's value as a program writes it (symbols bare: `resample = systematic`)."""
    if isinstance(value, str) and value.isidentifier():
        return value
    return json.dumps(value)


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#f4f4f4}
table.provenance td,table.provenance th{text-align:left} td.settings{font-family:monospace}
img{max-width:100%;border:1px solid #ccc} img.strip{image-rendering:pixelated}"""


def page(sample_id: str, result: Any, sheet_png: bytes, provenance: dict[str, Any] | None, *,
         levels_table: str, final_strips: str = "", plan: str = "") -> str:
    """The whole self-contained HTML page."""
    program = (provenance or {}).get("program")
    title = f"{program}: {sample_id}" if program else sample_id
    vectors = bool(result.trace) and result.trace[0].x0_hat is not None and result.trace[0].x0_hat.dim() == 2
    legend = ("Each plot is a level (σ from 1 to 0), showing every particle's predicted clean sample x̂₀ "
              "(its first two coordinates) on shared axes; dot area is proportional to the particle's weight, "
              "red for weights of at least half the largest, blue for the others; the few particles of "
              "negligible weight that fall outside the axes are drawn as hollow circles on the frame."
              if vectors else
              "Each row is an annealing level (σ from 1 to 0); each column a particle's predicted clean sample "
              "x̂₀ (videos: a strip of its frames).")
    scores_text = (", and the best and the weight-averaged reward score of the particles' x̂₀ (non-finite scores, "
                   "of rejected particles, left out)." if result.reward_names else "; the program has no reward to plot.")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)} — poelang trace</title>
<style>{_STYLE}</style></head>
<body><h1>{html.escape(title)} — trace</h1>
<h2>Provenance</h2>{_provenance(provenance)}
<h2>Particles over levels</h2><p>{legend}</p>
<img id="sheet" alt="contact sheet" src="data:image/png;base64,{base64.b64encode(sheet_png).decode()}">
<h2>ESS and scores over levels</h2>
<p>The effective sample size of the weights at each level (before resampling){scores_text}</p>
<img id="levels" alt="ESS and scores over levels" src="data:image/png;base64,{_png(levels_plot(result))}">
{final_strips}
<h2>Plan</h2><pre>{html.escape(plan)}</pre>
<h2>Levels</h2><table><tr><th>level</th><th>σ</th><th>ESS</th><th>resampled</th><th>scores</th><th>log weights</th><th>ancestors</th></tr>
{levels_table}</table></body></html>
"""
