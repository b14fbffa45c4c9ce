"""Benchmark: native CPU rasterizer vs the dense PyTorch reference, forward + backward.

Scene: N random Gaussians (default 50k) inside the frustum of one 504x378 pinhole camera
(fx = fy = 420 px), depths 2-8 m, scales chosen so the projected 3-sigma radii are
log-uniform in ~1-30 px (largest axis; the others 0.3-1x of it), random rotations,
opacities sigmoid(N(0, 1.5)), random colours, plus a
6-d feature channel (as InstanceGaussian renders). Loss = L1(rgb) + L1(depth) + L2(features),
so the backward touches every channel.

* cpu: ``render(..., backend="cpu")`` forward + backward, median over ``--iters`` after
  ``--warmup`` iterations, with ``torch.set_num_threads(--threads)``.
* torch reference: the dense reference costs O(pixels x Gaussians), so a full 504x378 image
  (190k x 50k pairs) cannot be held in memory at once; it is timed on ``--ref-pixels``
  randomly chosen pixels of the *same* image, in the same chunks the reference uses, and
  scaled linearly to the full image (the per-pixel cost is the same for every pixel: every
  pixel is composited against every visible Gaussian), plus the shared projection time.

* gsplat (``--gsplat``, needs CUDA): the same scene, loss and timing on
  ``render(..., backend="gsplat")`` with the tensors on the GPU, synchronised before every
  clock read (``--gpu-iters`` timed iterations after ``--gpu-warmup``; the first call also
  builds nothing, gsplat's ops are loaded before the clock starts).

Usage:
    python benchmarks/bench_cpu_rasterizer.py --out bench.json [--gaussians 50000] [--gsplat]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from instgs.core.cameras import Cameras
from instgs.core.gaussians import Gaussians


def make_scene(n: int, width: int, height: int, seed: int = 0):
    """Random Gaussians in front of one camera; returns (Gaussians, Cameras, features)."""
    g = torch.Generator().manual_seed(seed)
    f = 420.0
    z = torch.empty(n).uniform_(2.0, 8.0, generator=g)
    u = torch.empty(n).uniform_(-0.05, 1.05, generator=g) * width
    v = torch.empty(n).uniform_(-0.05, 1.05, generator=g) * height
    means = torch.stack([(u - width / 2) * z / f, (v - height / 2) * z / f, z], -1)
    # radius_px ~ 3 sigma f / z  ->  sigma = r z / (3 f): the largest axis has a
    # log-uniform radius r in [1, 30] px, the other axes 0.3-1x of it (anisotropic splats).
    r = torch.exp(torch.empty(n, 1).uniform_(math.log(1.0), math.log(30.0), generator=g))
    aspect = torch.empty(n, 3).uniform_(0.3, 1.0, generator=g)
    aspect[:, 0] = 1.0
    scales = r * aspect * z[:, None] / (3 * f)
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.sigmoid(1.5 * torch.randn(n, generator=g))
    colors = torch.rand(n, 3, generator=g)
    features = torch.randn(n, 6, generator=g)
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    cams = Cameras(torch.eye(4)[None], K[None], width, height)
    return Gaussians(means, quats, scales, opacities, colors), cams, features


def _leaf_inputs(gs: Gaussians, feats: torch.Tensor):
    params = [t.clone().requires_grad_(True) for t in
              (gs.means, gs.quats, gs.scales, gs.opacities, gs.colors)]
    return Gaussians(*params), feats.clone().requires_grad_(True), params


def _timed_iterations(gs, cams, feats, backend: str, iters: int, warmup: int):
    """Forward + backward of ``render(..., backend)`` with the benchmark loss; on CUDA the
    clock reads are synchronised. Returns (wall s, forward s, process CPU s) per timed
    iteration and the last RenderOutput."""
    from instgs.render import render

    dev = gs.means.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g, f, params = _leaf_inputs(gs, feats)
    target = torch.rand(1, cams.height, cams.width, 3, device=dev)
    times, fwd, cpu = [], [], []
    for it in range(warmup + iters):
        for p in params + [f]:
            p.grad = None
        sync()
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = render(g, cams, features=f, backend=backend)
        sync()
        t1 = time.perf_counter()
        loss = ((out.rgb - target).abs().mean() + out.depth.abs().mean()
                + (out.features ** 2).mean())
        loss.backward()
        sync()
        t2 = time.perf_counter()
        if it >= warmup:
            times.append(t2 - t0)
            fwd.append(t1 - t0)
            cpu.append(time.process_time() - c0)
    return times, fwd, cpu, out


def time_cpu(gs, cams, feats, iters: int, warmup: int) -> tuple[float, list[float], dict]:
    """The ``cpu`` backend: (median s/iter, the times, statistics of the scene and timing)."""
    times, fwd, cpu, out = _timed_iterations(gs, cams, feats, "cpu", iters, warmup)
    stats = {"visible": int((out.radii > 0).sum()),
             "mean_radius_px": float(out.radii[out.radii > 0].float().mean()),
             "mean_alpha": float(out.alpha.detach().mean()),
             "forward_median_s": statistics.median(fwd), "min_s": min(times),
             # CPU seconds of all threads per iteration: on an idle machine the wall time
             # is about this divided by the thread count; on a shared one it also holds
             # waiting.
             "process_cpu_median_s": statistics.median(cpu)}
    return statistics.median(times), times, stats


def time_gsplat(gs, cams, feats, iters: int, warmup: int) -> dict:
    """gsplat forward + backward on CUDA with the loss of :func:`time_cpu` (seconds/iter)."""
    dev = torch.device("cuda")
    gs = Gaussians(*(getattr(gs, f).to(dev) for f in
                     ("means", "quats", "scales", "opacities", "colors")))
    times, fwd, _, out = _timed_iterations(gs, cams.to(dev), feats.to(dev), "gsplat", iters,
                                           warmup)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "forward_median_s": statistics.median(fwd), "times_s": times,
            "visible": int((out.radii > 0).sum()), "device": torch.cuda.get_device_name(),
            "iters": iters}


def time_reference(gs, cams, feats, ref_pixels: int, seed: int = 0) -> dict:
    """Dense reference forward+backward on a pixel subset of the same image, scaled up."""
    from instgs.render._torch_ref import _composite
    from instgs.render.projection import project

    g, f, params = _leaf_inputs(gs, feats)
    W, H = cams.width, cams.height
    t0 = time.perf_counter()
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, W, H)
    t_proj = time.perf_counter() - t0
    ids = torch.nonzero(proj.valid[0]).squeeze(1)
    ids = ids[torch.sort(proj.depths[0, ids].detach(), stable=True).indices]
    colors = torch.cat([g.colors, f, proj.depths[0][:, None]], -1)
    args = (proj.means2d[0, ids], proj.conics[0, ids], g.opacities[ids], colors[ids])
    gen = torch.Generator().manual_seed(seed)
    sel = torch.randperm(W * H, generator=gen)[:ref_pixels]
    pix = torch.stack([sel % W, sel // W], -1).float() + 0.5
    chunk = max(1, 4_000_000 // max(1, len(ids)))  # rasterize_dense's default chunking
    t0 = time.perf_counter()
    for p0 in range(0, pix.shape[0], chunk):
        r, T, _ = _composite(pix[p0:p0 + chunk], *args)
        (r.sum() + T.sum()).backward(retain_graph=True)
    t_pix = time.perf_counter() - t0
    per_pixel = t_pix / pix.shape[0]
    return {"projection_s": t_proj, "timed_pixels": int(pix.shape[0]),
            "timed_pixels_s": t_pix, "visible_gaussians": int(len(ids)),
            "chunk_pixels": chunk, "estimated_full_image_s": t_proj + per_pixel * W * H}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=50_000)
    ap.add_argument("--width", type=int, default=504)
    ap.add_argument("--height", type=int, default=378)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-pixels", type=int, default=2048)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--gsplat", action="store_true", help="also time gsplat on CUDA")
    ap.add_argument("--gpu-iters", type=int, default=50)
    ap.add_argument("--gpu-warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from instgs._native import cpu_ops

    cpu_ops()  # compile outside the timed region
    gs, cams, feats = make_scene(args.gaussians, args.width, args.height)
    med, times, stats = time_cpu(gs, cams, feats, args.iters, args.warmup)
    result = {
        "gaussians": args.gaussians, "width": args.width, "height": args.height,
        "threads": args.threads, "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "machine": platform.processor()
        or platform.machine(), "cpu_median_s": med, "cpu_times_s": times, **stats,
    }
    print(f"cpu backend: {med:.4f} s/iter forward+backward (median of {args.iters}, min "
          f"{stats['min_s']:.4f}; forward {stats['forward_median_s']:.4f} s; process CPU "
          f"{stats['process_cpu_median_s']:.4f} s/iter), {stats['visible']} visible Gaussians, "
          f"mean 3-sigma radius {stats['mean_radius_px']:.1f} px, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.gsplat:
        gpu = time_gsplat(gs, cams, feats, args.gpu_iters, args.gpu_warmup)
        result["gsplat"] = gpu
        result["gsplat_speedup_over_cpu"] = med / gpu["median_s"]
        print(f"gsplat backend: {gpu['median_s'] * 1e3:.2f} ms/iter forward+backward (median of "
              f"{args.gpu_iters}, forward {gpu['forward_median_s'] * 1e3:.2f} ms) on "
              f"{gpu['device']}; {result['gsplat_speedup_over_cpu']:.0f}x the cpu backend here")
    if not args.skip_reference:
        ref = time_reference(gs, cams, feats, args.ref_pixels)
        result["torch_reference"] = ref
        result["speedup"] = ref["estimated_full_image_s"] / med
        print(f"torch reference: {ref['estimated_full_image_s']:.1f} s/iter estimated "
              f"({ref['timed_pixels']} pixels timed in {ref['timed_pixels_s']:.2f} s, scaled "
              f"to {args.width * args.height}); speed-up {result['speedup']:.0f}x")
    if args.out is not None:
        from instgs.core.artifacts import write_json

        write_json(args.out, result)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
