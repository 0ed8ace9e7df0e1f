"""Writing samples and traces: PNG, GIF/MP4, .npy, .safetensors, and the trace
contact sheet + HTML page (the paper's Fig. 8 for any program). Every file is
written atomically (see :mod:`poelang.outputs`).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poelang._lazy import lazy_import
from poelang import trace_page
from poelang.outputs import atomic_path, write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:
    from PIL.Image import Image

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


def write_value(path: str, fmt: str, data: Any, options: dict, provenance: dict | None = None) -> list[str]:
    """Write one value; returns the paths written (the file, and a ``.json`` sidecar for .npy and .mp4).

    ``provenance`` (see :mod:`poelang.provenance`) goes into the file where
    the format has room for text: PNG text chunks, the JPEG and GIF comment,
    safetensors metadata; .npy and .mp4 get ``PATH.json`` beside them.
    """
    t = _as_tensor(data)
    meta = json.dumps(provenance, sort_keys=True) if provenance else None
    written = [path]
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, t.detach().cpu().numpy())
        write_bytes_atomic(path, buffer.getvalue())
    elif fmt == "safetensors":
        from safetensors.torch import save as save_safetensors

        metadata = {"poelang": meta} if meta else None
        write_bytes_atomic(path, save_safetensors({"samples": t.detach().cpu().contiguous()}, metadata=metadata))
    elif fmt in ("png", "jpg"):
        from PIL import Image, PngImagePlugin

        image = t[0] if hasattr(data, "samples") else t  # the first of the chosen samples
        extra: dict[str, Any] = {}
        if meta and fmt == "png":
            info = PngImagePlugin.PngInfo()
            info.add_text("Software", f"poelang {provenance['poelang']}")
            info.add_text("poelang", meta)
            extra["pnginfo"] = info
        elif meta:
            extra["comment"] = meta.encode()
        with atomic_path(path) as tmp:
            Image.fromarray(to_uint8_image(image)).save(tmp, format="PNG" if fmt == "png" else "JPEG", **extra)
    elif fmt in ("gif", "mp4"):
        video = t[0] if hasattr(data, "samples") else t
        write_video(path, np.stack([to_uint8_image(f) for f in video]), float(options.get("fps", 8)), fmt,
                    meta if fmt == "gif" else None)
    else:  # pragma: no cover - the checker admits only the formats above
        raise ValueError(f"unknown format {fmt}")
    if meta and fmt in ("npy", "mp4"):
        write_text_atomic(path + ".json", json.dumps(provenance, sort_keys=True, indent=1) + "\n")
        written.append(path + ".json")
    return written


def write_every_sample(path: str, fmt: str, data: Any, options: dict, provenance: dict | None = None) -> list[str]:
    """Like :func:`write_value`, but an image or video save of several chosen samples
    (`output = all`, `num_samples = 4`) writes each, numbered: x-0.png, x-1.png, …"""
    samples = getattr(data, "samples", None)
    if fmt not in ("png", "jpg", "gif", "mp4") or samples is None or samples.shape[0] <= 1:
        return write_value(path, fmt, data, options, provenance)
    stem, suffix = Path(path).with_suffix(""), Path(path).suffix
    return [written for i, sample in enumerate(samples)
            for written in write_value(f"{stem}-{i}{suffix}", fmt, sample, options, provenance)]


def write_video(path: str, frames: "np.ndarray", fps: float, fmt: str, comment: str | None = None) -> None:
    """Frames uint8 [f,h,w,3] (or [f,h,w], grey) as a looping GIF or an H.264 MP4, atomically.

    MP4 goes through imageio-ffmpeg, else PyAV; frames of an odd size get one
    more row or column (a copy of the last) because H.264's yuv420p needs even
    sizes. Neither installed: an OSError that says what to install.
    """
    import imageio.v3 as iio

    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    with atomic_path(path) as tmp:
        if fmt == "gif":
            # Pillow stores a run of identical frames once, for the run's duration; the comment keeps the frame
            # rate so that a reader (load_video) gets every frame back
            text = f"fps={fps:g}" + (f" poelang={comment}" if comment else "")
            iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0, comment=text.encode())
            return
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        try:
            import imageio_ffmpeg  # noqa: F401

            iio.imwrite(tmp, frames, plugin="FFMPEG", extension=".mp4", fps=fps, quality=8, macro_block_size=2,
                        ffmpeg_log_level="error")
            return
        except ImportError:
            pass
        try:
            import av  # noqa: F401
        except ImportError:
            raise OSError("writing .mp4 needs imageio-ffmpeg or av: pip install imageio-ffmpeg") from None
        iio.imwrite(tmp, frames, plugin="pyav", extension=".mp4", codec="libx264", fps=float(fps),
                    out_pixel_format="yuv420p")


# --- traces --------------------------------------------------------------------

MAX_LEVEL_ROWS = 12
MAX_PARTICLE_COLUMNS = 16
MAX_VIDEO_COLUMNS = 8
CELL = 96
FRAME_CELL = 48  # height of a frame in a video's strip on the contact sheet
STRIP_FRAMES = 8  # frames per strip on the contact sheet


def _levels_to_show(n: int) -> list[int]:
    if n <= MAX_LEVEL_ROWS:
        return list(range(n))
    step = (n - 1) / (MAX_LEVEL_ROWS - 1)
    return sorted({round(i * step) for i in range(MAX_LEVEL_ROWS)})


def contact_sheet(result) -> "Image":
    """Rows: levels; columns: particles (images) or one scatter per level (vectors)."""
    from PIL import Image, ImageDraw

    levels = [info for info in result.trace if info.x0_hat is not None]
    rows = [levels[i] for i in _levels_to_show(len(levels))]
    if not rows:
        return Image.new("RGB", (CELL, CELL), "white")
    shape = rows[0].x0_hat.shape[1:]
    label_width = 120
    if len(shape) == 1:  # vectors: a scatter plot per level, with axes and a legend
        from poelang.trace_page import vector_sheet

        return vector_sheet(rows)
    video = len(shape) == 4
    columns = min(rows[0].x0_hat.shape[0], MAX_VIDEO_COLUMNS if video else MAX_PARTICLE_COLUMNS)
    width = STRIP_FRAMES * FRAME_CELL if video else CELL  # a video's cell is a strip of its frames
    sheet = Image.new("RGB", (label_width + (width + 8) * columns, CELL * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, info in enumerate(rows):
        draw.text((4, i * CELL + 4), f"level {info.level}\nsigma={info.sigma:.3f}\nESS={info.ess:.1f}", fill="black")
        for j in range(columns):
            x = info.x0_hat[j]
            if video:
                cell = frame_strip(x, FRAME_CELL, STRIP_FRAMES)
                sheet.paste(cell, (label_width + j * (width + 8) + 2, i * CELL + (CELL - FRAME_CELL) // 2))
            else:
                thumb = Image.fromarray(to_uint8_image(x)).resize((CELL - 4, CELL - 4))
                sheet.paste(thumb, (label_width + j * (width + 8) + 2, i * CELL + 2))
    return sheet


def _frame_indices(n: int, most: int) -> list[int]:
    """Up to `most` frame indices spread evenly over n frames, first and last included."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def frame_strip(video, height: int, most: int = 16) -> "Image":
    """One row of a video's frames ([f,3,h,w] in [-1, 1]), each `height` px high, up to `most` evenly spaced."""
    from PIL import Image

    frames = [video[k] for k in _frame_indices(video.shape[0], most)]
    h, w = frames[0].shape[-2:]
    cell_w = max(1, round(w * height / h))
    strip = Image.new("RGB", (cell_w * len(frames), height), "white")
    for k, frame in enumerate(frames):
        image = Image.fromarray(to_uint8_image(frame)).resize((cell_w, height), Image.NEAREST)
        strip.paste(image, (k * cell_w, 0))
    return strip


