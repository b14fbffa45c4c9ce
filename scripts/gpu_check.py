#!/usr/bin/env python
"""The CUDA path, run and measured on one NVIDIA GPU (``scripts/gpu_check.sh`` drives it).

Every step merges its figures into ``OUT/gpu_check.json`` (written atomically after each
step, so a run cut short still returns what it measured) and logs its failures there rather
than stopping: one broken step must not cost the others their GPU time.

Steps (``all`` runs them in this order, each within what is left of ``--budget-s``):

* ``build``: builds gsplat's CUDA ops as the module ``gsplat.csrc`` (what gsplat's own
  ``setup.py`` builds; gsplat then imports it instead of JIT-compiling ``gsplat_cuda``) with
  gsplat 1.5.3's JIT flags, for the GPU's architecture only, and times it. ``--gsplat-so``
  installs a build from an earlier run instead.
* ``tests``: ``pytest -m gpu`` (the gsplat backend against the CPU kernel, gradients, CUDA
  training then CPU stages).
* ``parity``: gsplat vs the C++ CPU backend on a held-out LLFF fern view (504x378) from the
  same Gaussians (fern's SfM points, 3DGS-style scales): PSNR of rgb / alpha / depth /
  16-d features, top-contributor agreement, relative error of every gradient; and a picture.
* ``bench``: ``benchmarks/bench_cpu_rasterizer.py --gsplat`` (50k Gaussians, 504x378,
  forward + backward) on gsplat and on this machine's CPU.
* ``scannet``: ``instgs train --preset scannet --steps 5000 --device cuda`` on the rendered
  ScanNet scene0000_00, then ``segment``, ``language`` and ``eval scannet``.
* ``fern``: ``instgs train`` on fern ``images_8`` (``--format llff``), 7000 steps, then the
  parity check again on the trained model's Gaussians of a held-out view.

Training steps get ``--max-minutes`` from the budget left (held-out PSNR is then at the step
reached; steps per second and the extrapolated full-length time are reported).

Usage:
    python scripts/gpu_check.py all --out OUT --data DATA [--budget-s 540]
    python scripts/gpu_check.py parity,bench --out OUT --data DATA
DATA holds ``llff-fern/``, ``scannet/scene0000_00/`` (``tools/render_scannet_views.py
--views 80 --width 320 --height 240``) and ``text_features.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing instgs
    sys.path.insert(0, str(REPO))
# --dry-run: the whole script on the CPU (C++ kernel vs the torch reference, a few training
# steps, no gsplat build), to test every part of it before GPU time is spent on it
DRY = {"on": False}
WORK = {"dir": Path("gpu_check_work")}  # runs, the gsplat build folder, the benchmark's JSON
STEPS = ("build", "tests", "parity", "bench", "scannet", "fern")
# seconds each step needs at least to be worth starting (training also needs its stages)
MIN_SECONDS = {"build": 60, "tests": 30, "parity": 15, "bench": 15, "scannet": 150,
               "fern": 90}


class Report:
    """``OUT/gpu_check.json``: figures per step, rewritten atomically after each change."""

    def __init__(self, out: Path):
        self.path = out / "gpu_check.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def put(self, step: str, **figures) -> None:
        self.data.setdefault(step, {}).update(figures)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain))
        tmp.replace(self.path)


def _plain(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x))


# ---------------------------------------------------------------------------------- build
def gsplat_package_dir() -> Path:
    """Folder of the installed gsplat package (found without importing its CUDA backend)."""
    import importlib.util

    spec = importlib.util.find_spec("gsplat")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gsplat is not installed: pip install gsplat==1.5.3")
    return Path(list(spec.submodule_search_locations)[0])


def compile_gsplat(build_dir: Path) -> Path:
    """Compile gsplat 1.5.3's sources as the extension ``csrc`` into ``build_dir`` with its JIT
    flags (``gsplat/cuda/_backend.py``); returns the .so. Runs in a child process: importing
    the fresh module here and again as ``gsplat.csrc`` would register its pybind11 types twice.
    """
    from torch.utils.cpp_extension import load

    cuda = gsplat_package_dir() / "cuda"
    build_dir.mkdir(parents=True, exist_ok=True)
    flags = ["-O3"] + ([] if os.environ.get("NO_FAST_MATH") == "1" else ["-use_fast_math"])
    load(name="csrc", build_directory=str(build_dir), verbose=False,
         sources=sorted(glob.glob(str(cuda / "csrc" / "*.cu")))
         + sorted(glob.glob(str(cuda / "csrc" / "*.cpp"))) + [str(cuda / "ext.cpp")],
         extra_include_paths=[str(cuda / "include"), str(cuda / "csrc/third_party/glm")],
         extra_cflags=["-O3", "-Wno-attributes"], extra_cuda_cflags=flags)
    return build_dir / "csrc.so"


def build_gsplat(out: Path, prebuilt: Path | None, timeout: float) -> dict:
    """Build (or install) ``gsplat/csrc.so`` and import it; returns figures incl. seconds."""
    pkg = gsplat_package_dir()
    target = pkg / "csrc.so"
    fig = {"gsplat_dir": str(pkg), "torch": torch.__version__, "cuda": torch.version.cuda,
           "arch": os.environ.get("TORCH_CUDA_ARCH_LIST"), "max_jobs": os.environ.get("MAX_JOBS")}
    if prebuilt is not None:
        shutil.copyfile(prebuilt, target)
        fig.update(prebuilt=str(prebuilt), build_s=0.0)
    elif not target.is_file():
        t0 = time.time()
        build_dir = WORK["dir"] / "gsplat_build"
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); import gpu_check; "
                f"gpu_check.compile_gsplat(gpu_check.Path({str(build_dir)!r}))")
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                           text=True, timeout=timeout, env=_env())
        _append_log(out, "gsplat build", p.stdout + p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f"gsplat build failed (rc {p.returncode}): "
                               f"{(p.stdout + p.stderr)[-3000:]}")
        shutil.copyfile(build_dir / "csrc.so", target)
        fig["build_s"] = round(time.time() - t0, 1)
    from gsplat.cuda._backend import _C  # must now import the built module

    if _C is None:
        raise RuntimeError("gsplat.cuda._backend._C is None after the build")
    fig["so_bytes"] = target.stat().st_size
    packed = out / "gsplat_csrc.so.gz"
    if prebuilt is None and not packed.exists():
        import gzip

        with open(target, "rb") as f, gzip.open(packed, "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g)
        fig["packed_bytes"] = packed.stat().st_size
    return fig


# ---------------------------------------------------------------------------------- tests
def run_gpu_tests(out: Path, timeout: float) -> dict:
    """``pytest -m gpu``; returns the summary line, counts and the failing tests."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-rfE", "-p", "no:cacheprovider",
           "--continue-on-collection-errors",
           "tests"]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                       env=_env())
    text = p.stdout + p.stderr
    _append_log(out, "pytest -m gpu", text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return {"returncode": p.returncode, "summary": lines[-1] if lines else "",
            "failed": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))],
            "seconds": round(time.time() - t0, 1)}


