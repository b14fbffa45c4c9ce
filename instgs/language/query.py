"""Open-vocabulary queries: rank a run's 3D instances by a text, select them.

Every instance carries one L2-normalised CLIP feature (``RUN/language.npz``, written by
:mod:`instgs.language.associate`). A text is encoded with the same open_clip model
(OpenCLIP ViT-B-16 / laion2b_s34b_b88k by default) or looked up in a precomputed table
(OpenGaussian's ``assets/text_features.json``: ``{name: [512 floats]}``), and instances are
ranked by

* cosine similarity (OpenGaussian / InstanceGaussian evals, ``relevancy=False``), or
* LERF relevancy (Kerr et al., ICCV 2023, Eq. 3): ``min_j softmax(10 [cos(f, q),
  cos(f, n_j)])_0`` over canonical negatives ``n_j`` ("object", "things", "stuff",
  "texture"); 0.5 means "as close to the query as to a generic negative".

Instances that were never matched to a mask (zero feature) or matched in fewer than
``min_views`` views are not ranked (the released evals zero them and would call them "wall").
Nor, unless ``include_parts``, are the fragments whose feature came only from the
containment fallback of ``instgs language``: they lie inside one object's masks and carry
that object's feature, so they would tie with the object itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instgs.core.artifacts import atomic_save_npz, write_json
from instgs.core.checks import InputError

from instgs.run import LanguageFeatures, RunPaths

__all__ = [
    "DEFAULT_NEGATIVES",
    "LoadedLanguage",
    "QueryResult",
    "TextMatch",
    "encode_queries",
    "load_language",
    "load_text_feature_table",
    "lookup_text_features",
    "query_instances",
    "query_slug",
    "relevancy_scores",
    "save_query",
]

DEFAULT_NEGATIVES: tuple[str, ...] = ("object", "things", "stuff", "texture")
"""LERF's canonical negative phrases."""


@dataclass(frozen=True)
class LoadedLanguage:
    """A run's language features joined with its instance labels.

    Attributes:
        features: :class:`LanguageFeatures` (``instance_features`` [K, 512] ...).
        anchor_labels: [N] int64 instance id per anchor (-1 = unassigned).
        n_offsets: neural Gaussians per anchor (Gaussian j belongs to anchor j // n_offsets).
        run_dir: the run folder (None when built in memory).
    """

    features: LanguageFeatures
    anchor_labels: np.ndarray
    n_offsets: int
    run_dir: Path | None = None

    @property
    def clip_available(self) -> bool:
        """False when the masks had no CLIP features (Felzenszwalb masks)."""
        return bool(self.features.meta.get("clip_features_available", True))


@dataclass(frozen=True)
class TextMatch:
    """Ranking of the instances for one text.

    Attributes:
        text: the query. instance_ids: [R] int64 ranked best first (rankable instances only).
        scores: [R] float32 cosine (or relevancy) of each.
    """

    text: str
    instance_ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class QueryResult:
    """What :func:`query_instances` returns.

    Attributes:
        matches: one :class:`TextMatch` per text.
        scores: [T, K] float32 all scores (NaN for instances that are not ranked).
        selected_ids: [S] int64 selected instance ids (sorted, unique).
        anchor_mask: [N] bool, anchors of the selected instances.
        gaussian_mask: [N * n_offsets] bool, their neural Gaussians (anchor mask repeated).
        relevancy: whether the scores are LERF relevancies.
        config: the query settings (plain data).
    """

    matches: list[TextMatch]
    scores: np.ndarray
    selected_ids: np.ndarray
    anchor_mask: np.ndarray
    gaussian_mask: np.ndarray
    relevancy: bool
    config: dict[str, Any] = field(default_factory=dict)


def load_language(run_dir: str | Path) -> LoadedLanguage:
    """Read a run's language features and instance labels through :mod:`instgs.run`, checking
    that they belong together and to the run's current checkpoint.

    Raises:
        InputError: no language features (run ``instgs language RUN``), no instances, or
            stale ones (the instances or the checkpoint changed since).
    """
    from instgs.run import load_instances
    from instgs.run import load_language as read_language

    run_dir = Path(run_dir)
    lang = read_language(run_dir)  # checks the instances and the checkpoint too
    inst = load_instances(run_dir, fresh=False)
    n_off = int(lang.meta.get("n_offsets") or 0) or inst.n_offsets
    return LoadedLanguage(lang, inst.anchor_labels, n_off, run_dir)


