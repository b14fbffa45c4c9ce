"""The viser app of ``instgs view RUN``: look at a run, find objects by text, click them,
take them out.

One browser page (viser, served from its wheel; no GPU needed, WebGL in software works):

* the baked Gaussians (:class:`.scene.ViewerScene`), one splat handle per instance; the
  training cameras as frustums (toggle); the world up from the cameras; the first camera
  at a training view;
* colour modes RGB / instances (the palette of ``instgs render``) / relevancy (turbo heat map
  with its legend);
* a query box (comma-separated texts; CLIP when weights exist, else the run's text-feature
  table, whose names a dropdown offers); matches stay bright, the rest dims; a ranked list of
  hits whose buttons select the instance and move the camera to it;
* click to select an instance (ray picking, :mod:`.picking`), shift-click to add; a panel
  with the selection's id, size, label and score; isolate, hide, show all, invert, and
  export of the selection as a 3DGS PLY into the run's exports (the export code);
* "exact render": the current camera rendered by instgs (the view-dependent Scaffold model)
  as the background image, the splats hidden, as nerfview does.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .scene import ViewerScene

__all__ = ["ViewerApp"]

log = logging.getLogger(__name__)

DIM_RGB = 0.12
DIM_OPACITY = 0.08
SELECT_RGB = np.array([1.0, 0.85, 0.1], np.float32)  # selected objects are tinted amber
SELECT_TINT = 0.45


def _wxyz_from_matrix(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (wxyz) of a rotation matrix [3, 3]."""
    m = np.asarray(r, np.float64)
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


