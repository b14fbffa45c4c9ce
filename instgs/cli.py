"""``instgs``: one console entry point, one subcommand per pipeline stage.

    instgs demo                      generate the embedded synthetic scene and run the pipeline
    instgs run --images DIR | --data SCENE   the whole pipeline, resumable (--scenes: Ray)
    instgs prepare --images DIR --out SCENE  structure from motion for unposed photos
    instgs train [--preset NAME] ... fit a Semantic-Scaffold-GS scene
    instgs masks ...                 SAM / Felzenszwalb masks + CLIP features (LangSplat layout)
    instgs segment RUN ...           bottom-up 3D instances
    instgs language RUN              CLIP feature per instance
    instgs query RUN "text"          rank instances by a text query
    instgs eval scannet ...          ScanNet instance / text-query evaluation
    instgs export RUN ...            standard 3DGS files of a run (whole, subsets, per instance)
    instgs render RUN|PLY --out DIR  pictures of a run or a 3DGS file
    instgs view RUN                  the browser viewer

Each subcommand is a dataclass parsed by tyro whose ``run()`` calls the stage's function
(``instgs.segment.run(run_dir, cfg)`` and so on) and prints. Subcommands are imported lazily
so that ``instgs --help`` stays fast and a missing optional dependency only affects its own
command. Bad input exits with code 1 and one ``error:`` line (:mod:`instgs._cli`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS"]

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, attribute, one-line help)
    "demo": ("instgs.demo", "DemoCommand",
             "Generate the embedded synthetic scene, train, segment and evaluate it"),
    "run": ("instgs.pipeline.cli", "RunCommand",
            "Photos or a scene -> masks, train, segment, language, export; resumable; Ray"),
    "prepare": ("instgs.pipeline.cli", "PrepareCommand",
                "Pose a folder of photos with structure from motion (pycolmap)"),
    "train": ("instgs.train.cli", "TrainCommand", "Train a scene from posed photos"),
    "masks": ("instgs.masks.cli", "MasksCommand",
              "SAM (or Felzenszwalb) masks and per-mask CLIP features, resumable"),
    "segment": ("instgs.segment.cli", "SegmentCommand",
                "Group anchors into 3D instances (FPS seeds + voxel-adjacency graph)"),
    "language": ("instgs.language.cli", "LanguageCommand",
                 "Attach a CLIP feature to every instance (2D-3D mask association)"),
    "query": ("instgs.language.cli", "QueryCommand", "Find instances by free text"),
    "eval": ("instgs.eval.cli", "EvalCommand", "Evaluate a run (ScanNet protocols)"),
    "export": ("instgs.export.cli", "ExportCommand",
               "Bake a run into 3DGS files (PLY, compressed PLY, .splat, SPZ); subsets"),
    "render": ("instgs.export.cli", "RenderCommand",
               "PNG pictures (and MP4) of a run or a 3DGS PLY: rgb, instances, relevancy, "
               "depth"),
    "view": ("instgs.viewer.cli", "ViewCommand",
             "Open a run in the browser: instances, text queries, click, export (viser)"),
    "make-scene": ("instgs.data.synthetic", "SyntheticSceneConfig",
                   "Write the procedural synthetic scene (images, masks, GT) to a folder"),
}


def _usage() -> str:
    lines = ["usage: instgs [-q | -v] COMMAND [ARGS...]", "", "commands:"]
    for name, (_, _, doc) in COMMANDS.items():
        lines.append(f"  {name:<12} {doc}")
    lines.append("")
    lines.append("Run `instgs COMMAND --help` for the options of a command; -q prints warnings "
                 "only, -v debug messages.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instgs`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 1 on bad input (one ``error:`` line on stderr),
        2 when no command is given.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = [a for a in argv if a not in ("-q", "--quiet", "-v", "--verbose")]
    if not rest or rest[0] in ("-h", "--help"):
        print(_usage())
        return 0 if rest else 2
    name = rest[0]
    if name not in COMMANDS:
        print(f"instgs: error: unknown command {name!r}. Known: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 1
    from instgs._cli import run_main

    module, attr, doc = COMMANDS[name]
    prog = f"instgs {name}"

    def parse(a: list[str]):
        from instgs._cli import tyro_parse

        cmd_type = getattr(importlib.import_module(module), attr)
        custom = getattr(cmd_type, "parse_cli", None)
        if custom is not None:
            return custom(a, prog=prog)
        return tyro_parse(cmd_type, a, prog, description=doc)

    return run_main(prog, argv[:argv.index(name)] + argv[argv.index(name) + 1:], parse)


if __name__ == "__main__":
    raise SystemExit(main())
