"""Writing samples and traces: PNG, GIF/MP4, .npy, .safetensors, and the trace
contact sheet + HTML page (the paper's Fig. 8 for any program). Every file is
written atomically (see :mod:`poelang.outputs`).
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from poelang._lazy import lazy_import
from poelang.outputs import atomic_path, write_bytes_atomic, write_text_atomic

torch = lazy_import("torch")
np = lazy_import("numpy")


def _as_tensor(data: Any):
    """A poelang.infer Result gives its chosen output; other values are tensors already."""
    if hasattr(data, "samples") and hasattr(data, "particles"):
        return data.samples
    return data


def to_uint8_image(t) -> "np.ndarray":
    """[3,h,w] in [-1,1] or [h,w] in [0,1] → HxWx3 / HxW uint8."""
    t = t.detach().float().cpu()
    if t.dim() == 3:
        return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return (t.clamp(0, 1) * 255).round().byte().numpy()


def write_value(path: str, fmt: str, data: Any, options: dict) -> str:
    t = _as_tensor(data)
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, t.detach().cpu().numpy())
        write_bytes_atomic(path, buffer.getvalue())
    elif fmt == "safetensors":
        from safetensors.torch import save as save_safetensors

        write_bytes_atomic(path, save_safetensors({"samples": t.detach().cpu().contiguous()}))
    elif fmt in ("png", "jpg"):
        from PIL import Image

        image = t[0] if hasattr(data, "samples") else t  # the first of the chosen samples
        with atomic_path(path) as tmp:
            Image.fromarray(to_uint8_image(image)).save(tmp, format="PNG" if fmt == "png" else "JPEG")
    elif fmt in ("gif", "mp4"):
        import imageio.v3 as iio

        video = t[0] if hasattr(data, "samples") else t
        frames = np.stack([to_uint8_image(f) for f in video])
        with atomic_path(path) as tmp:
            fps = float(options.get("fps", 8))
            if fmt == "gif":
                iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
            else:
                iio.imwrite(tmp, frames, extension=".mp4", fps=fps)
    else:  # pragma: no cover - the checker admits only the formats above
        raise ValueError(f"unknown format {fmt}")
    return path


# --- traces --------------------------------------------------------------------

MAX_LEVEL_ROWS = 12
MAX_PARTICLE_COLUMNS = 16
CELL = 96


def _levels_to_show(n: int) -> list[int]:
    if n <= MAX_LEVEL_ROWS:
        return list(range(n))
    step = (n - 1) / (MAX_LEVEL_ROWS - 1)
    return sorted({round(i * step) for i in range(MAX_LEVEL_ROWS)})


def _scatter(points, weights, extent: float, center=(0.0, 0.0)):
    """A CELL×CELL scatter plot of the first two coordinates, dot area ∝ weight."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (CELL * 2, CELL * 2), "white")
    draw = ImageDraw.Draw(image)
    size = CELL * 2
    draw.line([(size / 2, 0), (size / 2, size)], fill=(220, 220, 220))
    draw.line([(0, size / 2), (size, size / 2)], fill=(220, 220, 220))
    w = weights / max(float(weights.max()), 1e-12)
    for (x, y), wi in zip(points, w):
        px = ((float(x) - center[0]) / extent + 1) * size / 2
        py = (1 - (float(y) - center[1]) / extent) * size / 2
        r = 1.5 + 3 * float(wi) ** 0.5
        draw.ellipse([px - r, py - r, px + r, py + r], fill=(200, 40, 40) if wi > 0.5 else (60, 90, 200))
    return image