class ViewerApp:
    """The running viewer (see the module docstring).

    Args:
        scene: the loaded :class:`ViewerScene`.
        host, port: where to serve (loopback by default).

    Raises:
        InputError: the port is in use (the message names it and the fix).
    """

    def __init__(self, scene: ViewerScene, host: str = "127.0.0.1", port: int = 8080):
        import viser

        from instgs.core.checks import InputError

        self.scene = scene
        self._lock = threading.RLock()
        self.mode = "instances" if len(scene.instances) > 1 else "rgb"
        self.selected: set[int] = set()
        self.hidden: set[int] = set()
        self.matches: set[int] | None = None
        self.scores: dict[int, float] = {}
        self.last_export: Path | None = None
        _check_port(host, port)
        try:
            self.server = viser.ViserServer(host=host, port=port, verbose=False)
        except OSError as e:
            raise InputError(f"cannot serve on {host}:{port} ({e.strerror or e})", None,
                             "pass another --port") from e
        self.url = f"http://{host}:{port}"
        self._setup_scene()
        self._setup_gui()
        self._recolor()

    # ------------------------------------------------------------------ scene
    def _setup_scene(self) -> None:
        s, server = self.scene, self.server
        server.scene.set_up_direction(tuple(s.up_direction()))
        c2w, look, fov = s.camera_pose(s.train_ids[0] if s.train_ids else 0)
        server.initial_camera.position = tuple(c2w[:3, 3])
        server.initial_camera.look_at = tuple(look)
        server.initial_camera.up = tuple(s.up_direction())
        server.initial_camera.fov = fov
        self.handles = {}
        for i, info in s.instances.items():
            r = info.rows
            self.handles[i] = server.scene.add_gaussian_splats(
                f"/splats/{i}", centers=s.means[r], covariances=s.covs[r], rgbs=s.rgbs[r],
                opacities=s.opacities[r, None])
        extent = float(np.linalg.norm(s.means.max(0) - s.means.min(0)))
        self.frustums = []
        for i in s.train_ids:
            c2w_i, _, fov_i = s.camera_pose(i)
            self.frustums.append(server.scene.add_camera_frustum(
                f"/cameras/{i}", fov=fov_i, aspect=s.cameras.width / s.cameras.height,
                scale=0.03 * extent, wxyz=_wxyz_from_matrix(c2w_i[:3, :3]),
                position=tuple(c2w_i[:3, 3]), color=(120, 120, 255), visible=False))
        server.scene.on_click()(lambda e: self.click(e.ray_origin, e.ray_direction, False))
        server.scene.on_click(modifier="shift")(
            lambda e: self.click(e.ray_origin, e.ray_direction, True))

    # ------------------------------------------------------------------ gui
    def _setup_gui(self) -> None:
        from .gui import build_gui

        # dark canvas: dimmed objects fade to black, not to a white page
        self.server.gui.configure_theme(dark_mode=True, show_share_button=False)
        self.gui = build_gui(self)

    # ------------------------------------------------------------------ actions
    def visible_ids(self) -> set[int]:
        """Instances currently drawn."""
        return set(self.scene.instances) - self.hidden

    def click(self, origin, direction, add: bool) -> int:
        """Select the instance under a click ray (shift: add to the selection); returns its
        id, or -2 when the ray hits nothing (the selection is then cleared unless ``add``)."""
        with self._lock:
            before = set(self.selected)
            i = self.scene.pick(origin, direction, self.visible_ids())
            if i == -2:
                if not add:
                    self.selected = set()
            elif add:
                self.selected ^= {i}
            else:
                self.selected = {i}
            self._show_selection(before)
            return i

    def select(self, ids: set[int], move_camera: bool = False) -> None:
        """Select instances (and fly the clients' cameras to the first)."""
        with self._lock:
            before = set(self.selected)
            self.selected = set(ids) & set(self.scene.instances)
            self._show_selection(before)
            if move_camera and self.selected:
                self._look_at(min(self.selected, key=lambda i: -len(
                    self.scene.instances[i].rows)))

    def _look_at(self, i: int) -> None:
        info = self.scene.instances[i]
        size = float(np.linalg.norm(info.bbox_max - info.bbox_min))
        for client in self.server.get_clients().values():
            cam = client.camera
            direction = np.asarray(cam.position) - info.centroid
            direction = direction / max(np.linalg.norm(direction), 1e-9)
            with client.atomic():
                cam.look_at = tuple(info.centroid)
                cam.position = tuple(info.centroid + direction * max(2.0 * size, 0.3))

    def query(self, text: str) -> list[tuple[int, float, str]]:
        """Run a query (comma-separated texts), dim what does not match, list the hits."""
        texts = [t.strip() for t in text.split(",") if t.strip()]
        with self._lock:
            if not texts:
                self.matches, self.scores = None, {}
                self._recolor()
                self.gui.show_hits([])
                return []
            hits = self.scene.query(texts)
            self.scores = {i: s for i, s, _ in hits}
            best = {}
            for i, s, t in hits:  # best instance per text
                best.setdefault(t, (i, s))
            self.matches = {i for i, _ in best.values()}
            self._recolor()
            self.gui.show_hits(hits)
            return hits

    def set_mode(self, mode: str) -> None:
        """Colour mode: ``rgb`` | ``instances`` | ``relevancy``."""
        with self._lock:
            self.mode = mode
            self._recolor()

    def isolate(self) -> None:
        """Show the selection only."""
        with self._lock:
            if self.selected:
                self.hidden = set(self.scene.instances) - self.selected
                self._apply_visibility()

    def hide(self) -> None:
        """Hide the selection."""
        with self._lock:
            before = set(self.selected)
            self.hidden |= self.selected
            self.selected = set()
            self._apply_visibility()
            self._show_selection(before)

    def show_all(self) -> None:
        """Show every instance."""
        with self._lock:
            self.hidden = set()
            self._apply_visibility()

    def invert(self) -> None:
        """Select every visible instance that is not selected."""
        with self._lock:
            before = set(self.selected)
            self.selected = self.visible_ids() - self.selected
            self._show_selection(before)

    def export_selection(self) -> Path | None:
        """Write the selection as a 3DGS PLY into the run's exports (the export code)."""
        from instgs import export

        with self._lock:
            if not self.selected:
                return None
            ids = tuple(sorted(i for i in self.selected if i >= 0))
            cfg = export.ExportConfig(instances=ids, name="viewer_selection_" +
                                      "_".join(map(str, ids)))
            (path,) = export.run(self.scene.run_dir, cfg)
            self.last_export = path
            self.gui.status(f"exported {len(ids)} instance(s) to {path}")
            return path

    # ------------------------------------------------------------------ drawing
    def _recolor(self, ids: set[int] | None = None) -> None:
        """Send the colours of instances ``ids`` (default all): the colour mode, dimmed
        outside the query's matches, tinted when selected; one atomic batch, so the browser
        re-sorts and redraws once."""
        s = self.scene
        colors = s.colors(self.mode, self.scores)
        with self.server.atomic():
            for i in self.handles if ids is None else ids & set(self.handles):
                rows = s.instances[i].rows
                rgb, op = colors[rows], s.opacities[rows, None]
                if self.matches is not None and i not in self.matches:
                    rgb, op = rgb * DIM_RGB, op * DIM_OPACITY
                if i in self.selected:
                    rgb = (1 - SELECT_TINT) * rgb + SELECT_TINT * SELECT_RGB
                self.handles[i].rgbs = rgb.astype(np.float32)
                self.handles[i].opacities = op.astype(np.float32)
        self.gui.legend(self.mode == "relevancy" and bool(self.scores))

    def _apply_visibility(self) -> None:
        with self.server.atomic():
            for i, h in self.handles.items():
                h.visible = i not in self.hidden and not self.gui.exact_on()

    def _show_selection(self, previous: set[int] | None = None) -> None:
        self.gui.show_selection(sorted(self.selected))
        if previous is not None:
            self._recolor(previous ^ self.selected)

    def stop(self) -> None:
        """Shut the server down."""
        self.server.stop()


def _check_port(host: str, port: int) -> None:
    import socket

    from instgs.core.checks import InputError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as e:
            raise InputError(f"port {port} on {host} is in use ({e.strerror})", None,
                             "pass another --port, or stop the program using it") from e
