"""The control panel of the viewer (viser GUI elements wired to :class:`.app.ViewerApp`)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from instgs.core.checks import InputError
from instgs.render.palette import heatmap

if TYPE_CHECKING:
    from .app import ViewerApp

__all__ = ["build_gui", "Gui"]

log = logging.getLogger(__name__)

MODES = {"RGB": "rgb", "Instances": "instances", "Relevancy": "relevancy"}


class Gui:
    """The panel: status, colour mode, query, hits, legend, selection, toggles."""

    def __init__(self, app: ViewerApp):
        self.app = app
        g = app.server.gui
        s = app.scene
        self._status = g.add_markdown(self._summary())
        modes = ["RGB", "Instances", "Relevancy"] if len(s.instances) > 1 else ["RGB"]
        self.mode = g.add_dropdown("Colour", modes, initial_value=[
            k for k, v in MODES.items() if v == app.mode][0])
        self.mode.on_update(lambda _: app.set_mode(MODES[self.mode.value]))
        with g.add_folder("Query"):
            self.text = g.add_text("Query", "", hint="comma-separated texts, e.g. chair, lamp")
            self.search = g.add_button("Search")
            self.search.on_click(lambda _: self._run_query())
            names = sorted(s.text_table)
            self.names = g.add_dropdown("Known names", ["(pick)"] + names,
                                        initial_value="(pick)", visible=bool(names))
            self.names.on_update(lambda _: self._pick_name())
            self._hits_md = g.add_markdown("")
            self._hits_folder = g.add_folder("Hits")
            self._hit_buttons: list = []
            self._legend = g.add_image(_colorbar(), label="relevancy (low -> high)",
                                       visible=False)
        with g.add_folder("Selection"):
            self._sel_md = g.add_markdown("nothing selected (click an object; shift-click adds)")
            for label, fn in (("Isolate", app.isolate), ("Hide", app.hide),
                              ("Show all", app.show_all), ("Invert", app.invert),
                              ("Export selection", app.export_selection)):
                g.add_button(label).on_click(lambda _, f=fn: f())
        self.cameras = g.add_checkbox("Cameras", False)
        self.cameras.on_update(lambda _: [setattr(f, "visible", self.cameras.value)
                                          for f in app.frustums])
        self.exact = g.add_checkbox("Exact render", False,
                                    hint="render the current view with the Scaffold model")
        self.exact.on_update(lambda _: self._toggle_exact())
        self._exact_worker = _ExactRenderer(app)

    def _summary(self) -> str:
        s = self.app.scene
        n_inst = len([i for i in s.instances if i >= 0])
        lines = [f"**{s.run_dir.name}**: {len(s.means):,} splats, {n_inst} instances"]
        lines += [f"- {n}" for n in s.notes]
        return "\n".join(lines)

    # ------------------------------------------------------------------ query
    def _pick_name(self) -> None:
        if self.names.value != "(pick)":
            self.text.value = self.names.value
            self._run_query()

    def _run_query(self) -> None:
        try:
            self.app.query(self.text.value)
        except InputError as e:
            self.status(f"query failed: {e}")
            log.warning("query failed: %s", e)

    def show_hits(self, hits: list[tuple[int, float, str]]) -> None:
        """List the ranked hits as buttons that select the instance and move the camera."""
        for b in self._hit_buttons:
            b.remove()
        self._hit_buttons = []
        if not hits:
            self._hits_md.content = ""
            return
        self._hits_md.content = f"showing: {', '.join(sorted({t for _, _, t in hits}))}"
        g = self.app.server.gui
        with self._hits_folder:
            for i, score, text in hits[:8]:
                info = self.app.scene.instances[i]
                b = g.add_button(f"#{i} {info.label or text} ({score:.3f})")
                b.on_click(lambda _, i=i: self.app.select({i}, move_camera=True))
                self._hit_buttons.append(b)

    def legend(self, show: bool) -> None:
        """Show the relevancy colour bar."""
        self._legend.visible = show

    # ------------------------------------------------------------------ selection
    def show_selection(self, ids: list[int]) -> None:
        """Describe the selected instances."""
        if not ids:
            self._sel_md.content = "nothing selected (click an object; shift-click adds)"
            return
        rows = []
        for i in ids:
            info = self.app.scene.instances[i]
            ext = info.bbox_max - info.bbox_min
            lab = f"{info.label} ({info.score:.3f})" if info.label else "no label"
            rows.append(f"- instance **{i}**: {len(info.rows):,} splats, "
                        f"{ext[0]:.2f} x {ext[1]:.2f} x {ext[2]:.2f}, {lab}")
        self._sel_md.content = "selected:\n" + "\n".join(rows)

    def status(self, text: str) -> None:
        """Append a line under the summary."""
        self._status.content = self._summary() + f"\n\n{text}"

    # ------------------------------------------------------------------ exact render
    def exact_on(self) -> bool:
        return bool(self.exact.value)

    def _toggle_exact(self) -> None:
        self.app._apply_visibility()
        self._exact_worker.enable(self.exact.value)


def build_gui(app: ViewerApp) -> Gui:
    """Create the panel for ``app``."""
    return Gui(app)


def _colorbar(width: int = 256, height: int = 16) -> np.ndarray:
    """[H, W, 3] uint8 turbo colour bar, low scores left."""
    row = heatmap(np.linspace(0.0, 1.0, width), 0.0, 1.0)
    return (np.repeat(row[None], height, 0) * 255).astype(np.uint8)


class _ExactRenderer:
    """Renders each client's camera with the Scaffold model (latest request wins) and sets
    it as the client's background image."""

    def __init__(self, app: ViewerApp, max_width: int = 640):
        self.app, self.max_width = app, max_width
        self.on = False
        self._pending: dict[int, object] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._registered: set[int] = set()

    def enable(self, on: bool) -> None:
        self.on = on
        for cid, client in self.app.server.get_clients().items():
            if on and cid not in self._registered:
                client.camera.on_update(lambda cam, cid=cid: self.request(cid, cam))
                self._registered.add(cid)
            if on:
                self.request(cid, client.camera)
            else:
                client.scene.set_background_image(None)
        if on and self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def request(self, cid: int, cam) -> None:
        if not self.on:
            return
        with self._cv:
            self._pending[cid] = cam
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                cid, cam = self._pending.popitem()
            try:
                img = self.app.scene.render_camera(np.asarray(cam.wxyz), np.asarray(
                    cam.position), float(cam.fov), float(cam.aspect), self.max_width)
                client = self.app.server.get_clients().get(cid)
                if client is not None and self.on:
                    client.scene.set_background_image(img, format="jpeg")
            except Exception as e:  # noqa: BLE001 - keep the viewer alive, report it
                log.warning("exact render failed: %s", e)