def _env() -> dict:
    """The environment of the subprocesses: this checkout importable without installing."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def _append_log(out: Path, title: str, text: str) -> None:
    with open(out / "gpu_check.log", "a") as f:
        f.write(f"\n===== {title} =====\n{text[-20000:]}\n")


# --------------------------------------------------------------------------------- parity
def _psnr(a: torch.Tensor, b: torch.Tensor, peak: float) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def fern_gaussians(fern: Path, max_points: int, feat_dim: int = 16, seed: int = 0):
    """Gaussians from fern's SfM points (3DGS init: isotropic scale sqrt of the mean squared
    distance to 3 neighbours, here x U(0.5, 1.5) per axis), random rotations, opacities in
    [0.05, 0.95] (gsplat clamps alpha at 0.999, instgs at 0.99), the points' colours and
    random features; and the first held-out camera at 504x378."""
    from instgs.core.gaussians import Gaussians
    from instgs.data import read_scene
    from instgs.model.scaffold import knn_mean_sq_dist

    scene = read_scene(fern, format="llff", downscale=8)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(scene.points), generator=g)[:max_points]
    means = scene.points[idx].float()
    n = len(means)
    scales = knn_mean_sq_dist(means).sqrt()[:, None] * torch.empty(n, 3).uniform_(
        0.5, 1.5, generator=g)
    gs = Gaussians(means, torch.randn(n, 4, generator=g), scales,
                   torch.empty(n).uniform_(0.05, 0.95, generator=g),
                   scene.points_rgb[idx].float())
    feats = torch.randn(n, feat_dim, generator=g)
    return gs, scene.cameras[scene.test_ids[0]], feats


def compare_backends(gs, cam, feats, picture: Path | None = None) -> dict:
    """Render ``gs`` with the cpu and gsplat backends, compare outputs and gradients."""
    from instgs.core.gaussians import Gaussians
    from instgs.render import render

    fields = ("means", "quats", "scales", "opacities", "colors")
    g = torch.Generator().manual_seed(1)
    H, W = cam.height, cam.width
    w = {k: torch.randn(1, H, W, c, generator=g) for k, c in
         (("rgb", 3), ("alpha", 1), ("depth", 1), ("features", feats.shape[1]))}
    bg = torch.rand(1, 3, generator=g)
    res, grads, outs = {}, {}, {}
    other = ("torch", "cpu") if DRY["on"] else ("gsplat", "cuda")
    for backend, dev in (("cpu", "cpu"), other):
        params = [getattr(gs, f).detach().to(dev).requires_grad_(True) for f in fields]
        f = feats.detach().to(dev).requires_grad_(True)
        t0 = time.perf_counter()
        out = render(Gaussians(*params), cam.to(dev), features=f, backgrounds=bg.to(dev),
                     return_top_ids=True, backend=backend)
        dmax = float(out.depth.detach().max())
        loss = sum((getattr(out, k) * w[k].to(dev)).sum() for k in ("rgb", "alpha", "features"))
        loss = loss + (out.depth * w["depth"].to(dev)).sum() / max(dmax, 1e-6)
        loss.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        res[f"{backend}_forward_backward_s"] = round(time.perf_counter() - t0, 4)
        outs[backend] = {k: getattr(out, k).detach().cpu() for k in
                         ("rgb", "alpha", "depth", "features", "top_ids", "radii")}
        grads[backend] = {**{k: p.grad.detach().cpu() for k, p in zip(fields, params)},
                          "features": f.grad.detach().cpu()}
    a, b = outs[other[0]], outs["cpu"]
    res["psnr_db"] = {
        "rgb": _psnr(a["rgb"], b["rgb"], 1.0), "alpha": _psnr(a["alpha"], b["alpha"], 1.0),
        "depth": _psnr(a["depth"], b["depth"], float(b["depth"].max())),
        "features": _psnr(a["features"], b["features"], float(b["features"].abs().max()))}
    hit = (a["top_ids"] >= 0) | (b["top_ids"] >= 0)
    res["top_ids_agree"] = float((a["top_ids"] == b["top_ids"])[hit].float().mean())
    res["visible"] = {"cpu": int((b["radii"] > 0).sum()), other[0]: int((a["radii"] > 0).sum())}
    res["grad_rel_err"], res["grad_cosine"] = {}, {}
    for k in grads["cpu"]:
        x, y = grads[other[0]][k].flatten().double(), grads["cpu"][k].flatten().double()
        res["grad_rel_err"][k] = float((x - y).norm() / y.norm().clamp_min(1e-30))
        res["grad_cosine"][k] = float(x @ y / (x.norm() * y.norm()).clamp_min(1e-30))
    res["gaussians"], res["width"], res["height"] = len(gs), W, H
    res["pass_psnr_40"] = bool(min(res["psnr_db"].values()) >= 40)
    if picture is not None:
        _parity_picture(a, b, picture)
    return res


def _parity_picture(a: dict, b: dict, path: Path) -> None:
    """cpu rgb | gsplat rgb | |difference| x 50 | top-id disagreement (red)."""
    from PIL import Image

    def u8(x):
        return (x.clamp(0, 1).numpy() * 255).round().astype(np.uint8)

    diff = ((a["rgb"] - b["rgb"]).abs() * 50)[0]
    dis = torch.zeros_like(b["rgb"][0])
    dis[..., 0] = (a["top_ids"][0] != b["top_ids"][0]).float()
    panels = [u8(b["rgb"][0]), u8(a["rgb"][0]), u8(diff), u8(dis)]
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)


def parity_on_fern(data: Path, out: Path) -> dict:
    gs, cam, feats = fern_gaussians(data / "llff-fern", 1500 if DRY["on"] else 50_000)
    return compare_backends(gs, cam, feats, out / "parity_fern.png")


def parity_on_run(run_dir: Path) -> dict:
    """The same comparison on a trained run's decoded Gaussians of its first held-out view
    (its instance features when it has them, else random 16-d ones)."""
    from instgs.core.gaussians import Gaussians
    from instgs.run import load_run

    run = load_run(run_dir, device=_device())
    i = run.scene.test_ids[0]
    with torch.no_grad():
        ng = run.decode(i)
    fields = ("means", "quats", "scales", "opacities", "colors")
    gs = Gaussians(*(getattr(ng.gaussians, f).detach().cpu().contiguous() for f in fields))
    g = torch.Generator().manual_seed(0)
    feats = (ng.ins_feat.detach().cpu() if ng.ins_feat is not None
             else torch.randn(len(gs), 16, generator=g))
    if DRY["on"]:  # the dense reference: a few thousand Gaussians only
        keep = torch.randperm(len(gs), generator=g)[:1500]
        gs, feats = Gaussians(*(getattr(gs, f)[keep] for f in fields)), feats[keep]
    return compare_backends(gs, run.scene.cameras[i], feats)


# ---------------------------------------------------------------------------------- bench
def bench(out: Path, timeout: float) -> dict:
    res = WORK["dir"] / "bench.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_cpu_rasterizer.py"),
           "--skip-reference", "--threads", str(os.cpu_count()), "--out", str(res)]
    if DRY["on"]:
        cmd += ["--gaussians", "5000", "--iters", "2"]
    else:
        cmd += ["--gsplat"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                       env=_env())
    _append_log(out, "bench", p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"benchmark failed (rc {p.returncode}): {p.stderr[-2000:]}")
    r = json.loads(res.read_text())
    r.pop("cpu_times_s", None)
    r.get("gsplat", {}).pop("times_s", None)
    return r


# ------------------------------------------------------------------------------- training
def instgs(args: list[str], out: Path, title: str, timeout: float) -> float:
    """Run ``python -m instgs.cli ARGS``; returns its wall seconds; raises on failure."""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "instgs.cli", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=max(timeout, 10), env=_env())
    _append_log(out, f"instgs {' '.join(args)}", p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"instgs {title} failed (rc {p.returncode}): "
                           f"{(p.stdout + p.stderr)[-3000:]}")
    return round(time.time() - t0, 1)


def _train_figures(run: Path, wall: float, steps: int) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    sps = m["step"] / max(m["wall_seconds"], 1e-9)
    return {"steps_done": m["step"], "steps_asked": steps, "train_loop_s": m["wall_seconds"],
            "command_wall_s": wall, "steps_per_s": round(sps, 2),
            "full_length_estimate_s": round(steps / sps, 1),
            "stopped_by_time_budget": m["stopped_by_time_budget"],
            "heldout_psnr": m.get("psnr"), "heldout_ssim": m.get("ssim"),
            "num_anchors": m.get("num_anchors")}


def train_scannet(data: Path, out: Path, left: float, report: Report, share: float) -> None:
    """ScanNet training gets ``share`` of the budget left after ~110 s for start-up, segment,
    language and eval (and ~45 s for fern's start-up when fern follows)."""
    sn, run = data / "scannet" / "scene0000_00", WORK["dir"] / "runs" / "scannet"
    steps = 40 if DRY["on"] else 5000
    minutes = max(0.5, (left - 110 - (45 if share < 1 else 0)) * share / 60)
    wall = instgs(["train", "--preset", "scannet", "--data", str(sn), "--steps", str(steps),
                   "--device", _device(), "--run-dir", str(run), "--max-minutes",
                   f"{minutes:.2f}", "--no-progress", "--overwrite"], out, "train", left)
    report.put("scannet", max_minutes=round(minutes, 2), **_train_figures(run, wall, steps))
    report.put("scannet", segment_s=instgs(["segment", str(run)], out, "segment", 300))
    report.put("scannet", language_s=instgs(["language", str(run)], out, "language", 300))
    tf = data / "text_features.json"
    report.put("scannet", eval_s=instgs(["eval", "scannet", str(run), "--gt", str(sn),
                                         "--text-features", str(tf)], out, "eval", 300))
    report.put("scannet", eval=json.loads((run / "eval_scannet.json").read_text()))


def train_fern(data: Path, out: Path, left: float, report: Report) -> None:
    run = WORK["dir"] / "runs" / "fern"
    steps = 40 if DRY["on"] else 7000
    minutes = max(0.5, (left - 45) / 60)
    wall = instgs(["train", "--data", str(data / "llff-fern"), "--format", "llff",
                   "--downscale", "8", "--steps", str(steps), "--device", _device(),
                   "--run-dir", str(run), "--max-minutes", f"{minutes:.2f}", "--no-progress",
                   "--overwrite"], out, "train", left)
    report.put("fern", max_minutes=round(minutes, 2), **_train_figures(run, wall, steps))
    report.put("fern", parity_trained=parity_on_run(run))


# ----------------------------------------------------------------------------------- main
def _device() -> str:
    return "cpu" if DRY["on"] else "cuda"


def run_step(step: str, a, report: Report, deadline: float) -> None:
    left = deadline - time.time()
    if left < MIN_SECONDS[step]:
        report.put(step, skipped=f"{left:.0f} s of the budget left")
        return
    t0 = time.time()
    report.data.pop(step, None)  # figures of an earlier try of this step go
    print(f"[gpu_check] {step} ({left:.0f} s left)", flush=True)
    try:
        if step == "build" and DRY["on"]:
            report.put(step, skipped="dry run")
        elif step == "build":
            report.put(step, **build_gsplat(a.out, a.gsplat_so, left))
        elif step == "tests":
            report.put(step, **run_gpu_tests(a.out, left))
        elif step == "parity":
            report.put(step, **parity_on_fern(a.data, a.out))
        elif step == "bench":
            report.put(step, **bench(a.out, left))
        elif step == "scannet":
            train_scannet(a.data, a.out, left, report, 0.5 if "fern" in a.step_list else 1.0)
        elif step == "fern":
            train_fern(a.data, a.out, left, report)
    except Exception as e:  # noqa: BLE001 - recorded; the next step still runs
        report.put(step, error=f"{type(e).__name__}: {e}"[-4000:],
                   traceback=traceback.format_exc()[-4000:])
    report.put(step, step_s=round(time.time() - t0, 1))
    print(f"[gpu_check] {step}: {json.dumps(report.data.get(step), default=_plain)[:1500]}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("steps", help=f"all, or some of {','.join(STEPS)} (comma-separated)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the runs and builds (default: OUT/../gpu_check_work)")
    ap.add_argument("--budget-s", type=float, default=3600.0)
    ap.add_argument("--started", type=float, default=None,
                    help="epoch seconds the budget counts from (default: now)")
    ap.add_argument("--gsplat-so", type=Path, default=None,
                    help="install this gsplat csrc .so (from an earlier run) instead of building")
    ap.add_argument("--dry-run", action="store_true",
                    help="rehearse on the CPU: torch reference instead of gsplat, 40 steps")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    DRY["on"] = a.dry_run
    WORK["dir"] = (a.work or a.out.parent / "gpu_check_work").resolve()
    WORK["dir"].mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available() and not a.dry_run:
        raise SystemExit("gpu_check needs a CUDA device (torch.cuda.is_available() is False)")
    report = Report(a.out)
    deadline = (a.started or time.time()) + a.budget_s
    report.put("machine", gpu=None if a.dry_run else torch.cuda.get_device_name(),
               torch=torch.__version__, cuda=torch.version.cuda,
               python=sys.version.split()[0], cpus=os.cpu_count(), budget_s=a.budget_s)
    steps = STEPS if a.steps == "all" else tuple(a.steps.split(","))
    unknown = [st for st in steps if st not in STEPS]
    if unknown:
        raise SystemExit(f"unknown step(s) {unknown}; choose from {', '.join(STEPS)}")
    a.step_list = steps
    for step in steps:
        run_step(step, a, report, deadline)


if __name__ == "__main__":
    main()
