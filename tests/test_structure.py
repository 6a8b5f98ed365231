"""The house rules of DESIGN.md, checked on the source: layers import in one direction,
pages import `explorer` not `ssd`, and no function is longer than 80 lines of code."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80  # lines from `def` to the end, the docstring not counted


def _py_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("folder,forbidden", [
    ("ssd", {"streamlit", "plotly", "explorer", "pages"}),
    ("explorer", {"streamlit", "pages"}),
    ("pages", {"ssd"}),
])
def test_layers_import_in_one_direction(folder, forbidden):
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & forbidden) for p in _py_files(folder)}
    assert not {k: v for k, v in bad.items() if v}


def _function_lines(node: ast.AST) -> int:
    """Lines of a function from its decorators and `def` to its end, its docstring not
    counted (blank and comment lines are: they are part of its length)."""
    body = node.body
    doc = set()
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = set(range(body[0].lineno, body[0].end_lineno + 1))
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return sum(1 for i in range(start, node.end_lineno + 1) if i not in doc)


def test_no_function_over_80_lines():
    long = []
    for p in _py_files("ssd", "explorer", "pages") + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _function_lines(node)
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines (split them):\n" + "\n".join(long)