def contact_sheet(result) -> "Image":
    """Rows: levels; columns: particles (images) or one scatter per level (vectors)."""
    from PIL import Image, ImageDraw

    levels = [info for info in result.trace if info.x0_hat is not None]
    rows = [levels[i] for i in _levels_to_show(len(levels))]
    if not rows:
        return Image.new("RGB", (CELL, CELL), "white")
    shape = rows[0].x0_hat.shape[1:]
    label_width = 120
    if len(shape) == 1:  # vectors: a scatter plot per level
        every = torch.cat([r.x0_hat[:, :2] for r in rows]).double()
        center = every.median(0).values if every.shape[1] == 2 else torch.tensor([float(every[:, 0].median()), 0.0])
        extent = max(float((every - center[: every.shape[1]]).abs().quantile(0.99)), 1e-3) * 1.2
        center = (float(center[0]), float(center[1]) if len(center) > 1 else 0.0)
        per_row = 4
        grid_rows = (len(rows) + per_row - 1) // per_row
        sheet = Image.new("RGB", (CELL * 2 * per_row, (CELL * 2 + 40) * grid_rows), "white")
        for i, info in enumerate(rows):
            points = info.x0_hat[:, :2] if shape[0] >= 2 else torch.stack([info.x0_hat[:, 0], torch.zeros(len(info.x0_hat))], 1)
            weights = torch.softmax(info.log_weights.double(), 0).float()
            x, y = (i % per_row) * CELL * 2, (i // per_row) * (CELL * 2 + 40)
            sheet.paste(_scatter(points, weights, extent, center), (x, y + 40))
            ImageDraw.Draw(sheet).text((x + 4, y + 4), f"level {info.level}  sigma={info.sigma:.3f}\nESS={info.ess:.1f}", fill="black")
        return sheet
    columns = min(rows[0].x0_hat.shape[0], MAX_PARTICLE_COLUMNS)
    sheet = Image.new("RGB", (label_width + CELL * columns, CELL * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, info in enumerate(rows):
        draw.text((4, i * CELL + 4), f"level {info.level}\nsigma={info.sigma:.3f}\nESS={info.ess:.1f}", fill="black")
        for j in range(columns):
            x = info.x0_hat[j]
            frame = x[0] if x.dim() == 4 else x  # videos: the first frame
            thumb = Image.fromarray(to_uint8_image(frame)).resize((CELL - 4, CELL - 4))
            sheet.paste(thumb, (label_width + j * CELL + 2, i * CELL + 2))
    return sheet


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_trace(folder: str, sample_id: str, result) -> list[str]:
    """`trace.png` (contact sheet), `trace.html` (self-contained) and `trace.json` (numbers)."""
    out = Path(folder)
    sheet = _png_bytes(contact_sheet(result))
    write_bytes_atomic(out / "trace.png", sheet)
    levels = []
    for info in result.trace:
        levels.append({
            "level": info.level, "sigma": info.sigma, "ess": info.ess, "resampled": bool(info.resampled),
            "scores": [float(s) for s in info.scores], "log_weights": [float(w) for w in info.log_weights],
            "ancestors": [int(a) for a in info.ancestors],
        })
    write_text_atomic(out / "trace.json", json.dumps({"sample": sample_id, "plan": _jsonable(result.plan),
                                                     "levels": levels}, indent=1))
    rows = "\n".join(
        f"<tr><td>{lv['level']}</td><td>{lv['sigma']:.4f}</td><td>{lv['ess']:.2f}</td><td>{'yes' if lv['resampled'] else ''}</td>"
        f"<td>{html.escape(_short(lv['scores']))}</td><td>{html.escape(_short(lv['log_weights']))}</td>"
        f"<td>{html.escape(_short(lv['ancestors']))}</td></tr>" for lv in levels)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>poelang trace: {html.escape(sample_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} img{{max-width:100%;border:1px solid #ccc}}</style></head>
<body><h1>{html.escape(sample_id)} ~ … trace</h1>
<p>Each row is an annealing level (σ from 1 to 0); each column a particle's predicted clean sample x̂₀
(vectors: a scatter of the first two coordinates, dot size by weight).</p>
<img id="sheet" alt="contact sheet" src="data:image/png;base64,{base64.b64encode(sheet).decode()}">
<h2>Plan</h2><pre>{html.escape(json.dumps(_jsonable(result.plan), indent=1))}</pre>
<h2>Levels</h2><table><tr><th>level</th><th>σ</th><th>ESS</th><th>resampled</th><th>scores</th><th>log weights</th><th>ancestors</th></tr>
{rows}</table></body></html>
"""
    write_text_atomic(out / "trace.html", page)
    return [str(out / "trace.png"), str(out / "trace.html"), str(out / "trace.json")]


def _short(values: list, limit: int = 16) -> str:
    text = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values[:limit])
    return text + (", …" if len(values) > limit else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
