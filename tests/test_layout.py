"""The tree shows the architecture: each package imports only the layers below it, so a reader
knows what a file may touch (README, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "listserv"
# Bottom to top: a module may import its own layer and those before it.
LAYERS = [
    "mail",
    "logs",
    "config_values",
    "config",
    "store",
    "auth",
    "app",
    "delivery",
    "notices",
    "bounces",
    "digests",
    "archive",
    "posting",
    "moderation",
    "commands",
    "intake",
    "housekeeping",
    "web",
    "workers",
    "server",
    "cli",
    "__main__",
]


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("listserv."):
            found.append(node.module or "")
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("listserv.")]
    return found


def test_imports_only_go_down() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts or path == PACKAGE / "__init__.py":
            continue
        module = "listserv." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for imported in imports(path):
            if layer(imported) > layer(module):
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_every_package_states_its_contract() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name != "migrations":
            assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), init
