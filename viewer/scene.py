"""What the viewer shows, without viser: baked Gaussians in per-instance groups, cameras,
instance table, queries and picking (``instgs view``; the app is :mod:`.app`).

The Gaussians come from the export code (:func:`instgs.export.load_or_bake`, cached per
checkpoint), so the viewer shows exactly what ``instgs export`` writes. viser splats carry
one RGB per splat (no SH), so the colour is the baked DC term, the mean over directions.
Large scenes stay usable by (1) opacity pruning (``min_opacity``), (2) a level of detail that
keeps the ``max_splats`` most visible splats (opacity x projected area, ``opacity *
scale_max^2``) when there are more, and (3) one viser handle per instance, so hiding,
isolating or recolouring an object sends that object's splats only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from instgs.core.checks import InputError
from instgs.render.palette import heatmap, instance_colors
from instgs.render.sh import SH_C0

from .picking import pick, precision_matrices

__all__ = ["ViewerScene", "InstanceInfo", "rotation_matrices", "covariances"]

log = logging.getLogger(__name__)


def rotation_matrices(quats: np.ndarray) -> np.ndarray:
    """[N, 3, 3] rotations of unit quaternions [N, 4] (wxyz)."""
    q = np.asarray(quats, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)


def covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``Sigma = R diag(s^2) R^T`` [N, 3, 3] float32 (viser's splat input)."""
    r = rotation_matrices(quats)
    s2 = np.asarray(scales, np.float64) ** 2
    return np.einsum("nij,nj,nkj->nik", r, s2, r).astype(np.float32)


@dataclass
class InstanceInfo:
    """One instance as the viewer lists it.

    Attributes:
        id: instance id (-1 = unassigned). rows: [M] int64 rows of its splats.
        centroid: [3] scene units. bbox_min, bbox_max: [3].
        label: best name of the text-feature table ("" when unknown). score: its cosine.
    """

    id: int
    rows: np.ndarray
    centroid: np.ndarray
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    label: str = ""
    score: float = float("nan")


