"""Every file name of a run folder, in one place (nothing else in instgs spells them).

::

    RUN/
      config.json            the resolved TrainConfig (plain data; `instgs train --config`)
      scene.json             cameras, split and image names of the scene trained on
      manifest.json          versions, git sha, per-stage timestamps and timings
      metrics.json           held-out PSNR / SSIM, wall time, Gaussian counts
      ckpt/latest.pt         the checkpoint (tensors and plain containers only)
      ckpt/latest.json       its step, SHA-256 and config hash (written after it)
      instances.npz          `instgs segment`: instance id per anchor / neural Gaussian
      language.npz           `instgs language`: one CLIP feature per instance
      cluster_lang.npz       optional OpenGaussian / InstanceGaussian export
      eval_<benchmark>.json  `instgs eval`
      query_<slug>.json/.npz `instgs query`
      exports/               `instgs export` (3DGS PLY, .splat, ...)
      renders/               `instgs render`
      .lock                  held by the one process writing into the run
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunPaths"]


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder (see the module docstring for the layout).

    Args:
        root: the run folder.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def scene(self) -> Path:
        return self.root / "scene.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "ckpt" / "latest.pt"

    @property
    def checkpoint_info(self) -> Path:
        return self.root / "ckpt" / "latest.json"

    @property
    def instances(self) -> Path:
        return self.root / "instances.npz"

    @property
    def language(self) -> Path:
        return self.root / "language.npz"

    @property
    def cluster_lang(self) -> Path:
        return self.root / "cluster_lang.npz"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    def eval(self, benchmark: str) -> Path:
        """``RUN/eval_<benchmark>.json``."""
        return self.root / f"eval_{benchmark}.json"

    def query(self, slug: str) -> Path:
        """``RUN/query_<slug>.json`` (its arrays go beside it with the ``.npz`` suffix)."""
        return self.root / f"query_{slug}.json"
