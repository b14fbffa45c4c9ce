"""``instgs demo`` (the README's first command) gives one instance per object: the scores that
count false instances, in 3D and in 2D."""

from __future__ import annotations

import json


def test_demo_instances_are_objects_not_fragments(demo_run):
    scene, run_dir = demo_run
    res = json.loads((run_dir / "eval_scannet.json").read_text())
    inst, one = res["instance"], res["instance_matched"]
    assert inst["miou"] >= 94.0, inst
    assert one["f1_50"] >= 80.0 and one["pq"] >= 75.0, one   # 324 instances for 7 objects once
    frag = res["fragments"]     # was 315 of 324 instances, 8.6 % of the points
    assert frag["num_small"] <= 3 and frag["share_in_small"] <= 0.5, frag
    masks = json.loads((run_dir / "eval_masks.json").read_text())
    assert masks["num_views"] == 4 and set(masks["views"]) == {f"test_{i:03d}" for i in range(4)}
    assert masks["mean"]["miou"] >= 85.0 and masks["mean"]["f1_50"] >= 60.0, masks["mean"]
