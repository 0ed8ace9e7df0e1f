"""The trace HTML renders in headless Chromium with its contact sheet visible."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from poelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_trace_page_shows_its_images(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    program = ROOT / "programs" / "analytic" / "gaussian_product.poe"
    assert main(["run", "-q", str(program), "--set", "levels=10", "--set", "particles=64"]) == 0
    page = tmp_path / "gaussian_product_trace" / "trace.html"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,900", f"--screenshot={shot}", page.as_uri()],
        check=True, timeout=120, capture_output=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 110)
    # the particles' dots of the embedded contact sheet are drawn in red and blue
    assert red.sum() + blue.sum() > 500