# --------------------------------------------------------------------------- text features
def _norm_key(s: str) -> str:
    return re.sub(r"[\s_\-]+", "", s.strip().lower())


def load_text_feature_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``{name: [D floats]}`` JSON (OpenGaussian ``assets/text_features.json``).

    Returns:
        name -> [D] float32.

    Raises:
        InputError: missing / invalid JSON, not a mapping, ragged or non-numeric rows.
    """
    from instgs.core.artifacts import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputError("expected a non-empty JSON object {name: [floats]}", path,
                         "use the format of OpenGaussian's assets/text_features.json")
    out: dict[str, np.ndarray] = {}
    dims = set()
    for k, v in data.items():
        try:
            arr = np.asarray(v, np.float32).reshape(-1)
        except (TypeError, ValueError) as e:
            raise InputError(f"entry {k!r} is not a list of numbers", path,
                             "store each text as a flat list of floats") from e
        out[str(k)] = arr
        dims.add(arr.shape[0])
    if len(dims) != 1:
        raise InputError(f"entries have different lengths {sorted(dims)}", path,
                         "store every text feature with the same dimension (512)")
    return out


def lookup_text_features(table: Mapping[str, np.ndarray], texts: Sequence[str],
                         path: str | Path | None = None) -> np.ndarray:
    """Look texts up in a feature table by name, ignoring case, spaces, '_' and '-'.

    Args:
        table: name -> [D] floats. texts: T names.
        path: the table's file (named in errors).

    Returns:
        [T, D] float32, L2-normalised rows.

    Raises:
        InputError: an unknown name (the message lists close matches).
    """
    index = {_norm_key(k): k for k in table}
    rows = []
    for t in texts:
        key = index.get(_norm_key(t))
        if key is None:
            near = difflib.get_close_matches(t.strip().lower(), list(table), n=5, cutoff=0.5)
            hint = (f"close matches: {near}" if near else
                    f"{len(table)} names are available, e.g. {sorted(table)[:6]}")
            raise InputError(f"text {t!r} is not in the precomputed text features ({hint})",
                             path, "use one of those names, or drop --text-features to encode "
                                   "free text with CLIP (needs the CLIP weights)")
        rows.append(np.asarray(table[key], np.float32))
    f = np.stack(rows)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def encode_queries(texts: Sequence[str], *, text_features: str | Path | Mapping | None = None,
                   clip: Any = None, clip_model: str | None = None,
                   clip_pretrained: str | None = None,
                   clip_checkpoint: str | Path | None = None) -> np.ndarray:
    """Text features for ``texts``: from a table when given, else encoded with open_clip.

    Args:
        texts: T non-empty strings.
        text_features: a ``{name: [512 floats]}`` JSON path or mapping (offline; exact names).
        clip: an already loaded :class:`instgs.clip.ClipModel` (tests, notebooks).
        clip_model, clip_pretrained, clip_checkpoint: what :func:`load_clip` loads otherwise
            (default ViT-B-16 / laion2b_s34b_b88k, the model of LangSplat's mask features).

    Returns:
        [T, D] float32 L2-normalised.

    Raises:
        InputError: empty text, unknown name in the table, or no CLIP weights available (the
            message says how to get them and that ``--text-features`` works offline).
    """
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise InputError("empty query text", None,
                             'pass a non-empty text, e.g. instgs query RUN "chair"')
    if text_features is not None:
        if isinstance(text_features, Mapping):
            table, path = {k: np.asarray(v, np.float32) for k, v in text_features.items()}, None
        else:
            path = Path(text_features)
            table = load_text_feature_table(path)
        return lookup_text_features(table, texts, path)
    from instgs.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, encode_text, load_clip

    if clip is None:
        try:
            clip = load_clip(clip_model or DEFAULT_MODEL, clip_pretrained or DEFAULT_PRETRAINED,
                             checkpoint=clip_checkpoint)
        except InputError as e:
            raise InputError(
                f"CLIP weights are needed to encode the free text {texts!r} ({e}). "
                "Alternatively pass --text-features JSON with precomputed features "
                "({name: [512 floats]}, e.g. OpenGaussian's assets/text_features.json), "
                "which works offline") from e
    model, _, tokenizer = clip
    return encode_text(model, tokenizer, texts).numpy().astype(np.float32)


def relevancy_scores(inst_feats: np.ndarray, query: np.ndarray, negatives: np.ndarray,
                     temperature: float = 10.0) -> np.ndarray:
    """LERF relevancy of each instance to each query.

    ``rel = min_j exp(t s_q) / (exp(t s_q) + exp(t s_j))`` with cosines ``s`` and
    temperature ``t`` = 10 (LERF, Kerr et al. 2023).

    Args:
        inst_feats: [K, D] L2-normalised. query: [T, D] L2-normalised.
        negatives: [J, D] L2-normalised (J >= 1).
        temperature: softmax temperature.

    Returns:
        [T, K] float32 in (0, 1).
    """
    sq = query @ inst_feats.T  # [T, K]
    sn = negatives @ inst_feats.T  # [J, K]
    # exp(t sq) / (exp(t sq) + exp(t sn)) = sigmoid(t (sq - sn))
    diff = temperature * (sq[:, None, :] - sn[None, :, :])  # [T, J, K]
    rel = 1.0 / (1.0 + np.exp(-diff))
    return rel.min(axis=1).astype(np.float32)


def query_instances(source: str | Path | LoadedLanguage,
                    texts: Sequence[str] | np.ndarray | torch.Tensor, *,
                    text_features: str | Path | Mapping | None = None, clip: Any = None,
                    clip_model: str | None = None, clip_pretrained: str | None = None,
                    clip_checkpoint: str | Path | None = None,
                    negatives: Sequence[str] = DEFAULT_NEGATIVES, relevancy: bool = False,
                    top_k: int = 5, select: int = 1, threshold: float | None = None,
                    min_views: int = 1, include_parts: bool = False) -> QueryResult:
    """Rank a run's instances for each text and select the best ones.

    Args:
        source: a run folder (with ``language.npz`` and ``instances.npz``) or a
            :class:`LoadedLanguage`.
        texts: T strings, or a [T, 512] array of text features (already encoded).
        text_features: ``{name: [512 floats]}`` JSON path or mapping; texts (and, with
            ``relevancy``, the negatives) are looked up by name instead of encoded.
        clip, clip_model, clip_pretrained, clip_checkpoint: see :func:`encode_queries`.
        negatives: canonical negatives for ``relevancy``.
        relevancy: rank by LERF relevancy instead of cosine.
        top_k: length of each ranking kept in :class:`TextMatch` (<= 0: all).
        select: instances selected per text (best first).
        threshold: also select every instance whose score is >= threshold.
        min_views: instances matched in fewer views are not ranked (zero features never are).
        include_parts: also rank instances whose feature came only from the containment
            fallback (``LanguageFeatures.containment_only``).

    Returns:
        :class:`QueryResult`.

    Raises:
        InputError: missing language features, empty text, masks without CLIP features
            (Felzenszwalb), unknown name in the table, no CLIP weights, feature dimension
            mismatch, or no rankable instance.
    """
    lang = source if isinstance(source, LoadedLanguage) else load_language(source)
    run_dir = lang.run_dir
    feats = lang.features.instance_features.astype(np.float32)
    if not lang.clip_available:
        raise InputError("this run's masks carry no CLIP features (Felzenszwalb masks), so "
                         "its instances have no language features", run_dir,
                         "recompute the masks with CLIP features (`instgs masks --mask-source "
                         "sam`), then rerun `instgs language RUN`")
    if isinstance(texts, (np.ndarray, torch.Tensor)):
        q = np.asarray(texts.detach().cpu() if isinstance(texts, torch.Tensor) else texts,
                       np.float32)
        if q.ndim == 1:
            q = q[None]
        names = [f"feature_{i}" for i in range(len(q))]
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    else:
        names = [texts] if isinstance(texts, str) else list(texts)
        if not names:
            raise InputError("no query text", None, 'pass at least one text, e.g. "chair"')
        q = encode_queries(names, text_features=text_features, clip=clip, clip_model=clip_model,
                           clip_pretrained=clip_pretrained, clip_checkpoint=clip_checkpoint)
    if q.shape[1] != feats.shape[1]:
        raise InputError(f"text features have {q.shape[1]} dimensions but the instance "
                         f"features {feats.shape[1]}", run_dir,
                         "encode the text with the CLIP model of the masks (ViT-B-16, 512-d)")
    norms = np.linalg.norm(feats, axis=1)
    rankable = (norms > 1e-6) & (lang.features.view_counts >= min_views)
    part = lang.features.containment_only
    if part is not None and not include_parts:
        rankable &= ~part
    if not rankable.any():
        raise InputError("no instance has a language feature (no SAM mask matched any "
                         f"instance in >= {min_views} views)", run_dir,
                         "check the masks/segmentation, lower --min-views, or rerun "
                         "`instgs language RUN --min-score` with a lower threshold")
    fn = feats / np.maximum(norms[:, None], 1e-12)
    if relevancy:
        negs = list(negatives)
        if not negs:
            raise InputError("relevancy needs at least one negative phrase", None,
                             "pass --negatives object things stuff texture")
        neg = encode_queries(negs, text_features=text_features, clip=clip,
                             clip_model=clip_model, clip_pretrained=clip_pretrained,
                             clip_checkpoint=clip_checkpoint)
        scores = relevancy_scores(fn, q, neg)
    else:
        scores = (q @ fn.T).astype(np.float32)
    scores = np.where(rankable[None], scores, np.nan).astype(np.float32)
    ids = lang.features.instance_ids
    matches, selected = [], set()
    for t, row in zip(names, scores):
        order = np.flatnonzero(rankable)
        order = order[np.argsort(-row[order], kind="stable")]
        kept = order if top_k <= 0 else order[:top_k]
        matches.append(TextMatch(t, ids[kept].astype(np.int64), row[kept].astype(np.float32)))
        selected.update(int(i) for i in ids[order[:max(select, 0)]])
        if threshold is not None:
            selected.update(int(i) for i in ids[order[row[order] >= threshold]])
    sel = np.array(sorted(selected), np.int64)
    anchor_mask = np.isin(lang.anchor_labels, sel) & (lang.anchor_labels >= 0)
    config = {"relevancy": relevancy, "negatives": list(negatives) if relevancy else [],
              "top_k": top_k, "select": select, "threshold": threshold,
              "min_views": min_views, "include_parts": include_parts,
              "text_source": ("array" if isinstance(texts, (np.ndarray, torch.Tensor)) else
                              "table" if text_features is not None else "clip")}
    return QueryResult(matches, scores, sel, anchor_mask,
                       np.repeat(anchor_mask, lang.n_offsets), relevancy, config)


def query_slug(texts: Sequence[str], max_len: int = 60) -> str:
    """File-name-safe slug of the texts: ``"red chair", "sofa" -> "red_chair+sofa"``."""
    parts = [re.sub(r"[^a-z0-9]+", "_", t.lower()).strip("_") or "q" for t in texts]
    slug = "+".join(parts)
    if len(slug) > max_len:
        import hashlib

        h = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:8]
        slug = slug[:max_len - 9].rstrip("_+") + "-" + h
    return slug


def save_query(run_dir: str | Path, result: QueryResult) -> Path:
    """Write ``RUN/query_<slug>.json`` (rankings, selection) and ``.npz`` (masks) atomically.

    The npz holds ``selected_ids`` [S] int64, ``anchor_mask`` [N] bool, ``gaussian_mask``
    [N * n_offsets] bool and ``scores`` [T, K] float32 (NaN = not ranked).

    Returns:
        The JSON path.
    """
    slug = query_slug([m.text for m in result.matches])
    base = RunPaths(Path(run_dir)).query(slug).with_suffix("")
    data = {
        "texts": [m.text for m in result.matches],
        "score": "lerf_relevancy" if result.relevancy else "cosine",
        "rankings": [{"text": m.text, "instance_ids": m.instance_ids.tolist(),
                      "scores": [round(float(s), 6) for s in m.scores]}
                     for m in result.matches],
        "selected_ids": result.selected_ids.tolist(),
        "num_selected_anchors": int(result.anchor_mask.sum()),
        "num_selected_gaussians": int(result.gaussian_mask.sum()),
        "masks_file": base.name + ".npz",
        "config": result.config,
    }
    atomic_save_npz(base.with_suffix(".npz"), selected_ids=result.selected_ids,
                    anchor_mask=result.anchor_mask, gaussian_mask=result.gaussian_mask,
                    scores=result.scores)
    return write_json(base.with_suffix(".json"), data)
