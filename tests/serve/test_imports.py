"""FastAPI, starlette and uvicorn are imported only inside kuairec.serve and the body of
the ``kuairec serve`` command; importing kuairec, its CLI or kuairec.serve loads none."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "kuairec"
WEB = ("fastapi", "starlette", "uvicorn")


def _web_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, inside a function) of every import of a web package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import | ast.ImportFrom):
                names = [a.name for a in child.names] if isinstance(child, ast.Import) else []
                names.append(getattr(child, "module", None) or "")
                if any(n.split(".")[0] in WEB for n in names):
                    found.append((child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def test_web_packages_are_imported_only_by_serve_and_the_serve_command() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for line, in_function in _web_imports(path):
            if rel.startswith("serve/"):
                continue
            assert rel == "cli/serve.py" and in_function, f"{rel}:{line} imports a web package"


def test_importing_kuairec_and_its_cli_loads_no_web_package() -> None:
    code = (
        "import sys, kuairec, kuairec.cli, kuairec.serve, kuairec.serve.state;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_app_module_holds_no_state_until_the_factory_runs() -> None:
    import kuairec.serve.app as app_module

    values = [v for k, v in vars(app_module).items() if not k.startswith("__")]
    from kuairec.serve.state import ServeState

    assert not any(isinstance(v, ServeState) for v in values)
    assert "app" not in vars(app_module)
