"""Layers import downwards only.

The layer order, lowest first (docs/design.md). A module may import from its own layer and
the layers below it, never from a layer above; imports inside functions count too.

    0  core        instgs.core, instgs._compat, instgs._native, instgs._cli
    1  data        scene readers -> SceneData (instgs.data.types: no reader imports it back)
    2  render      rasterizers, projection, visibility
    3  clip        the open_clip wrapper (below masks, which use it for mask features)
    4  masks       SAM / Felzenszwalb masks, LangSplat layout
    5  model       the Semantic-Scaffold-GS model
    6  losses      photometric and mask losses
    7  train cfg   instgs.train.config (+ instgs.train.densify, whose DensifyConfig it holds)
    8  run         the run layer: paths, checkpoints, artifacts, load_run
    9  segment     instances from a run
    10 language    CLIP features per instance, text queries
    11 eval        benchmark evaluators
    12 export      3DGS files of a run
    13 train       the trainer (orchestration)
    14 viewer      the viser app (instgs.viewer)
    15 pointcloud  the 3D-input track (uses core and run only)
    16 app         instgs.cli, instgs.demo, instgs.pipeline

So segment/, language/ and eval/ reach a trained run through instgs.run only, and of
instgs.train they may import the config alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("instgs.core", "instgs._compat", "instgs._native", "instgs._cli")),
    ("data", ("instgs.data",)),
    ("render", ("instgs.render",)),
    ("clip", ("instgs.clip",)),
    ("masks", ("instgs.masks",)),
    ("model", ("instgs.model",)),
    ("losses", ("instgs.losses",)),
    ("train-config", ("instgs.train.config", "instgs.train.densify")),
    ("run", ("instgs.run",)),
    ("segment", ("instgs.segment",)),
    ("language", ("instgs.language",)),
    ("eval", ("instgs.eval",)),
    ("export", ("instgs.export",)),
    ("train", ("instgs.train",)),
    ("viewer", ("instgs.viewer", "viewer")),
    ("pointcloud", ("instgs.pointcloud",)),
    ("app", ("instgs.cli", "instgs.demo", "instgs.pipeline", "instgs")),
]


def layer_of(module: str) -> int:
    """Index of the most specific layer prefix matching ``module`` (-1 = not ours)."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    mod = _module_name(path, root)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else []
                out += [(node.lineno, n) for n in names] or [(node.lineno, target)]
            elif node.module:
                out.append((node.lineno, node.module))
                out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                        if layer_of(f"{node.module}.{a.name}") > layer_of(node.module)]
    return out


def violations(root: Path, packages: tuple[str, ...] = ("instgs", "viewer")) -> list[str]:
    """Every import from a higher layer, as ``file:line: a (layer) imports b (layer)``."""
    bad = []
    for pkg in packages:
        folder = root / pkg
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            mod = _module_name(path, root)
            if pkg == "viewer":
                mod = "viewer." + mod.partition(".")[2] if "." in mod else "viewer"
            src = layer_of(mod)
            for line, target in imports_of(path, root):
                dst = layer_of(target)
                if src >= 0 and dst > src and target != "instgs":
                    bad.append(f"{path.relative_to(root)}:{line}: {mod} ({LAYERS[src][0]}) "
                               f"imports {target} ({LAYERS[dst][0]})")
    return bad


def test_layers_import_downwards_only():
    bad = violations(REPO)
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_every_package_has_a_layer():
    for path in (REPO / "instgs").rglob("*.py"):
        mod = _module_name(path, REPO)
        assert layer_of(mod) >= 0, f"{mod}: add it to LAYERS"


def test_the_checker_catches_an_upward_import(tmp_path):
    (tmp_path / "instgs" / "segment").mkdir(parents=True)
    (tmp_path / "instgs" / "segment" / "x.py").write_text(
        "def f():\n    from instgs.train.trainer import Trainer\n"
        "from instgs.train.config import TrainConfig\n")
    (tmp_path / "instgs" / "masks").mkdir()
    (tmp_path / "instgs" / "masks" / "y.py").write_text("from ..language import clip\n")
    bad = violations(tmp_path)
    assert len(bad) == 2, bad
    assert any("x.py:2" in b and "instgs.train.trainer (train)" in b for b in bad), bad
    assert any("y.py:1" in b and "instgs.language (language)" in b for b in bad), bad


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles (strongly connected components > 1) of the module import graph of ``instgs``,
    imports inside functions included."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    mods = {_module_name(p, root): p for p in (root / "instgs").rglob("*.py")}
    names = sorted(mods)
    index = {m: i for i, m in enumerate(names)}
    rows, cols = [], []
    for m, p in mods.items():
        for _, target in imports_of(p, root):
            while target and target not in index:
                target = target.rpartition(".")[0]
            pkg_init = m if p.name == "__init__.py" else None
            if target and target != m and target != pkg_init and not m.startswith(target + "."):
                rows.append(index[m])
                cols.append(index[target])
    graph = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    n, label = connected_components(graph, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for i, lab in enumerate(label):
        groups.setdefault(int(lab), []).append(names[i])
    return [g for g in groups.values() if len(g) > 1]


def test_no_import_cycles():
    cycles = import_cycles(REPO)
    assert not cycles, f"modules that import each other: {cycles}"
