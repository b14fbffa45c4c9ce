"""The public ``render`` entry point and its backend dispatch."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.core.checks import InputError, check_shape
from instgs.core.gaussians import Gaussians

from ._types import BackendUnavailableError, RenderOutput
from .projection import Projection, project

__all__ = ["render", "resolve_backend", "backend_for_device"]

Backend = Literal["auto", "cpu", "gsplat", "torch"]
_BACKENDS = ("auto", "cpu", "gsplat", "torch")
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ``render`` uses for ``backend`` and tensors on ``device``.

    ``auto``: gsplat for CUDA tensors, else the native CPU kernel if it compiles, else the
    torch reference (with one warning). May compile the CPU kernel on first use.

    Raises:
        InputError: unknown backend name.
    """
    if backend not in _BACKENDS:
        raise InputError(f"unknown render backend {backend!r}",
                         fix=f"use one of {', '.join(_BACKENDS)}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        from ._gsplat import gsplat_available

        if gsplat_available():
            return "gsplat"
        _warn_once("cuda", "gsplat with CUDA is unavailable; rendering with the slow "
                           "pure-PyTorch reference (backend='torch').")
        return "torch"
    from instgs._native import NativeOpsUnavailableError, cpu_ops

    try:
        cpu_ops()
        return "cpu"
    except NativeOpsUnavailableError as e:
        _warn_once("cpu", f"{e} Rendering with the slow pure-PyTorch reference "
                          "(backend='torch').")
    return "torch"


def backend_for_device(backend: str, device: torch.device | str) -> str:
    """``backend`` where it can render tensors on ``device``, else ``"auto"``.

    A run trained with ``--backend gsplat`` on a GPU is later loaded on the CPU by
    ``instgs segment`` / ``language`` (and one trained with ``--backend cpu`` may be loaded
    on CUDA): the device-bound backends ``gsplat`` (CUDA only) and ``cpu`` (CPU only) fall
    back to ``auto``, which picks the right one for the tensors; ``torch`` and ``auto`` run
    anywhere and are kept.

    Args:
        backend: "auto" | "cpu" | "gsplat" | "torch" (a run's ``cfg.backend``).
        device: where the Gaussians to render live.

    Returns:
        The backend name to pass to :func:`render`.

    Raises:
        InputError: unknown backend name.
    """
    if backend not in _BACKENDS:
        raise InputError(f"unknown render backend {backend!r}",
                         fix=f"use one of {', '.join(_BACKENDS)}")
    kind = torch.device(device).type
    if (backend == "gsplat" and kind != "cuda") or (backend == "cpu" and kind != "cpu"):
        return "auto"
    return backend


def render(gaussians: Gaussians, cameras: Cameras, *, features: Tensor | None = None,
           backgrounds: Tensor | None = None, return_top_ids: bool = False,
           near_plane: float = 0.01, eps2d: float = 0.3,
           backend: Backend = "auto") -> RenderOutput:
    """Render N 3D Gaussians into C pinhole images (3DGS / gsplat "classic" rasterization).

    Projection is EWA with a low-pass (Σ2D = J W Σ Wᵀ Jᵀ + eps2d I, Jacobian x/z, y/z
    clamped to 1.3x the field of view), alpha = min(0.99, o exp(-½ dᵀ Σ2D⁻¹ d)), alphas
    below 1/255 are skipped, Gaussians are composited front to back by camera z, and a pixel
    stops before the Gaussian that would bring its transmittance to <= 1e-4. See
    docs/rasterizer.md for the conventions and the backward pass.

    Args:
        gaussians: means [N, 3] (world, metres), quats [N, 4] (wxyz, any norm), scales
            [N, 3] (metres, > 0), opacities [N] in [0, 1], colors [N, 3] in [0, 1].
        cameras: viewmats [C, 4, 4] (world-to-camera, OpenCV axes), Ks [C, 3, 3] (pixels;
            pixel (u, v) has its centre at (u + 0.5, v + 0.5)), width, height.
        features: [N, D] extra channels composited like colours (e.g. 6-d instance
            features), or None.
        backgrounds: [C, 3] in [0, 1], added to rgb only as T_final * bg; None = black.
        return_top_ids: also return the per-pixel index of the Gaussian with the largest
            blending weight T * alpha.
        near_plane: Gaussians with camera z < near_plane are culled (metres).
        eps2d: low-pass variance added to Σ2D (pixels²).
        backend: "cpu" (native C++ kernel, compiled on first use), "gsplat" (CUDA),
            "torch" (dense pure-PyTorch reference, small inputs only) or "auto".

    Returns:
        RenderOutput with rgb [C,H,W,3], alpha [C,H,W,1], depth [C,H,W,1] (expected camera
        z, 0 where alpha == 0), features [C,H,W,D] or None (alpha-composited sum),
        top_ids [C,H,W] int64 or None (-1 = none), radii [C,N] int32 (0 = culled),
        means2d [C,N,2] (call ``.retain_grad()`` on it to get the screen-space gradient).
        Differentiable w.r.t. every Gaussians field, ``features`` and ``backgrounds``.

    Raises:
        ShapeError: an input disagrees with the shapes above.
        InputError: unknown backend, mixed devices, non-positive near_plane or negative eps2d.
        BackendUnavailableError: backend="gsplat" without gsplat/CUDA, or backend="cpu"
            when the native kernel cannot be compiled (or the tensors are on CUDA).

    References:
        Kerbl et al., 3D Gaussian Splatting, SIGGRAPH 2023; Ye et al., gsplat, 2024
        (v1.5.3 ``rasterization``); Zwicker et al., EWA Splatting, 2002.
    """
    _check_render_inputs(gaussians, cameras, features, backgrounds, near_plane, eps2d)
    device = gaussians.means.device
    backend = resolve_backend(backend, device)
    if backend == "gsplat":
        from ._gsplat import render_gsplat

        return render_gsplat(gaussians, cameras, features=features, backgrounds=backgrounds,
                             return_top_ids=return_top_ids, near_plane=near_plane,
                             eps2d=eps2d)
    if backend == "cpu" and device.type != "cpu":
        raise BackendUnavailableError(
            f"backend='cpu' needs CPU tensors, got {device}. Fix: use backend='gsplat' (or "
            "'auto') for CUDA tensors, or move the tensors to the CPU.")

    proj = _project(gaussians, cameras, backend, near_plane, eps2d)
    D = 0 if features is None else features.shape[1]
    colors, opacities, bg = _channel_buffer(gaussians, len(cameras), proj, features,
                                            backgrounds)
    out, alpha, top = _rasterize(proj, colors, opacities, bg, cameras.width, cameras.height,
                                 backend, return_top_ids)
    acc_z = out[..., -1:]
    depth = torch.where(alpha > 0, acc_z / alpha.clamp_min(1e-10), torch.zeros_like(acc_z))
    return RenderOutput(
        rgb=out[..., :3],
        alpha=alpha,
        depth=depth,
        features=out[..., 3:3 + D] if features is not None else None,
        top_ids=top,
        radii=proj.radii,
        means2d=proj.means2d,
    )


def _check_render_inputs(gaussians: Gaussians, cameras: Cameras, features: Tensor | None,
                         backgrounds: Tensor | None, near_plane: float, eps2d: float) -> None:
    """The argument checks of :func:`render` (types, shapes, ranges, one device).

    Raises:
        ShapeError, InputError: as documented on :func:`render`.
    """
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"gaussians must be an instgs Gaussians, got {type(gaussians).__name__}",
                         fix="build it with instgs.core.gaussians.Gaussians(...)")
    if not isinstance(cameras, Cameras):
        raise InputError(f"cameras must be an instgs Cameras, got {type(cameras).__name__}",
                         fix="build it with instgs.core.cameras.Cameras(...)")
    N, C = len(gaussians), len(cameras)
    check_shape("gaussians.colors", gaussians.colors, "N 3", N=N)
    if features is not None:
        check_shape("features", features, "N D", N=N)
    if backgrounds is not None:
        check_shape("backgrounds", backgrounds, "C 3", C=C)
    if not near_plane > 0:
        raise InputError(f"near_plane must be > 0, got {near_plane}", fix="pass e.g. 0.01")
    if not eps2d >= 0:
        raise InputError(f"eps2d must be >= 0, got {eps2d}", fix="pass e.g. 0.3")
    device = gaussians.means.device
    tensors = {"means": gaussians.means, "quats": gaussians.quats, "scales": gaussians.scales,
               "opacities": gaussians.opacities, "colors": gaussians.colors,
               "features": features, "backgrounds": backgrounds}
    for name, t in tensors.items():
        if t is not None and t.device != device:
            raise InputError(f"{name} is on {t.device} but means is on {device}",
                             fix="move all Gaussians tensors, features and backgrounds to "
                                 "one device")


