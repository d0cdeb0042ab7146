"""The package's structure (issue 15): no import cycles, no module a newcomer cannot hold in their head,
and the layering pages -> ui -> noisycore with a core that never imports Streamlit.

Imports are read from the source (every ``import`` / ``from ... import``, the lazy ones inside functions
included), so a cycle hidden behind a function-level import fails here as well.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "noisycore"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(folder: Path = PACKAGE) -> dict:
    return {module_name(p): p for p in sorted(folder.rglob("*.py"))}


def imported(path: Path, known: set) -> set:
    """The noisycore modules ``path`` imports anywhere in its body (a name imported from a package is
    the submodule when one of that name exists, else the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("noisycore"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return out


def import_graph() -> dict:
    mods = modules()
    return {name: imported(path, set(mods)) - {name} for name, path in mods.items()}


def find_cycle(graph: dict):
    """One cycle as a list [a, b, ..., a], or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        colour[node] = "black"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in colour:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle_and_a_clean_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imported_reads_lazy_imports_and_submodules(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from noisycore import util\ndef f():\n    from noisycore.datasets import base\n"
                   "    import noisycore.runs\n    from noisycore.config import TrainConfig\n")
    known = {"noisycore", "noisycore.util", "noisycore.datasets", "noisycore.datasets.base", "noisycore.runs",
             "noisycore.config"}
    assert imported(src, known) == {"noisycore.util", "noisycore.datasets.base", "noisycore.runs", "noisycore.config"}


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 30, "the walk found too few modules"
    assert "noisycore.detectors" in graph["noisycore.detect"], "the walk missed a top-level import"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_the_size_limit(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}): split it by idea"


# The layers of docs/architecture.md, first to last: a module imports only modules of its own layer or an
# earlier one (a package's __init__ and its submodules share a layer). Within a layer, no cycles.
LAYERS = (
    ("foundation", ("errors", "util", "catalog", "console")),
    ("settings", ("config", "schedules", "hardware", "cliargs")),
    ("data", ("datasets", "human_labels", "noise", "labelsets", "naming", "workspaces")),
    ("runs and models", ("runs", "pipeline", "models", "calibration", "backbones", "embeddings", "losses", "aum", "detectors",
                         "quality", "baseline")),
    ("reading runs", ("evaluation", "detect", "dataquality", "review", "teamreview", "triage", "charts")),
    ("training", ("averaging", "methods", "forward", "resume", "epoch_eval", "train", "jobs", "executors", "cluster")),
    ("workflows", ("corrections", "crossval", "sweeps", "fanout", "teaching", "cli")),
)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0          # the package itself
    for i, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it (and to docs/architecture.md)")


def test_every_module_imports_only_its_own_or_earlier_layers():
    graph = import_graph()
    wrong = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
             for a, targets in sorted(graph.items()) for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not wrong, "\n".join(wrong)


def test_the_layer_table_is_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, modules_ in LAYERS:
        row = next((line for line in doc.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"docs/architecture.md has no row for the layer {name!r}"
        for m in modules_:
            assert f"`{m}" in row, f"docs/architecture.md's {name!r} row does not list {m}"


def test_core_never_imports_streamlit_or_the_ui():
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for m in mods:
                assert not m.startswith(("streamlit", "ui", "app_pages")), f"{name} imports {m}"


def test_light_modules_stay_free_of_tensorflow():
    """The pages and the CLI import these before any training; TensorFlow may load only lazily."""
    graph = import_graph()
    for name in ("noisycore.catalog", "noisycore.config", "noisycore.util", "noisycore.errors"):
        top = set()
        for node in ast.parse(modules()[name].read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                top |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                top.add(node.module or "")
        assert not {m for m in top if m.split(".")[0] in ("tensorflow", "keras")}, name
    assert graph["noisycore.catalog"] <= {"noisycore.errors"}, graph["noisycore.catalog"]
    assert graph["noisycore.util"] <= {"noisycore.errors"}, graph["noisycore.util"]


def test_pages_draw_tables_through_show_table():
    """Issue 33, finding 11: a table drawn with st.dataframe / st.data_editor directly keeps its type size when
    presenter mode changes (its canvas reads the root font size once); ui.common.show_table redraws it."""
    direct = []
    for path in sorted([ROOT / "app.py", *(ROOT / "app_pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("dataframe", "data_editor")):
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert direct == [], direct
