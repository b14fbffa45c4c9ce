"""Semantic-Scaffold-GS: anchors that decode neural Gaussians through small MLPs.

Follows Scaffold-GS (Lu et al., CVPR 2024, §3.1-3.3) with InstanceGaussian's per-anchor
instance feature (Li et al., seed 004 §3.1): each anchor carries a context feature, ``n_offsets``
learnable offsets, a 6-d scaling and one instance feature shared by all its neural Gaussians.
Per view, MLPs map (anchor feature, view direction[, distance][, appearance embedding]) to the
children's opacities, covariances and colours.

Defaults mirror the released code (reference-implementations.md §1.3 and §3): ``feat_dim=32``,
``n_offsets=5``, ``appearance_dim=32``, ``ins_feat_dim=6``, hidden width 32, children with a
decoded opacity <= 0 are dropped. Growing and pruning follow Scaffold-GS ``anchor_growing`` and
``adjust_anchor`` (§3.4); the optimiser state is kept in sync by :mod:`instgs.train.densify`.

The module holds parameters only; rendering and losses live elsewhere (style guide S10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from instgs.core.checks import InputError, check_shape
from instgs.core.gaussians import Gaussians

__all__ = ["ScaffoldConfig", "ScaffoldModel", "NeuralGaussians", "voxelize_points",
           "knn_mean_sq_dist"]


@dataclass(frozen=True)
class ScaffoldConfig:
    """Semantic-Scaffold-GS model hyper-parameters (released-code defaults)."""

    feat_dim: int = 32
    """Anchor context feature size (Scaffold-GS ``feat_dim``)."""
    n_offsets: int = 5
    """Neural Gaussians per anchor (InstanceGaussian uses 5; Scaffold-GS 10)."""
    hidden_dim: int = 32
    """Hidden width of the opacity / covariance / colour MLPs."""
    appearance_dim: int = 32
    """Per-training-image appearance embedding size; 0 disables it."""
    ins_feat_dim: int = 6
    """Instance feature size per anchor; 0 = appearance only."""
    voxel_size: float = 0.0
    """Anchor voxel edge in world units. <= 0: the median nearest-neighbour distance of the
    initial points (Scaffold-GS ``voxel_size=0``). Used to voxelise the initial points and as the
    base size for anchor growing."""
    add_dist_to_mlps: bool = False
    """Append the camera distance to the MLP inputs (Scaffold-GS ``add_*_dist``, default off)."""


def knn_mean_sq_dist(points: Tensor, k: int = 3) -> Tensor:
    """Mean squared distance to the ``k`` nearest other points (3DGS ``distCUDA2``).

    Args:
        points: [N, 3] float.

    Returns:
        [N] float32, clamped to >= 1e-7.

    Uses scipy's cKDTree.
    """
    from scipy.spatial import cKDTree

    pts = points.detach().cpu().double().numpy()
    if len(pts) < 2:
        return torch.full((len(pts),), 1e-2)
    kk = min(k + 1, len(pts))
    d, _ = cKDTree(pts).query(pts, k=kk)
    d2 = (d[:, 1:] ** 2).mean(axis=1)
    return torch.from_numpy(np.maximum(d2, 1e-7)).float()


def voxelize_points(points: Tensor, voxel_size: float) -> Tensor:
    """Quantise points to unique voxel centres (Scaffold-GS ``voxelize_sample``).

    Args:
        points: [N, 3] float, world units.
        voxel_size: voxel edge (> 0).

    Returns:
        [M, 3] float32 voxel centres ``round(p / v) * v`` (unique, M <= N), sorted.
    """
    q = torch.round(points / voxel_size)
    return torch.unique(q, dim=0).float() * voxel_size


@dataclass
class NeuralGaussians:
    """The neural Gaussians decoded for one view.

    Attributes:
        gaussians: activated Gaussians (means, quats wxyz, scales, opacities, colors) [M].
        anchor_ids: index of the parent anchor of each Gaussian. [M] int64.
        child_ids: flat child index ``anchor * n_offsets + k``. [M] int64.
        ins_feat: per-Gaussian instance feature (L2-normalised anchor feature). [M, F] or None.
        visible_anchors: anchors that passed the view-frustum test. [N] bool.
        child_opacity: raw decoded opacity of every child of the visible anchors (before the
            > 0 selection; used for pruning statistics). [V, n_offsets].
        child_mask: which children of the visible anchors were kept. [V * n_offsets] bool.
    """

    gaussians: Gaussians
    anchor_ids: Tensor
    child_ids: Tensor
    ins_feat: Tensor | None
    visible_anchors: Tensor
    child_opacity: Tensor
    child_mask: Tensor


class ScaffoldModel(nn.Module):
    """Semantic-Scaffold-GS parameters and the per-view neural-Gaussian decoder.

    Parameters (names match the optimiser groups in :mod:`instgs.train`):
        anchors [N, 3]: anchor positions, world units.
        offsets [N, K, 3]: child offsets in units of ``scaling[:, :3]``.
        anchor_feat [N, feat_dim]: context features.
        log_scaling [N, 6]: log of (offset scale [3], child base scale [3]).
        ins_feat [N, ins_feat_dim]: instance features (raw; normalised when used).
        mlp_opacity, mlp_cov, mlp_color: decoders; appearance: nn.Embedding(num_images, app_dim).

    Args:
        cfg: hyper-parameters.
        points: [P, 3] initial points (SfM points, mesh vertices, ...).
        num_images: number of training images (size of the appearance embedding table).
        fixed_anchors: keep ``points`` as anchors in their given order (ScanNet protocol:
            one anchor per mesh vertex, no voxelisation, growth or pruning).
        colors: [P, 3] optional point colours in [0, 1] (only stored, for exports).

    Raises:
        InputError: if ``points`` is empty or holds NaN/Inf.
    """

    def __init__(self, cfg: ScaffoldConfig, points: Tensor, num_images: int,
                 fixed_anchors: bool = False, colors: Tensor | None = None):
        super().__init__()
        check_shape("points", points, "P 3")
        if points.shape[0] == 0:
            raise InputError("no initial points to build anchors from", None,
                             "provide a point cloud (sparse/0/points3D, points3d.ply) or use "
                             "random initialisation")
        if not torch.isfinite(points).all():
            raise InputError("initial points hold NaN/Inf values", None,
                             "clean the point cloud file")
        self.cfg = cfg
        self.fixed_anchors = fixed_anchors
        points = points.float()
        if cfg.voxel_size > 0:
            voxel = cfg.voxel_size
        else:
            voxel = float(torch.sqrt(knn_mean_sq_dist(points, k=1)).median())
            voxel = max(voxel, 1e-6)
        self.voxel_size = voxel
        anchors = points if fixed_anchors else voxelize_points(points, voxel)
        n, k = anchors.shape[0], cfg.n_offsets
        dist2 = knn_mean_sq_dist(anchors, k=3)
        log_scale = torch.log(torch.sqrt(dist2))[:, None].repeat(1, 6)
        # Scaffold-GS / InstanceGaussian: position_lr_init = 0, anchors never move
        self.anchors = nn.Parameter(anchors.clone(), requires_grad=False)
        self.offsets = nn.Parameter(torch.zeros(n, k, 3))
        self.anchor_feat = nn.Parameter(torch.zeros(n, cfg.feat_dim))
        self.log_scaling = nn.Parameter(log_scale)
        self.ins_feat = nn.Parameter(torch.rand(n, cfg.ins_feat_dim)) if cfg.ins_feat_dim else None
        dist_in = 1 if cfg.add_dist_to_mlps else 0
        d_in = cfg.feat_dim + 3 + dist_in
        h = cfg.hidden_dim
        self.mlp_opacity = nn.Sequential(nn.Linear(d_in, h), nn.ReLU(True), nn.Linear(h, k),
                                         nn.Tanh())
        self.mlp_cov = nn.Sequential(nn.Linear(d_in, h), nn.ReLU(True), nn.Linear(h, 7 * k))
        self.mlp_color = nn.Sequential(nn.Linear(d_in + cfg.appearance_dim, h), nn.ReLU(True),
                                       nn.Linear(h, 3 * k), nn.Sigmoid())
        self.appearance = (nn.Embedding(max(num_images, 1), cfg.appearance_dim)
                           if cfg.appearance_dim > 0 else None)
        self.register_buffer("point_colors", colors.float().clone() if colors is not None
                             and fixed_anchors else torch.zeros(0, 3), persistent=True)

    # ------------------------------------------------------------------ properties
    @property
    def num_anchors(self) -> int:
        return self.anchors.shape[0]

    @property
    def scaling(self) -> Tensor:
        """Activated 6-d anchor scaling [N, 6]."""
        return torch.exp(self.log_scaling)

    def normalized_ins_feat(self) -> Tensor | None:
        """L2-normalised instance features [N, F] (None in appearance-only models)."""
        return None if self.ins_feat is None else F.normalize(self.ins_feat, dim=-1)

    # ------------------------------------------------------------------ decoding
    def visible_anchors(self, viewmat: Tensor, K: Tensor, width: int, height: int,
                        margin: float = 0.15) -> Tensor:
        """Frustum test on anchors (Scaffold-GS ``prefilter_voxel`` equivalent).

        An anchor is visible if it lies in front of the camera and its projection, grown by
        its footprint (3 x the largest child scale, plus the offset reach), falls inside the
        image enlarged by ``margin`` on every side.

        Args:
            viewmat: [4, 4] world-to-camera. K: [3, 3] pixels. width, height: pixels.

        Returns:
            [N] bool.
        """
        with torch.no_grad():
            xyz = self.anchors
            cam = xyz @ viewmat[:3, :3].T + viewmat[:3, 3]
            z = cam[:, 2]
            front = z > 0.01
            zc = z.clamp(min=0.01)
            u = K[0, 0] * cam[:, 0] / zc + K[0, 2]
            v = K[1, 1] * cam[:, 1] / zc + K[1, 2]
            s = self.scaling
            reach = 3.0 * s[:, 3:].max(dim=1).values + s[:, :3].max(dim=1).values * \
                self.offsets.detach().abs().amax(dim=(1, 2)).clamp(min=1.0)
            r = K[0, 0] * reach / zc
            mw, mh = margin * width, margin * height
            inside = (u + r > -mw) & (u - r < width + mw) & (v + r > -mh) & (v - r < height + mh)
            return front & inside

    def decode(self, viewmat: Tensor, K: Tensor, width: int, height: int,
               image_id: int | None = None, visible: Tensor | None = None) -> NeuralGaussians:
        """Decode the neural Gaussians of the visible anchors for one camera.

        Scaffold-GS ``generate_neural_gaussians``: view direction = anchor - camera centre
        (normalised); opacity = tanh head (children <= 0 dropped); scales =
        ``scaling[:, 3:] * sigmoid(cov[:3])``; quats = normalised ``cov[3:7]`` (wxyz);
        means = anchor + offset * ``scaling[:, :3]``; colours = sigmoid head.

        Args:
            viewmat: [4, 4] world-to-camera (OpenCV). K: [3, 3] intrinsics (pixels).
            width, height: image size (pixels), used by the frustum test.
            image_id: training image index for the appearance embedding; None (novel or test
                views) uses embedding 0, as Scaffold-GS does at test time.
            visible: [N] bool precomputed visibility; computed when None.

        Returns:
            :class:`NeuralGaussians`.
        """
        k = self.cfg.n_offsets
        if visible is None:
            visible = self.visible_anchors(viewmat, K, width, height)
        vis_idx = torch.nonzero(visible).squeeze(1)  # [V]
        anchor = self.anchors.index_select(0, vis_idx)
        cam_center = -viewmat[:3, :3].T @ viewmat[:3, 3]
        local_view = self._mlp_input(vis_idx, cam_center)
        opacity = self.mlp_opacity(local_view)  # [V, k]
        # keep children with a positive decoded opacity; gather once by flat index
        sel = torch.nonzero(opacity.detach().reshape(-1) > 0.0).squeeze(1)  # [M]
        mask = torch.zeros(opacity.numel(), dtype=torch.bool, device=opacity.device)
        mask[sel] = True
        local_sel = torch.div(sel, k, rounding_mode="floor")  # [M] row in the visible set
        color = self.mlp_color(self._color_input(local_view, image_id)).reshape(-1, 3)
        color = color.index_select(0, sel)  # [M, 3]
        scale_rot = self.mlp_cov(local_view).reshape(-1, 7).index_select(0, sel)  # [M, 7]
        scaling = torch.exp(self.log_scaling.index_select(0, vis_idx)).index_select(
            0, local_sel)  # [M, 6]
        offsets = self.offsets.index_select(0, vis_idx).reshape(-1, 3).index_select(0, sel)
        means = anchor.index_select(0, local_sel) + offsets * scaling[:, :3]
        scales = scaling[:, 3:] * torch.sigmoid(scale_rot[:, :3])
        quats = F.normalize(scale_rot[:, 3:7], dim=-1)
        anchor_ids = vis_idx.index_select(0, local_sel)
        child_ids = anchor_ids * k + (sel - local_sel * k)
        g = Gaussians(means=means, quats=quats, scales=scales,
                      opacities=opacity.reshape(-1).index_select(0, sel), colors=color)
        ins = None
        if self.ins_feat is not None:
            ins = F.normalize(self.ins_feat.index_select(0, anchor_ids), dim=-1)
        return NeuralGaussians(g, anchor_ids, child_ids, ins, visible, opacity, mask)

    def _mlp_input(self, idx: Tensor, cam_center: Tensor) -> Tensor:
        """[A, feat_dim + 3 (+1)]: anchor feature, unit view direction (anchor - camera
        centre)[, its length] of anchors ``idx``."""
        ob_view = self.anchors.index_select(0, idx) - cam_center
        ob_dist = ob_view.norm(dim=1, keepdim=True).clamp(min=1e-8)
        local = [self.anchor_feat.index_select(0, idx), ob_view / ob_dist]
        if self.cfg.add_dist_to_mlps:
            local.append(ob_dist)
        return torch.cat(local, dim=1)

    def _color_input(self, local_view: Tensor, image_id: int | None) -> Tensor:
        if self.appearance is None:
            return local_view
        app = self.appearance.weight[0 if image_id is None else int(image_id)]
        return torch.cat([local_view, app.expand(local_view.shape[0], -1)], dim=1)

    def child_attributes(self, idx: Tensor, cam_center: Tensor, image_id: int | None = None
                         ) -> dict[str, Tensor]:
        """Every child of anchors ``idx`` as decoded for a camera at ``cam_center``, before
        the opacity > 0 selection of :meth:`decode` (used to bake static Gaussians).

        Args:
            idx: [A] int64 anchor indices. cam_center: [3] camera centre, scene units.
            image_id: appearance-embedding row (None = row 0, as :meth:`decode`).

        Returns:
            dict of ``means`` [A, k, 3] (view independent), ``opacity`` [A, k] (tanh head, a
            child is drawn when > 0), ``scales`` [A, k, 3] (metres), ``quats`` [A, k, 4]
            (unit, wxyz), ``colors`` [A, k, 3] in [0, 1].
        """
        k = self.cfg.n_offsets
        a = idx.shape[0]
        local_view = self._mlp_input(idx, cam_center)
        scaling = torch.exp(self.log_scaling.index_select(0, idx))  # [A, 6]
        cov = self.mlp_cov(local_view).reshape(a, k, 7)
        means = self.anchors.index_select(0, idx)[:, None] + \
            self.offsets.index_select(0, idx) * scaling[:, None, :3]
        return {"means": means, "opacity": self.mlp_opacity(local_view),
                "scales": scaling[:, None, 3:] * torch.sigmoid(cov[..., :3]),
                "quats": F.normalize(cov[..., 3:7], dim=-1),
                "colors": self.mlp_color(self._color_input(local_view, image_id)).reshape(
                    a, k, 3)}

    # ------------------------------------------------------------------ io
    def state_for_checkpoint(self) -> dict:
        """Plain tensors needed to rebuild the model (see :meth:`from_checkpoint`)."""
        return {"cfg": self.cfg.__dict__, "voxel_size": self.voxel_size,
                "fixed_anchors": self.fixed_anchors, "num_images": (
                    self.appearance.num_embeddings if self.appearance is not None else 0),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, path=None) -> ScaffoldModel:
        """Rebuild a model from :meth:`state_for_checkpoint` output (any anchor count).

        Args:
            ckpt: the dict :meth:`state_for_checkpoint` returned.
            path: the file it came from (named in errors).

        Raises:
            InputError: unknown or ill-typed config keys (a model of another version).
            KeyError, RuntimeError: missing or mis-shaped tensors.
        """
        from instgs.core.configs import from_dict

        cfg = from_dict(ScaffoldConfig, ckpt["cfg"], path, prefix="model.cfg.")
        sd = ckpt["state_dict"]
        model = cls(cfg, sd["anchors"][:2].clone() if sd["anchors"].shape[0] >= 2 else
                    sd["anchors"].clone(), num_images=max(ckpt["num_images"], 1),
                    fixed_anchors=True)
        # resize parameters to the stored shapes, then load
        for name in ("anchors", "offsets", "anchor_feat", "log_scaling", "ins_feat"):
            if name in sd and getattr(model, name) is not None:
                setattr(model, name, nn.Parameter(torch.empty_like(sd[name]),
                                                  requires_grad=name != "anchors"))
        model.point_colors = torch.empty_like(sd["point_colors"])
        model.load_state_dict(sd)
        model.fixed_anchors = ckpt["fixed_anchors"]
        model.voxel_size = ckpt["voxel_size"]
        return model