def _project(gaussians: Gaussians, cameras: Cameras, backend: str, near_plane: float,
             eps2d: float) -> Projection:
    """EWA projection for the "cpu" (fused C++ kernel) or "torch" backend.

    Raises:
        BackendUnavailableError: backend "cpu" and the native kernel cannot be compiled.
    """
    W, H = cameras.width, cameras.height
    device = gaussians.means.device
    if backend == "cpu":
        from instgs._native import NativeOpsUnavailableError

        from ._cpu import project_cpu

        try:  # fused C++ twin of `project` (tests/render/test_projection_native.py)
            return project_cpu(gaussians.means, gaussians.quats, gaussians.scales,
                               gaussians.opacities, cameras.viewmats, cameras.Ks, W, H,
                               near_plane=near_plane, eps2d=eps2d)
        except NativeOpsUnavailableError as e:
            raise BackendUnavailableError(str(e)) from e
    return project(gaussians.means, gaussians.quats, gaussians.scales,
                   gaussians.opacities, cameras.viewmats.to(device),
                   cameras.Ks.to(device), W, H, near_plane=near_plane, eps2d=eps2d)


def _channel_buffer(gaussians: Gaussians, C: int, proj: Projection, features: Tensor | None,
                    backgrounds: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One channel buffer: rgb | features | camera z (depth channel), composited in one pass.

    Returns:
        (colors [C, N, 3 + D + 1], opacities [C, N], backgrounds [C, 3 + D + 1] or None),
        in the dtype of ``gaussians.means``.
    """
    N = len(gaussians)
    dt = gaussians.means.dtype
    D = 0 if features is None else features.shape[1]
    chans = [gaussians.colors.to(dt)[None].expand(C, N, 3)]
    if features is not None:
        chans.append(features.to(dt)[None].expand(C, N, D))
    chans.append(proj.depths[..., None])
    colors = torch.cat(chans, dim=-1)
    opacities = gaussians.opacities.to(dt)[None].expand(C, N)
    bg = None
    if backgrounds is not None:
        bg = torch.cat([backgrounds.to(dt),
                        torch.zeros(C, D + 1, device=gaussians.means.device, dtype=dt)], -1)
    return colors, opacities, bg


def _rasterize(proj: Projection, colors: Tensor, opacities: Tensor, bg: Tensor | None, W: int,
               H: int, backend: str, return_top_ids: bool
               ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Composite the channel buffer with the "cpu" or "torch" rasterizer.

    Returns:
        (channels [C, H, W, K], alpha [C, H, W, 1], top_ids [C, H, W] or None).

    Raises:
        BackendUnavailableError: backend "cpu" and the native kernel cannot be compiled.
    """
    if backend == "cpu":
        from instgs._native import NativeOpsUnavailableError

        from ._cpu import rasterize_cpu

        try:
            return rasterize_cpu(proj.means2d, proj.conics, colors, opacities,
                                 proj.depths, proj.extents, W, H, backgrounds=bg,
                                 return_top_ids=return_top_ids)
        except NativeOpsUnavailableError as e:
            raise BackendUnavailableError(str(e)) from e
    from ._torch_ref import rasterize_dense

    return rasterize_dense(proj.means2d, proj.conics, colors, opacities,
                           proj.depths, proj.valid, W, H, backgrounds=bg,
                           return_top_ids=return_top_ids)