def _final_strips(result) -> str:
    """HTML: one strip of frames per final particle of a video sample (its weight and score beside it)."""
    particles = getattr(result, "particles", None)
    if particles is None or particles.dim() != 5:
        return ""
    weights = torch.exp(result.log_weights.double())
    rows = []
    for i in range(min(particles.shape[0], MAX_PARTICLE_COLUMNS)):
        strip = frame_strip(particles[i], max(64, int(particles.shape[-2])), 16)
        data = base64.b64encode(_png_bytes(strip)).decode()
        score = float(result.scores[i]) if result.scores.numel() > i else float("nan")
        rows.append(f'<tr><td>particle {i}<br>weight {float(weights[i]):.3g}<br>score {score:.3g}</td>'
                    f'<td><img class="strip" alt="frames of particle {i}" src="data:image/png;base64,{data}"></td></tr>')
    return ("<h2>Final particles</h2><p>Each row is one particle's video, frames left to right.</p>"
            '<table class="strips">' + "\n".join(rows) + "</table>")


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_trace(folder: str, sample_id: str, result, provenance: dict | None = None) -> list[str]:
    """`trace.png` (contact sheet), `trace.html` (self-contained) and `trace.json` (numbers, and the provenance)."""
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
    record = {"sample": sample_id, "plan": _jsonable(result.plan), "levels": _finite(levels)}
    if provenance:
        record["provenance"] = _finite(_jsonable(provenance))
    write_text_atomic(out / "trace.json", json.dumps(record, indent=1, allow_nan=False))
    rows = "\n".join(
        f"<tr><td>{lv['level']}</td><td>{lv['sigma']:.4f}</td><td>{lv['ess']:.2f}</td><td>{'yes' if lv['resampled'] else ''}</td>"
        f"<td>{html.escape(_short(lv['scores']))}</td><td>{html.escape(_short(lv['log_weights']))}</td>"
        f"<td>{html.escape(_short(lv['ancestors']))}</td></tr>" for lv in levels)
    page = trace_page.page(sample_id, result, sheet, provenance, levels_table=rows, final_strips=_final_strips(result),
                           plan=json.dumps(_jsonable(result.plan), indent=1))
    write_text_atomic(out / "trace.html", page)
    return [str(out / "trace.png"), str(out / "trace.html"), str(out / "trace.json")]


def _short(values: list, limit: int = 16) -> str:
    text = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values[:limit])
    return text + (", …" if len(values) > limit else "")


def _finite(value: Any) -> Any:
    """Strict JSON has no NaN or ±Infinity: a non-finite number (a rejected particle's -inf
    log weight or score) is written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)
