#!/usr/bin/env python
"""Where a segmented ScanNet run's 19-class text-query errors sit.

For a run segmented, given language features and scored by ``instgs eval scannet`` on the
rendered ScanNet scene (one anchor per GT vertex), prints:

* the wrong vertices split into "impure" (the vertex's instance is dominated by another GT
  class) and "misclassified" (the instance's dominant class is the vertex's own);
* the purity cap: the text-19 mIoU with each instance given the most frequent of the 19
  classes among its vertices;
* the wrong vertices by how the anchor got its label: observed (its features trained on a
  mask; ``segment``'s rule for ``projected`` runs), unobserved and labelled by a mask vote
  (``vote_unobserved`` replayed on the final labels), or unobserved and labelled along the
  surface / by the nearest anchor.

docs/evaluation.md ("Contact borders, and where the text-query error sits") reports it for
two training seeds.

Usage:
    python scripts/text_query_errors.py RUN --gt SCENE_DIR --text-features JSON
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--gt", required=True, help="rendered ScanNet scene folder (gt/)")
    ap.add_argument("--text-features", required=True, help="{NYU40 name: [512]} JSON")
    a = ap.parse_args()

    from instgs.eval.io import load_run_language, load_scannet_gt, load_text_features
    from instgs.eval.scannet import CLASS_SETS, NYU40_NAMES, classify_instances, \
        text_query_scores
    from instgs.run import load_instances, load_run, load_run_checkpoint
    from instgs.segment.render_support import collect_mask_hits, vote_unobserved

    gt = load_scannet_gt(a.gt)
    tf = load_text_features(a.text_features)
    lab = load_instances(a.run).anchor_labels
    if len(lab) != len(gt.semantic):
        raise SystemExit(f"{len(lab)} anchors but {len(gt.semantic)} GT vertices: this needs a "
                         "run whose anchors are the scene's vertices (render_scannet_views)")
    lang = load_run_language(a.run)
    ids = list(CLASS_SETS[19])
    text = np.stack([tf[NYU40_NAMES[c]] for c in ids])
    cls = np.asarray(ids)[classify_instances(lang.features, text, lang.view_counts, 2)]
    m = len(cls)
    sem = gt.semantic
    dom = np.array([np.bincount(sem[lab == k], minlength=41).argmax() for k in range(m)])
    inset = np.isin(sem, ids)
    wrong = inset & (cls[lab] != sem)
    impure = wrong & (dom[lab] != sem)
    full = text_query_scores(lab, lang.features, sem, tf, ids, lang.view_counts, 2)
    # the cap: every instance takes the most frequent of the 19 classes among its vertices
    best = [np.bincount(sem[(lab == k) & inset], minlength=41).argmax() for k in range(m)]
    cap_feats = np.stack([text[ids.index(d)] if d in ids else np.zeros(text.shape[1])
                          for d in best])
    cap = text_query_scores(lab, cap_feats, sem, tf, ids)
    print(f"text-19 mIoU {100 * full.miou:.2f}; purity cap {100 * cap.miou:.2f}")
    print(f"wrong vertices {wrong.sum()} of {inset.sum()}: impure {impure.sum()}, "
          f"misclassified instances {(wrong & ~impure).sum()}")

    ckpt = load_run_checkpoint(a.run, required=("anchors", "n_offsets"))
    hits = collect_mask_hits(load_run(a.run, checkpoint=ckpt), progress=False)
    observed = np.zeros(len(lab), bool)
    observed[hits.anchor[hits.strict]] = True
    _, voted = vote_unobserved(lab, observed, hits)
    rest = ~observed & ~voted
    for name, sel in (("observed", observed), ("unobserved, mask vote", voted),
                      ("unobserved, surface / nearest", rest)):
        n_set = int((inset & sel).sum())
        print(f"{name:32s} anchors {sel.sum():6d}  wrong {(wrong & sel).sum():5d} of "
              f"{n_set:6d} set vertices ({100 * (wrong & sel).sum() / max(n_set, 1):.1f} %)")


if __name__ == "__main__":
    main()
