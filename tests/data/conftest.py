"""Builders of tiny on-disk scenes in every supported layout (written into tmp_path).

All builders take the same ground truth: OpenCV camera-to-world matrices ``c2w`` [C, 4, 4],
one pinhole ``K`` [3, 3] for images of ``size`` (w, h), and world points [P, 3]; they then
write that truth in each format's own convention, so the readers can be checked against it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData, PlyElement


def look_at_opencv(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV c2w [4, 4] of a camera at ``eye`` looking at ``target`` (y down ~ -up)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


class Truth:
    """Ground-truth cameras + points for a tiny scene."""

    def __init__(self, n: int = 10, size=(40, 30), n_points: int = 200, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.size = size
        w, h = size
        self.K = np.array([[w * 1.0, 0, w / 2], [0, w * 1.0, h / 2], [0, 0, 1]])
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        self.c2w = np.stack([look_at_opencv((4 * np.cos(a), 4 * np.sin(a), 1.0 + 0.1 * i))
                             for i, a in enumerate(ang)])
        self.points = rng.uniform(-1, 1, (n_points, 3))
        self.colors = rng.integers(0, 256, (n_points, 3)).astype(np.uint8)
        self.names = [f"frame_{i:03d}.png" for i in range(n)]

    def image(self, i: int, size=None) -> Image.Image:
        """A deterministic image whose 2x2 blocks are constant (exact under BOX downscale)."""
        w, h = size or self.size
        rng = np.random.default_rng(100 + i)
        small = rng.integers(0, 256, ((h + 1) // 2, (w + 1) // 2, 3)).astype(np.uint8)
        big = small.repeat(2, 0).repeat(2, 1)[:h, :w]
        return Image.fromarray(big)


def _rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


def write_images(folder: Path, truth: Truth, size=None, names=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names or truth.names):
        truth.image(i, size).save(folder / name)


def write_colmap(root: Path, truth: Truth, model: str = "PINHOLE", params=None,
                 nan_image: int | None = None) -> Path:
    """COLMAP text model in root/sparse/0 + root/images."""
    sp = root / "sparse" / "0"
    sp.mkdir(parents=True, exist_ok=True)
    w, h = truth.size
    K = truth.K
    if params is None:
        params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
    pstr = " ".join(repr(float(v)) for v in params)
    (sp / "cameras.txt").write_text(f"1 {model} {w} {h} {pstr}\n")
    lines = []
    for i, (T, name) in enumerate(zip(truth.c2w, truth.names)):
        w2c = np.linalg.inv(T)
        q = _rotmat_to_qvec(w2c[:3, :3])
        t = w2c[:3, 3]
        if i == nan_image:
            t = np.array([np.nan, 0, 0])
        qt = " ".join(repr(float(v)) for v in (*q, *t))
        lines.append(f"{i + 1} {qt} 1 {name}\n\n")
    (sp / "images.txt").write_text("".join(lines))
    pts = [f"{j + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {c[0]} {c[1]} {c[2]} 0.5\n"
           for j, (p, c) in enumerate(zip(truth.points, truth.colors))]
    (sp / "points3D.txt").write_text("".join(pts))
    if nan_image is not None:  # text cannot hold NaN: binary model
        for f in ("cameras.txt", "images.txt", "points3D.txt"):
            (sp / f).unlink()
        _write_images_bin(sp / "images.bin", truth, nan_image)
        (sp / "cameras.bin").write_bytes(struct.pack("<QIiQQ4d", 1, 1, 1, w, h, *params[:4]))
        write_points3d_bin(sp / "points3D.bin", truth.points, truth.colors, track=False)
    write_images(root / "images", truth)
    return root


def _write_images_bin(path: Path, truth: Truth, nan_image: int) -> None:
    """COLMAP images.bin (no 2D points); image ``nan_image`` gets a NaN translation."""
    buf = bytearray(struct.pack("<Q", len(truth.names)))
    for i, (T, name) in enumerate(zip(truth.c2w, truth.names)):
        w2c = np.linalg.inv(T)
        t = w2c[:3, 3] if i != nan_image else np.array([np.nan, 0.0, 0.0])
        buf += struct.pack("<I4d3dI", i + 1, *_rotmat_to_qvec(w2c[:3, :3]), *t, 1)
        buf += name.encode() + b"\0" + struct.pack("<Q", 0)
    path.write_bytes(bytes(buf))


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    dt = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colors is not None:
        dt += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    arr = np.empty(len(points), dtype=dt)
    arr["x"], arr["y"], arr["z"] = points.T
    if colors is not None:
        arr["red"], arr["green"], arr["blue"] = colors.T
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
    return path


def nerf_frames(truth: Truth, prefix: str, opengl: bool, ids=None, ext: bool = True):
    flip = np.diag([1.0, -1, -1, 1]) if opengl else np.eye(4)
    out = []
    for i in (range(len(truth.names)) if ids is None else ids):
        stem = truth.names[i] if ext else Path(truth.names[i]).stem
        out.append({"file_path": f"{prefix}{stem}",
                    "transform_matrix": (truth.c2w[i] @ flip).tolist()})
    return out


def write_nerf(root: Path, truth: Truth, opengl: bool = True, split: bool = False,
               ext: bool = True, **extra) -> Path:
    """instant-ngp style transforms.json (or transforms_{train,test}.json) + images/."""
    w, h = truth.size
    K = truth.K
    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "w": w, "h": h,
            "aabb_scale": 4, **extra}
    write_images(root / "images", truth)
    n = len(truth.names)
    if split:
        test = [i for i in range(n) if i % 3 == 0]
        train = [i for i in range(n) if i % 3 != 0]
        for name, ids in (("train", train), ("test", test)):
            (root / f"transforms_{name}.json").write_text(json.dumps(
                {**meta, "frames": nerf_frames(truth, "images/", opengl, ids, ext)}))
    else:
        (root / "transforms.json").write_text(json.dumps(
            {**meta, "frames": nerf_frames(truth, "images/", opengl, None, ext)}))
    return root


def write_llff(root: Path, truth: Truth, factor: int = 2) -> Path:
    """poses_bounds.npy at full size truth.size * factor, images_<factor>/ at truth.size."""
    w, h = truth.size
    rows = []
    for T in truth.c2w:
        # OpenCV [right, down, forward] -> LLFF [down, right, back]
        R = np.stack([T[:3, 1], T[:3, 0], -T[:3, 2]], axis=1)
        block = np.concatenate([R, T[:3, 3:4], np.array([[h * factor], [w * factor],
                                                         [truth.K[0, 0] * factor]])], 1)
        rows.append(np.concatenate([block.reshape(-1), [1.0, 10.0]]))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    write_images(root / f"images_{factor}", truth,
                 names=[f"IMG_{i:04d}.png" for i in range(len(truth.names))])
    return root


def write_points3d_bin(path: Path, points: np.ndarray, colors: np.ndarray,
                       track: bool = True) -> Path:
    """COLMAP points3D.bin with a 2-element track per point (or empty tracks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = bytearray(struct.pack("<Q", len(points)))
    for j, (p, c) in enumerate(zip(points, colors)):
        buf += struct.pack("<Q3d3BdQ", j + 1, *map(float, p), *map(int, c), 0.5, 2 * track)
        if track:
            buf += struct.pack("<IIII", 1, j, 2, j)
    path.write_bytes(bytes(buf))
    return path


def write_scannet(root: Path, truth: Truth, opengl: bool = True, with_test: bool = True):
    """OpenGaussian ScanNet layout: color/<stem>.jpg, transforms_{train,test}.json, points3d.ply."""
    w, h = truth.size
    K = truth.K
    names = [f"{i:05d}.jpg" for i in range(len(truth.names))]
    write_images(root / "color", truth, names=names)
    t2 = Truth.__new__(Truth)
    t2.__dict__.update(truth.__dict__)
    t2.names = names
    meta = {"w": w, "h": h, "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}
    n = len(names)
    test = [i for i in range(n) if i % 4 == 3] if with_test else []
    train = [i for i in range(n) if i not in test]
    (root / "transforms_train.json").write_text(json.dumps(
        {**meta, "frames": nerf_frames(t2, "color/", opengl, train, ext=False)}))
    if with_test:
        (root / "transforms_test.json").write_text(json.dumps(
            {**meta, "frames": nerf_frames(t2, "color/", opengl, test, ext=False)}))
    write_ply(root / "points3d.ply", truth.points, truth.colors)
    return root


@pytest.fixture
def truth() -> Truth:
    return Truth()


@pytest.fixture
def build():
    """The builders above as one namespace (conftest modules are not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(Truth=Truth, look_at_opencv=look_at_opencv, write_images=write_images,
                           colmap=write_colmap, nerf=write_nerf, llff=write_llff,
                           scannet=write_scannet, ply=write_ply,
                           points3d_bin=write_points3d_bin)
