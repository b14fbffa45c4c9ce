"""The embedded default scene: textured objects on a table, ray-cast by project code.

``make_synthetic_scene`` writes a complete scene folder that needs no download and no
model weights, in the OpenGaussian ScanNet-like layout written by
``shared/tools/render_scannet_views.py`` (the benchmark-data generator), so the same
readers, trainers and evaluators run on it:

```
<out_dir>/color/<stem>.png                      RGB renders (lossless; or JPEG q95)
<out_dir>/transforms_train.json                 Blender/NeRF, OpenGL camera axes, c2w
<out_dir>/transforms_train_opencv.json          same poses, OpenCV camera axes
<out_dir>/transforms_test.json (+ _opencv)      held-out views (stems test_000, ...)
<out_dir>/points3d.ply                          surface samples: x,y,z float32 + r,g,b uchar
<out_dir>/gt/instance_per_vertex.npy            int32 [P], GT instance id per point (>= 1)
<out_dir>/gt/nyu40_per_vertex.npy               int32 [P], NYU40 id per point
<out_dir>/gt/instances.json                     instance id -> nyu40 / names / point count
<out_dir>/gt/nyu40_text_feature_names.json      NYU40 id -> key of text_features.json
<out_dir>/gt/{instance,semantic,valid}/<stem>.png  per-pixel GT (uint16 / uint8 / uint8)
<out_dir>/language_features/<stem>_s.npy        int16 [4, H, W] cumulative mask ids, -1 = none
<out_dir>/language_features/<stem>_f.npy        float16 [M, 512] unit oracle features
<out_dir>/language_features/masks_meta.json     per view, per level: [id, nyu40, [inst], tag, px]
<out_dir>/language_features_clean/...           GT instance masks on all levels, noiseless rows
<out_dir>/text_features.json                    class name -> 512 floats (the oracle "CLIP" table;
                                                also keyed by the NYU40 names of the GT ids)
<out_dir>/generation_stats.json, README.md, SHA256SUMS
<out_dir>/scene_complete.json                   written last: generation parameters
```

Scene: a checkered floor (instance 1, NYU40 ``floor``), a table with a wood-like top and
four legs (instance 2, ``table``) and ``num_objects`` boxes / balls / cans (instances 3...)
with distinct procedural solid textures (checkerboard, stripes, value noise, gradient,
dots). Shading is Lambertian, one directional light plus ambient, no shadows, so the
colour of a surface point does not depend on the view and ``points3d.ply`` carries exactly
the colours seen in the images. Every pixel is one exact ray through its centre (no
anti-aliasing), so the GT instance maps are exact.

The per-mask features are an ORACLE stand-in for CLIP image features (as in the ScanNet
tool): ``normalise(text[class] + N(0, s^2 I))`` with ``s = sqrt((1/feature_cos^2 - 1)/512)``,
where ``text[class]`` is a deterministic random unit vector per class name (seeded by the
name, not by the scene seed), stored in ``text_features.json`` so that text queries can be
tested without CLIP weights. They are not CLIP features of any kind.

Masks (LangSplat layout, mirroring the ScanNet tool's level order and id rules): levels
are 0 = default, 1 = small, 2 = medium, 3 = large; default holds the medium masks (same
masks, same feature rows) because one [H, W] map cannot hold overlapping masks; ids are
cumulative across levels in that order and sorted by area (then key) within a level.
Parts are cut in 3D (object frame), so they are consistent across views:
large = whole instances; medium = the floor split at x = 0, the table into top / legs,
each object into its lower / upper half; small = floor quadrants, table-top quadrants and
each leg, each object half split again at its local x = 0.

References:
    ``shared/tools/render_scannet_views.py`` (layout, GT format, oracle features);
    LangSplat ``preprocess.py`` (``_s.npy`` / ``_f.npy`` layout); OpenGaussian
    ``scene/dataset_readers.py`` (Blender-style transforms with ``fl_x``/``fl_y``).

Package layout (one job per module):
    ``scene``     primitives, instances, :func:`build_scene` and the table dimensions;
    ``raycast``   :func:`raycast` (vectorised) and :func:`raycast_reference` (its slow twin);
    ``shading``   normals, procedural solid textures, Lambertian shading, 3D part labels;
    ``classes``   class names / NYU40 ids and the oracle text features;
    ``cameras``   :func:`intrinsics`, :func:`camera_poses` and pixel rays;
    ``render``    :func:`render_view` and :func:`sample_points`;
    ``masks``     :func:`build_masks` (the SAM-style mask levels);
    ``files``     PLY / transforms / checksum / README writers;
    ``writer``    :func:`make_synthetic_scene`, :class:`SyntheticSceneConfig`,
                  :func:`read_marker`.
"""

from __future__ import annotations

from .cameras import camera_poses, intrinsics
from .classes import CLASS_IDS, CLASSES, text_feature, text_feature_table
from .masks import LEVEL_NAMES, build_masks
from .raycast import raycast, raycast_reference
from .render import render_view, sample_points
from .scene import SyntheticScene, build_scene
from .writer import FORMAT_VERSION, SyntheticSceneConfig, make_synthetic_scene, read_marker

# The other constants and dataclasses of the former single module stay importable from
# here (not in ``__all__``; redundant aliases mark them as re-exports).
from .cameras import SCANNET_FX as SCANNET_FX, SCANNET_W as SCANNET_W  # isort: skip
from .classes import DISTRACTOR_CLASSES as DISTRACTOR_CLASSES  # isort: skip
from .classes import FEATURE_DIM as FEATURE_DIM, NYU40_NAMES as NYU40_NAMES  # isort: skip
from .masks import MERGE_ADJACENCY_PX as MERGE_ADJACENCY_PX  # isort: skip
from .render import POINT_SHARES as POINT_SHARES  # isort: skip
from .scene import FLOOR_HALF as FLOOR_HALF, TABLE_HALF as TABLE_HALF  # isort: skip
from .scene import LEG_INSET as LEG_INSET, LEG_RADIUS as LEG_RADIUS  # isort: skip
from .scene import TABLE_TOP as TABLE_TOP, Instance as Instance  # isort: skip
from .scene import Primitive as Primitive  # isort: skip
from .shading import AMBIENT as AMBIENT, LIGHT_DIR as LIGHT_DIR  # isort: skip

__all__ = ["SyntheticSceneConfig", "make_synthetic_scene", "SyntheticScene", "build_scene",
           "camera_poses", "render_view", "build_masks", "sample_points", "raycast",
           "raycast_reference", "text_feature", "text_feature_table", "read_marker",
           "intrinsics", "CLASSES", "CLASS_IDS", "LEVEL_NAMES", "FORMAT_VERSION"]
