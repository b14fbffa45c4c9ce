"""``instgs``: one console entry point, one subcommand per pipeline stage.

    instgs demo                      generate the embedded synthetic scene and run the pipeline
    instgs train [--preset NAME] ... fit a Semantic-Scaffold-GS scene
    instgs masks ...                 SAM / Felzenszwalb masks + CLIP features (LangSplat layout)
    instgs segment RUN ...           bottom-up 3D instances
    instgs language RUN              CLIP feature per instance
    instgs query RUN "text"          rank instances by a text query
    instgs eval scannet ...          ScanNet instance / text-query evaluation

Each subcommand is a dataclass parsed by tyro. Subcommands are imported lazily so that
``instgs --help`` stays fast and a missing optional dependency only affects its own command.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

__all__ = ["main", "COMMANDS"]

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, attribute, one-line help)
    "demo": ("instgs.demo", "DemoCommand",
             "Generate the embedded synthetic scene, train, segment and evaluate it"),
    "train": ("instgs.train.cli", "TrainCommand", "Train a scene from posed photos"),
    "masks": ("instgs.masks.cli", "MasksCommand",
              "SAM (or Felzenszwalb) masks and per-mask CLIP features, resumable"),
    "segment": ("instgs.segment.cli", "SegmentCommand",
                "Group anchors into 3D instances (FPS seeds + voxel-adjacency graph)"),
    "language": ("instgs.language.cli", "LanguageCommand",
                 "Attach a CLIP feature to every instance (2D-3D mask association)"),
    "query": ("instgs.language.cli", "QueryCommand", "Find instances by free text"),
    "eval": ("instgs.eval.cli", "EvalCommand", "Evaluate a run (ScanNet protocols)"),
    "make-scene": ("instgs.data.synthetic", "SyntheticSceneConfig",
                   "Write the procedural synthetic scene (images, masks, GT) to a folder"),
}


def _usage() -> str:
    lines = ["usage: instgs COMMAND [ARGS...]", "", "commands:"]
    for name, (_, _, doc) in COMMANDS.items():
        lines.append(f"  {name:<12} {doc}")
    lines.append("")
    lines.append("Run `instgs COMMAND --help` for the options of a command.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instgs`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code (0 on success).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # OpenMP threads that spin while waiting double the CPU time on a busy laptop; let them
    # sleep instead (must be set before torch/OpenMP start; an explicit setting wins).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"instgs: unknown command {name!r}. Known: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module, attr, doc = COMMANDS[name]
    cmd_type = getattr(importlib.import_module(module), attr)
    parse = getattr(cmd_type, "parse_cli", None)
    if parse is not None:
        cmd = parse(rest, prog=f"instgs {name}")
    else:
        import tyro

        cmd = tyro.cli(cmd_type, args=rest, prog=f"instgs {name}", description=doc)
    from instgs.core.checks import InputError

    try:
        cmd.run()
    except InputError as e:
        print(f"instgs {name}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
