"""End to end in real headless Chromium: the viewer on the demo run.

Load and screenshot; query "table" (the table stays bright, the rest dims: pixel
statistics against the GT mask of the first training view, where the viewer starts); click
the table (the panel shows its id); isolate (only the table remains); export the selection
(the PLY holds the table's Gaussians). Skips where Chromium, chromedriver or selenium are
missing.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
from _browser import Browser, chromium_paths  # noqa: E402

pytestmark = [pytest.mark.slow]

W, H = 800, 600  # the demo views are 160 x 120: the same aspect, 5x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(demo_run):
    if chromium_paths() is None:
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium "
                    "chromium-driver)")
    pytest.importorskip("selenium")
    from instgs.viewer import view

    scene, run_dir = demo_run
    app = view(run_dir, port=_free_port())
    b = Browser(W, H)
    try:
        b.open(app.url)
        b.wait(lambda: "instances" in b.text(), 120)
        yield app, b, scene, run_dir
    finally:
        b.quit()
        app.stop()


def _masks(scene: Path):
    gt = np.asarray(Image.open(scene / "gt" / "instance" / "00000.png"))
    gt = np.kron(gt, np.ones((H // gt.shape[0], W // gt.shape[1]), gt.dtype))
    return gt


def _outside_panel(b, shape) -> np.ndarray:
    keep = np.ones(shape, bool)
    box = b.panel_box()
    if box:
        x0, y0, x1, y1 = box
        keep[max(y0 - 5, 0):y1 + 5, max(x0 - 5, 0):x1 + 5] = False
    keep[:60, :] = False  # title bar / notifications
    keep[-80:, :80] = False  # the axes gizmo
    return keep


def test_query_click_isolate_export(page, tmp_path):
    app, b, scene, run_dir = page
    shot0 = b.stable_shot()
    gt = _masks(scene)
    keep = _outside_panel(b, gt.shape)
    table = (gt == 2) & keep  # synthetic scene: 1 floor, 2 table, 3.. objects
    rest = (gt > 0) & (gt != 2) & keep
    lum0 = shot0.astype(float).mean(-1)
    assert lum0[table].mean() > 40 and lum0[rest].mean() > 40, "nothing rendered"

    q = b.input_by_label("Query")
    q.click()
    q.send_keys("table")
    b.button("Search").click()
    b.wait(lambda: "showing: table" in b.text(), 60)
    shot1 = b.stable_shot()
    lum1 = shot1.astype(float).mean(-1)
    assert lum1[table].mean() > 0.8 * lum0[table].mean()  # the table stays bright
    assert lum1[rest].mean() < 0.5 * lum0[rest].mean()  # the rest dims
    tid = next(i for i, info in app.scene.instances.items() if info.label == "table")
    assert min(app.matches) == tid

    ys, xs = np.nonzero(table)
    k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    b.click_at(int(xs[k]), int(ys[k]))
    b.wait(lambda: f"instance {tid}:" in b.text().replace("*", ""), 60)
    assert app.selected == {tid}
    shot_sel = b.stable_shot()

    b.button("Isolate").click()
    b.wait(lambda: all(not h.visible for i, h in app.handles.items() if i != tid), 30)
    shot2 = b.stable_shot()
    for name, img in (("loaded", shot0), ("query", shot1), ("selected", shot_sel),
                      ("isolated", shot2)):
        Image.fromarray(img).save(tmp_path / f"{name}.png")  # kept for a failing run
    lum2 = shot2.astype(float).mean(-1)
    grown = np.asarray(Image.fromarray((gt == 2).astype(np.uint8) * 255).filter(
        ImageFilter.MaxFilter(15))) > 0
    floor = keep & ~grown & (gt == 1)  # objects on the table hid parts of it: not checked
    assert (lum2[floor] > 40).mean() < 0.02  # only the table remains: the floor is gone
    assert (lum2[table] > 40).mean() > 0.8

    b.button("Export selection").click()
    b.wait(lambda: app.last_export is not None and app.last_export.is_file(), 120)
    from instgs.export import read_ply

    from instgs import export

    s = read_ply(app.last_export)
    (whole,) = export.run(run_dir, export.ExportConfig(out=tmp_path))
    assert (s.instance_ids == tid).all()
    assert len(s) == int((read_ply(whole).instance_ids == tid).sum()) > 0
