"""open_clip wrapper: load a CLIP model and encode images / texts to L2-normalised float32.

open_clip's ``encode_image`` / ``encode_text`` return unnormalised features by default
(``normalize=False``); every function here returns L2-normalised rows, the instgs
convention for CLIP features (docs/conventions.md).

The default model is LangSplat's: OpenCLIP ``ViT-B-16`` trained on ``laion2b_s34b_b88k``
(512-d), which is also what OpenGaussian / InstanceGaussian features come from.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import torch

from instgs.core.checks import InputError

__all__ = ["load_clip", "encode_images", "encode_text", "ClipModel", "DEFAULT_MODEL",
           "DEFAULT_PRETRAINED"]

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "laion2b_s34b_b88k"


class ClipModel(tuple):
    """``(model, preprocess, tokenizer)`` as returned by :func:`load_clip` (a plain tuple)."""

    __slots__ = ()

    @property
    def model(self) -> Any:
        return self[0]

    @property
    def preprocess(self) -> Any:
        return self[1]

    @property
    def tokenizer(self) -> Any:
        return self[2]


def _import_open_clip() -> Any:
    from instgs._compat import import_optional

    return import_optional("open_clip", "open_clip_torch")


def _host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hf_file(hf_hub: str, cache_dir: str | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    repo = hf_hub.rstrip("/")
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(hit, str):
            return hit
    return None


def _offline_error(model: str, pretrained: str, cfg: dict, cache_dir: str | None) -> InputError:
    hub = (cfg.get("hf_hub") or "").rstrip("/")
    url = cfg.get("url") or ""
    cache = cache_dir or "~/.cache/huggingface/hub (or $HF_HOME/hub)"
    if hub:
        where = (f"download open_clip_model.safetensors (or open_clip_pytorch_model.bin) from "
                 f"https://huggingface.co/{hub} on a connected machine and pass it with "
                 f"--clip-checkpoint PATH, or copy the Hugging Face cache entry "
                 f"(`huggingface-cli download {hub} open_clip_model.safetensors`) into {cache}")
    else:
        where = (f"download {url} on a connected machine and pass it with --clip-checkpoint PATH")
    return InputError(f"cannot download the CLIP weights for {model} / {pretrained} "
                      f"(no internet connection and nothing in the cache)", None, where)


def load_clip(model: str = DEFAULT_MODEL, pretrained: str = DEFAULT_PRETRAINED,
              device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
              allow_random_init: bool = False, cache_dir: str | None = None) -> ClipModel:
    """Create an open_clip model in eval mode with its preprocessing and tokenizer.

    Args:
        model: open_clip architecture name (``open_clip.list_models()``), e.g. ``"ViT-B-16"``.
        pretrained: open_clip pretrained tag (``open_clip.list_pretrained_tags_by_model``);
            ignored when ``checkpoint`` is given.
        device: torch device.
        checkpoint: local weights file (``open_clip_model.safetensors`` /
            ``open_clip_pytorch_model.bin`` / an open_clip ``.pt``) for ``model``.
        allow_random_init: if True and no weights can be found, return a randomly initialised
            model instead of raising (tests only; its features are meaningless).
        cache_dir: open_clip/Hugging Face cache folder (default: the HF default cache).

    Returns:
        :class:`ClipModel` ``(model, preprocess, tokenizer)``; ``preprocess`` maps a PIL
        image to ``[3, S, S]`` normalised float32; ``tokenizer(list[str]) -> [T, 77]`` int64.

    Raises:
        InputError: unknown model/tag; checkpoint missing or for another architecture;
            weights not downloadable (offline) — the message says which file to put where.

    References:
        Ilharco et al., OpenCLIP (2021); Cherti et al., CVPR 2023 (laion2b models).
    """
    open_clip = _import_open_clip()
    if model not in open_clip.list_models():
        raise InputError(f"unknown CLIP model {model!r}", None,
                         f"use one of open_clip.list_models(), e.g. {DEFAULT_MODEL}")
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_file():
            raise InputError("CLIP checkpoint not found", ckpt,
                             f"pass an existing open_clip weights file for {model}")
        try:
            m, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=str(ckpt), device=device)
        except (RuntimeError, KeyError, ValueError, OSError) as e:
            raise InputError(f"cannot load it as open_clip {model} weights "
                             f"({str(e).splitlines()[0][:300]})", ckpt,
                             f"pass weights of {model} or set --clip-model to the "
                             "checkpoint's architecture") from e
    else:
        tags = open_clip.list_pretrained_tags_by_model(model)
        cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
        if pretrained and not cfg:
            raise InputError(f"unknown pretrained tag {pretrained!r} for {model}", None,
                             f"use one of {tags}")
        use_random = False
        if pretrained:
            hub = cfg.get("hf_hub") or ""
            cached = _cached_hf_file(hub, cache_dir) if hub else None
            host = "huggingface.co" if hub else (cfg.get("url", "").split("/")[2:3] or [""])[0]
            if cached is None and not _host_reachable(host):
                if not allow_random_init:
                    raise _offline_error(model, pretrained, cfg, cache_dir)
                use_random = True
        else:
            if not allow_random_init:
                raise InputError(f"no pretrained tag or checkpoint for {model}", None,
                                 f"set --clip-pretrained to one of {tags} or --clip-checkpoint")
            use_random = True
        try:
            m, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=None if use_random else pretrained, device=device,
                cache_dir=cache_dir)
        except RuntimeError as e:
            if "download" in str(e).lower():
                if allow_random_init:
                    m, _, preprocess = open_clip.create_model_and_transforms(
                        model, pretrained=None, device=device)
                else:
                    raise _offline_error(model, pretrained, cfg, cache_dir) from e
            else:
                raise
    m.eval()
    tokenizer = open_clip.get_tokenizer(model)
    return ClipModel((m, preprocess, tokenizer))


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_images(model: torch.nn.Module, preprocess: Any,
                  images: Sequence[Any] | np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """Encode images with CLIP's image tower.

    Args:
        model: an open_clip model (from :func:`load_clip`).
        preprocess: its eval transform (PIL image -> ``[3, S, S]`` tensor).
        images: a sequence of PIL images or ``[H, W, 3]`` uint8 RGB arrays, or one
            ``[B, H, W, 3]`` uint8 array. Each goes through ``preprocess`` (resize shortest
            side, centre crop, normalise), so LangSplat's 224x224 mask crops pass unchanged
            apart from normalisation.
        batch_size: images per forward pass.

    Returns:
        ``[B, D]`` float32 on CPU, L2-normalised (D = 512 for ViT-B).
    """
    from PIL import Image

    device = _model_device(model)
    n = len(images)
    outs = []
    for b0 in range(0, n, batch_size):
        batch = []
        for im in images[b0: b0 + batch_size]:
            if not isinstance(im, Image.Image):
                arr = np.asarray(im)
                if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
                    raise ValueError(f"images must be [H, W, 3] uint8, got {arr.dtype} "
                                     f"{list(arr.shape)}")
                im = Image.fromarray(arr)
            batch.append(preprocess(im))
        x = torch.stack(batch).to(device)
        f = model.encode_image(x).float()
        outs.append(torch.nn.functional.normalize(f, dim=-1).cpu())
    if not outs:
        dim = int(getattr(model, "embed_dim", 0) or model.text_projection.shape[1])
        return torch.zeros((0, dim), dtype=torch.float32)
    return torch.cat(outs)


@torch.no_grad()
def encode_text(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                batch_size: int = 256) -> torch.Tensor:
    """Encode texts with CLIP's text tower.

    Args:
        model: an open_clip model.
        tokenizer: its tokenizer (from :func:`load_clip`).
        texts: T strings (used as given; no prompt template is added).
        batch_size: texts per forward pass.

    Returns:
        ``[T, D]`` float32 on CPU, L2-normalised.
    """
    if isinstance(texts, str):
        texts = [texts]
    device = _model_device(model)
    outs = []
    for b0 in range(0, len(texts), batch_size):
        tok = tokenizer(list(texts[b0: b0 + batch_size])).to(device)
        f = model.encode_text(tok).float()
        outs.append(torch.nn.functional.normalize(f, dim=-1).cpu())
    if not outs:
        return torch.zeros((0, 0), dtype=torch.float32)
    return torch.cat(outs)
