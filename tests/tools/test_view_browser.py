"""The served view as a person sees it: rerun's web viewer (from the rerun-sdk wheel, no
internet) opened in headless Chromium, with the image panels and the plots drawn."""

from __future__ import annotations

import socket

import numpy as np
import pytest

rr = pytest.importorskip("rerun")
pytest.importorskip("mujoco")

from embodied_tools.view.browser import find_chromium  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium (apt-get install chromium; .ci/run installs it)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_view_shows_images_and_plots_in_a_browser(tmp_path):
    import cv2

    from embodied.modelfiles import MODELS_DIR
    from embodied_tools.view.browser import screenshot
    from embodied_tools.view.eval import EvalTap
    from embodied_tools.view.stream import StreamView
    from sim.evaluate import Point, run_episode

    rec = rr.RecordingStream("embodied-view-browser-test")
    grpc = rr.serve_grpc(grpc_port=_free_port(), recording=rec)
    web = _free_port()
    rr.serve_web_viewer(web_port=web, open_browser=False, connect_to=grpc)
    view = StreamView(rec, tokenizer_dir=MODELS_DIR / "tok-task")
    point = Point(codec="tokens", tokenizer="tok-task", trace="cellular", controller="deadline")
    run_episode(point, "drawer-open", 1_000_000, max_steps=90, observer=EvalTap(view))
    rec.flush()
    png = screenshot(f"http://127.0.0.1:{web}/?url={grpc}", tmp_path / "view.png", wait_s=25)
    rec.disconnect()
    img = cv2.imread(str(png))[..., ::-1]
    h, w = img.shape[:2]
    assert w == 1600 and h > 600, (w, h)
    # the loading screen is one dark colour with a line of text; the view has two camera
    # pictures (thousands of colours) and coloured plot lines
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    assert colours > 3000, colours
    top = img[: h // 2, : 2 * w // 3]  # the camera and received panels
    assert top.std() > 40, top.std()
    lines = np.abs(img[h // 2 :].astype(int) - img[h // 2 :].mean(axis=(0, 1))).sum(axis=2) > 150
    assert lines.mean() > 0.005, lines.mean()
