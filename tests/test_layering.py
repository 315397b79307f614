"""Domain modules stay plain Python: no Flask request state, so they run from a view, the CLI or a job."""

import ast
from pathlib import Path

import app

DOMAIN = Path(app.__file__).parent / "domain"
FORBIDDEN_MODULES = ("flask", "flask_login", "flask_wtf")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_domain_modules_do_not_import_flask_request_machinery():
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN_MODULES)
        for path in DOMAIN.glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_only_the_vambe_module_imports_an_http_client():
    package = Path(app.__file__).parent
    users = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if {"requests", "urllib3", "httpx"} & {m.split(".")[0] for m in imported_modules(path)}
    )
    # The sandbox transport plugs the in-process twin into the same requests session.
    assert users == ["sandbox/transport.py", "vambe.py"]