@dataclass
class ViewerScene:
    """Everything the viewer draws and answers, as numpy arrays.

    Attributes:
        run_dir: the run. means [N, 3], covs [N, 3, 3], rgbs [N, 3] in [0, 1],
        opacities [N], instance_ids [N] int (-1 = none): the splats.
        instances: id -> :class:`InstanceInfo`.
        notes: why something is missing (no instances, no language features), for the GUI.
        cameras: the scene's cameras (:class:`~instgs.core.cameras.Cameras`), train ids.
        text_table: name -> text feature (offline queries), or empty.
    """

    run_dir: Path
    means: np.ndarray
    covs: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray
    instance_ids: np.ndarray
    instances: dict[int, InstanceInfo]
    cameras: object
    train_ids: list[int]
    notes: list[str] = field(default_factory=list)
    text_table: dict[str, np.ndarray] = field(default_factory=dict)
    text_features_path: Path | None = None
    language_ok: bool = False
    run: object = None
    _precisions: np.ndarray | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, run_dir: str | Path, *, text_features: Path | None = None,
             min_opacity: float = 0.02, max_splats: int = 1_000_000) -> ViewerScene:
        """Load a run for viewing (bake cached by :func:`instgs.export.load_or_bake`).

        Args:
            run_dir: a trained run; segmented for instances; with language features for
                queries (the viewer opens without them and says why).
            text_features: JSON {name: [512 floats]} for offline queries (default: the
                scene's text_features.json, if any).
            min_opacity: splats below are not sent.
            max_splats: level of detail: at most this many splats (the most visible).

        Raises:
            InputError: missing run folder or checkpoint (names the file and the fix).
        """
        from instgs.export import load_or_bake
        from instgs.run import RunPaths, load_instances, load_run

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputError("run folder not found", run_dir,
                             "pass a folder written by `instgs train`")
        run = load_run(run_dir)
        notes: list[str] = []
        inst = None
        if RunPaths(run_dir).instances.is_file():
            try:
                inst = load_instances(run_dir)
            except InputError as e:
                notes.append(f"instances not shown: {e}")
        else:
            notes.append(f"no instances yet: run `instgs segment {run_dir}` (RGB only)")
        s = load_or_bake(run, None, inst)
        s = s.select(s.opacities >= min_opacity)
        if len(s) > max_splats:
            vis = s.opacities * s.scales.max(dim=1).values ** 2
            s = s.select(torch.topk(vis, max_splats).indices.sort().values)
            notes.append(f"level of detail: showing the {max_splats} most visible splats")
        scene = cls(run_dir, s.means.numpy().astype(np.float32),
                    covariances(s.quats.numpy(), s.scales.numpy()),
                    np.clip(0.5 + SH_C0 * s.sh[:, 0].numpy(), 0, 1).astype(np.float32),
                    s.opacities.numpy().astype(np.float32), s.instance_ids.numpy(), {},
                    run.scene.cameras, list(run.scene.train_ids), notes)
        scene.run = run
        scene._precisions = precision_matrices(s.quats.numpy(), s.scales.numpy())
        scene._build_instances()
        scene._load_language(text_features)
        return scene

    def _build_instances(self) -> None:
        ids = self.instance_ids
        order = np.argsort(ids, kind="stable")
        uniq, starts = np.unique(ids[order], return_index=True)
        bounds = list(starts[1:]) + [len(order)]
        for i, a, b in zip(uniq.tolist(), starts.tolist(), bounds):
            rows = order[a:b]
            m = self.means[rows]
            self.instances[int(i)] = InstanceInfo(int(i), rows, m.mean(0), m.min(0), m.max(0))

    def _load_language(self, text_features: Path | None) -> None:
        from instgs.export.stage import _instance_labels, run_text_features
        from instgs.language.query import load_text_feature_table
        from instgs.run import RunPaths

        if not RunPaths(self.run_dir).language.is_file():
            if self.instances.keys() - {-1}:
                self.notes.append(f"no language features: run `instgs language {self.run_dir}`"
                                  " for text queries")
            return
        self.text_features_path = text_features or run_text_features(self.run_dir)
        if self.text_features_path is not None:
            self.text_table = load_text_feature_table(self.text_features_path)
        try:
            labels = _instance_labels(self.run_dir, self.text_features_path)
        except InputError as e:
            self.notes.append(f"language features not used: {e}")
            return
        self.language_ok = True
        for i, (name, score) in labels.items():
            if i in self.instances:
                self.instances[i].label, self.instances[i].score = name, score

    # ------------------------------------------------------------------ answers
    def colors(self, mode: str, scores: dict[int, float] | None = None) -> np.ndarray:
        """[N, 3] splat colours for ``rgb`` | ``instances`` | ``relevancy``."""
        if mode == "instances":
            return instance_colors(self.instance_ids)
        if mode == "relevancy" and scores:
            vals = np.array([scores.get(int(i), np.nan) for i in self.instance_ids])
            lo, hi = min(scores.values()), max(scores.values())
            out = heatmap(vals, lo, hi)
            out[~np.isfinite(vals)] = 0.15
            return out
        return self.rgbs

    def query(self, texts: list[str]) -> list[tuple[int, float, str]]:
        """Rank instances for comma-separated texts: [(instance id, best score, text)], best
        first (the run's language features; CLIP when weights exist, else the text table).

        Raises:
            InputError: no language features, unknown name offline, no CLIP weights.
        """
        from instgs.language.query import query_instances

        if not self.language_ok:
            raise InputError("this run has no language features", self.run_dir,
                             f"run `instgs language {self.run_dir}`")
        res = query_instances(self.run_dir, texts, text_features=self.text_features_path,
                              top_k=0)
        sc = np.where(np.isfinite(res.scores), res.scores, -np.inf)  # [T, K], -inf unranked
        best, which = sc.max(axis=0), sc.argmax(axis=0)
        hits = [(int(i), float(best[i]), texts[int(which[i])]) for i in range(len(best))
                if np.isfinite(best[i]) and i in self.instances]
        return sorted(hits, key=lambda h: -h[1])

    def pick(self, origin, direction, visible_ids: set[int] | None = None) -> int:
        """Instance id under a click ray (see :mod:`.picking`), or -2 when none is hit.

        Args:
            origin, direction: the ray (scene units).
            visible_ids: instances currently shown (hidden ones cannot be hit).
        """
        cand = None
        if visible_ids is not None:
            cand = np.isin(self.instance_ids, np.fromiter(visible_ids, np.int64))
        row = pick(origin, direction, self.means, self._precisions, self.opacities,
                   candidates=cand)
        return -2 if row < 0 else int(self.instance_ids[row])

    def camera_pose(self, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(c2w [4, 4] OpenCV, look-at point, vertical FOV in radians) of scene view ``i``."""
        c2w = self.cameras.c2w[i].double().numpy()
        fy = float(self.cameras.Ks[i, 1, 1])
        fov = 2.0 * np.arctan(self.cameras.height / (2.0 * fy))
        fwd = c2w[:3, 2]
        depth = float(np.median((self.means - c2w[:3, 3]) @ fwd))
        return c2w, c2w[:3, 3] + fwd * max(depth, 1e-3), fov

    @torch.no_grad()
    def render_camera(self, wxyz: np.ndarray, position: np.ndarray, fov: float, aspect: float,
                      width: int = 640) -> np.ndarray:
        """The exact view-dependent Scaffold render of a viewer camera.

        Args:
            wxyz: [4] camera orientation (OpenCV axes: +z forward, -y up), as viser gives it.
            position: [3] camera centre. fov: vertical field of view, radians.
            aspect: width / height. width: image width in pixels.

        Returns:
            [H, W, 3] uint8 (black background).
        """
        from instgs.core.cameras import Cameras
        from instgs.render import render

        height = max(int(round(width / max(aspect, 1e-6))), 1)
        c2w = np.eye(4)
        c2w[:3, :3] = rotation_matrices(np.asarray(wxyz, np.float64)[None])[0]
        c2w[:3, 3] = position
        f = height / (2.0 * np.tan(fov / 2.0))
        K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)
        vm = torch.from_numpy(np.linalg.inv(c2w)).float()[None]
        cam = Cameras(vm, K[None], width, height)
        model = self.run.model
        ng = model.decode(vm[0], K, width, height, image_id=None)
        img = render(ng.gaussians, cam).rgb[0].clamp(0, 1).numpy()
        return (img * 255 + 0.5).astype(np.uint8)

    def up_direction(self) -> np.ndarray:
        """World up: the mean of the training cameras' up vectors (-y in OpenCV)."""
        up = -self.cameras.c2w[self.train_ids, :3, 1].double().mean(0).numpy()
        return up / max(np.linalg.norm(up), 1e-12)
