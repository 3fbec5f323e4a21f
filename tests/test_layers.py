"""Imports point down or sideways (docs/architecture.md): a test that fails on an upward import, anywhere in a module
(inside functions too), and on a cycle between subpackages of one layer."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mrtrans"

# Bottom to top; a module may import modules of its own layer or of layers below.
LAYERS = [
    ("words", ["mrtrans", "mrtrans.errors", "mrtrans.domain"]),
    (
        "base",
        [
            "mrtrans.io",
            "mrtrans.outputs",
            "mrtrans.config",
            "mrtrans.resources",
            "mrtrans.provenance",
            "mrtrans.logs",
            "mrtrans.devices",
        ],
    ),
    ("formats", ["mrtrans.checkpoint", "mrtrans.synth", "mrtrans.data_prep.*"]),
    ("blocks", ["mrtrans.networks.*", "mrtrans.losses.*", "mrtrans.evaluation.metrics"]),
    ("models", ["mrtrans.models"]),
    ("methods", ["mrtrans.methods.*"]),
    (
        "engines",
        ["mrtrans.training.*", "mrtrans.inference.*", "mrtrans.evaluation.*", "mrtrans.export", "mrtrans.monai"],
    ),
    ("experiments", ["mrtrans.experiments.*"]),
    ("api", ["mrtrans.api"]),
    ("cli", ["mrtrans.cli", "mrtrans.__main__"]),
]


def module_name(path: Path) -> str:
    parts = ("mrtrans", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    # the most specific pattern wins: mrtrans.evaluation.metrics is a block, the rest of evaluation an engine
    def matches(pattern: str) -> bool:  # "x.*" covers the package x itself too
        return fnmatch.fnmatch(module, pattern) or (pattern.endswith(".*") and module == pattern[:-2])

    found = [(len(p), i) for i, (_, patterns) in enumerate(LAYERS) for p in patterns if matches(p)]
    if not found:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it (and to docs/architecture.md)")
    return max(found)[1]


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mrtrans":
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "mrtrans"}
    return out


def _graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def upward(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{src} ({LAYERS[layer(src)][0]}) imports {dst} ({LAYERS[layer(dst)][0]})"
        for src, targets in graph.items()
        for dst in targets
        if layer(dst) > layer(src)
    ]


def cycles(graph: dict[str, set[str]]) -> list[str]:
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges = {(unit(src), unit(dst)) for src, targets in graph.items() for dst in targets if unit(src) != unit(dst)}
    return sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)


def test_every_import_points_down_or_sideways() -> None:
    assert not upward(_graph()), "\n".join(upward(_graph()))


def test_no_two_subpackages_import_each_other() -> None:
    assert not cycles(_graph()), cycles(_graph())


def test_the_layer_rules_can_fail() -> None:
    assert layer("mrtrans.cli") > layer("mrtrans.api") > layer("mrtrans.networks.unet") > layer("mrtrans.domain")
    assert layer("mrtrans.evaluation.metrics") < layer("mrtrans.evaluation.evaluate")
    assert upward({"mrtrans.networks.unet": {"mrtrans.training.loop"}})  # a network that imports the loop
    assert cycles(
        {"mrtrans.inference.translate": {"mrtrans.evaluation.x"}, "mrtrans.evaluation.y": {"mrtrans.inference"}}
    )


def test_no_function_in_the_package_is_longer_than_80_lines() -> None:
    """Orchestrators are split into named steps a reader can follow (issue 36): a longer function fails here."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
