"""instgs.clip: open_clip wrapper (random-initialised ViT-B-32; no weights here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs import clip as clip_mod
from instgs.clip import encode_images, encode_text, load_clip


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    return load_clip("ViT-B-32", "laion2b_s34b_b79k", allow_random_init=True)


def test_encode_images_and_text_are_normalised(vit_b32):
    model, preprocess, tokenizer = vit_b32
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    f = encode_images(model, preprocess, imgs, batch_size=2)
    assert f.shape == (3, 512) and f.dtype == torch.float32
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3))
    # batching does not change the result
    torch.testing.assert_close(encode_images(model, preprocess, imgs, batch_size=3), f,
                               atol=1e-5, rtol=0)
    # same as open_clip's own forward, normalised
    with torch.no_grad():
        from PIL import Image

        ref = model.encode_image(torch.stack([preprocess(Image.fromarray(i)) for i in imgs]))
    torch.testing.assert_close(f, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5, rtol=0)
    t = encode_text(model, tokenizer, ["a chair", "a sofa"])
    assert t.shape == (2, 512)
    torch.testing.assert_close(t.norm(dim=1), torch.ones(2))
    assert encode_images(model, preprocess, []).shape == (0, 512)


def test_offline_error_names_the_file_and_place(monkeypatch, tmp_path):
    monkeypatch.setattr(clip_mod, "_host_reachable", lambda *a, **k: False)
    with pytest.raises(InputError) as e:
        load_clip("ViT-B-16", "laion2b_s34b_b88k", cache_dir=str(tmp_path))
    msg = str(e.value)
    assert "laion/CLIP-ViT-B-16-laion2B-s34B-b88K" in msg
    assert "--clip-checkpoint PATH" in msg and str(tmp_path) in msg


def test_bad_names_and_checkpoints(tmp_path):
    with pytest.raises(InputError, match="unknown CLIP model 'ViT-Z-99'"):
        load_clip("ViT-Z-99")
    with pytest.raises(InputError, match="unknown pretrained tag 'nope'"):
        load_clip("ViT-B-32", "nope")
    with pytest.raises(InputError, match="missing.pt: CLIP checkpoint not found"):
        load_clip("ViT-B-32", checkpoint=tmp_path / "missing.pt")
    bad = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="other.pt: cannot load it as open_clip ViT-B-32"):
        load_clip("ViT-B-32", checkpoint=bad)
