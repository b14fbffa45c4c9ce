"""File writers of the synthetic scene: PLY points, ``transforms*.json``, JSON dumps,
``SHA256SUMS`` and the scene README."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import intrinsics
from .scene import TABLE_TOP, SyntheticScene


@dataclass
class _View:
    stem: str
    split: str
    index: int
    c2w: np.ndarray                  # [4, 4] OpenCV camera-to-world
    stats: dict = field(default_factory=dict)


def _write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    v = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                  ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["y"], v["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    v["red"], v["green"], v["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    PlyData([PlyElement.describe(v, "vertex")], text=False).write(str(path))


def _opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    M = np.array(c2w, np.float64).copy()
    M[:3, 1:3] *= -1.0
    return M


def _transforms_json(width: int, height: int, views: list[_View], convention: str) -> dict:
    fx, fy, cx, cy = intrinsics(width, height)
    doc = {
        "w": width, "h": height, "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy,
        "camera_convention": (
            "OpenGL/Blender camera axes: x right, y up, z back (camera looks along -z)"
            if convention == "opengl" else
            "OpenCV/COLMAP camera axes: x right, y down, z forward"),
        "transform_matrix_is": "camera-to-world, world = synthetic table scene (metres, z up)",
        "frames": [],
    }
    for v in views:
        M = v.c2w if convention == "opencv" else _opencv_to_opengl(v.c2w)
        doc["frames"].append({
            "file_path": f"color/{v.stem}",
            "transform_matrix": [[float(x) for x in row] for row in M],
            "valid_fraction": round(v.stats["valid_fraction"], 4),
            "median_depth": round(v.stats["median_depth"], 4),
        })
    return doc


def _dump(path: Path, obj, compact: bool = False) -> None:
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=1)


def _write_checksums(scene_dir: Path) -> None:
    lines = []
    for r, _, fs in sorted(os.walk(scene_dir)):
        for f in sorted(fs):
            p = Path(r) / f
            rel = p.relative_to(scene_dir).as_posix()
            if rel in ("SHA256SUMS", "scene_complete.json"):
                continue
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}")
    (scene_dir / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _readme(params: dict, scene: SyntheticScene, stats: dict) -> str:
    objs = ", ".join(f"{i.inst}: {i.cls} ({i.texture['kind']})" for i in scene.instances)
    args = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "format_version")
    return f"""# Synthetic table scene (instgs embedded default scene)

**Not a real capture.** Ray-cast renders of a procedural scene made by
`instgs.data.synthetic.make_synthetic_scene({args})`. The per-mask features are an
ORACLE stand-in for CLIP image features: normalise(text[class] + Gaussian noise), where
text[class] is a deterministic random unit vector per class name (`text_features.json`),
not a CLIP embedding.

Layout: as written by `shared/tools/render_scannet_views.py` (OpenGaussian ScanNet-like):
`color/<stem>.{params['image_format']}`, `transforms_{{train,test}}.json` (OpenGL/Blender c2w,
fl_x/fl_y/cx/cy/w/h; `_opencv` variants with OpenCV axes), `points3d.ply` (surface samples,
x,y,z float32 + red,green,blue uchar), `gt/` (per-vertex instance/NYU40 ids, per-pixel
instance/semantic/valid PNGs), `language_features/` (LangSplat `_s.npy` int16 [4,H,W],
`_f.npy` float16 [M,512]), `language_features_clean/` (GT instance masks, noiseless rows).

Instances: {objs}. World: metres, z up, floor at z = 0, table top at z = {TABLE_TOP[1]}.
Intrinsics: fl_x = fl_y = 1170 * w / 1296, principal point at the image centre; a point
projects to pixel (floor(fx X/Z + cx), floor(fy Y/Z + cy)) in OpenCV camera coordinates.
Points: {stats['n_vertices']} ({stats['vertices_per_instance']} per instance), each seen by
at least one train view (exact ray test).

Mask levels (0 default = medium, 1 small, 2 medium, 3 large; ids cumulative in that order,
sorted by area within a level): large = instances; medium = floor halves, table top / legs,
object lower / upper halves; small = floor and table-top quadrants, each leg, object
quarters. Parts are cut in 3D, so they agree across views. Masks under
{params['min_mask_px']} px are dropped; mask_noise = {params['mask_noise']}.
"""
