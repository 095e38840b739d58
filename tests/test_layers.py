"""The package's import structure (docs/architecture.md, "Layers"): no import circle anywhere in
``discover/``, every import points to its own layer or a lower one, the DISCOVER codec imports
only the foundation, and inference never imports training.

Every import counts, also one inside a function: a circle through a lazy import is still a name
in the wrong place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "discover"

#: bottom to top; a module may import its own layer and the layers below it (the same list,
#: in the same words, is in docs/architecture.md)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "errors",
            "io",
            "images",
            "latent_masks",
            "registry",
            "weights",
            "checkpoints",
            "bd",
            "resampling",
            "shards",
            "rule_context",
            "batching",
        ),
    ),
    ("components", ("datasets", "discover_codec", "grounding", "labels")),
    ("composed", ("composition", "tasks", "codecs", "metrics")),
    ("training", ("training",)),
    ("pipeline", ("config", "plan", "stages", "plots")),
    ("entry points", ("cli",)),
]
LAYER_OF = {part: k for k, (_, parts) in enumerate(LAYERS) for part in parts}
#: no module outside training/ imports it: the train rules call the trainers
MAY_IMPORT_TRAINING: tuple[str, ...] = ()


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's own modules that ``path`` imports (at any depth of the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from discover.x import y`: y may be a module of the package or a name in x
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        out |= {n for n in names if n in known}
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, known) - {m} for m, p in mods.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def part(module: str) -> str:
    """The top-level part of ``discover`` a module belongs to (``discover.plan.rows`` -> plan)."""
    return module.split(".")[1] if "." in module else ""


def test_every_part_of_the_package_has_a_layer():
    parts = {part(m) for m in modules()} - {""}
    assert parts <= set(LAYER_OF), f"no layer for {sorted(parts - set(LAYER_OF))}"


def test_no_import_circle_in_the_package():
    assert circles(graph()) == []


def test_imports_point_to_the_same_layer_or_below():
    upward = [
        f"{a} ({LAYERS[LAYER_OF[part(a)]][0]}) -> {b} ({LAYERS[LAYER_OF[part(b)]][0]})"
        for a, targets in graph().items()
        if part(a)
        for b in sorted(targets)
        if part(b) and LAYER_OF[part(b)] > LAYER_OF[part(a)]
    ]
    assert upward == []


def test_the_discover_codec_imports_only_the_foundation():
    """Like CompressAI's models, the DISCOVER codec knows nothing of the benchmark above it."""
    bad = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        if part(a) == "discover_codec"
        for b in sorted(targets)
        if part(b) != "discover_codec" and LAYER_OF[part(b)] > 0
    ]
    assert bad == []


def test_inference_never_imports_training():
    bad = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        if part(a) != "training" and not a.startswith(MAY_IMPORT_TRAINING)
        for b in sorted(targets)
        if part(b) == "training"
    ]
    assert bad == []


def uncommented_function_imports(path: Path) -> list[str]:
    """Imports of the package's own modules inside a function with no comment on their line or
    on the comment lines right above their block of imports."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if not isinstance(sub, ast.ImportFrom) or not (sub.module or "").startswith("discover"):
                continue
            k = sub.lineno - 1
            explained = "#" in lines[k]
            while not explained and k > 0:
                k -= 1
                above = lines[k].strip()
                if above.startswith("#"):
                    explained = True
                elif not above.startswith(("from ", "import ")):
                    break
            if not explained:
                found.append(
                    f"{path.relative_to(ROOT)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}"
                )
    return found


def test_function_level_imports_say_why():
    """An import of the package's own modules sits at the top of the module, unless it keeps a
    heavy dependency out of jobs that do not need it; then a comment says so."""
    bad = [line for p in sorted(PACKAGE.rglob("*.py")) for line in uncommented_function_imports(p)]
    assert bad == []


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(edges, expected):
    assert circles(edges) == expected


def test_a_circle_introduced_in_the_package_is_found(tmp_path):
    """The checks read real files: two modules importing each other are reported."""
    (tmp_path / "discover").mkdir()
    (tmp_path / "discover/__init__.py").write_text("")
    (tmp_path / "discover/a.py").write_text("from discover.b import x\n")
    (tmp_path / "discover/b.py").write_text("def f():\n    from discover.a import y\n")
    mods = {
        ".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (tmp_path / "discover").rglob("*.py")
    }
    edges = {m: imports(p, set(mods)) - {m} for m, p in mods.items()}
    assert circles(edges) == [["discover.a", "discover.b"]]


def test_the_architecture_page_names_the_same_layers():
    """docs/architecture.md's layer table and this test's LAYERS stay one list."""
    text = (ROOT / "docs/architecture.md").read_text()
    table = text.split("## Layers", 1)[1].split("\n\n")[2]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    documented = [
        (name.strip(), tuple(p.strip() for p in parts.split(","))) for name, parts in rows
    ]
    assert documented == LAYERS
