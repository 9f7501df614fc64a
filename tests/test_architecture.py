"""The shape of the house: which package may import which, and no import cycles.

Read from the source (every import statement, module-level or inside a function), so a
lazy import cannot hide a cycle or a dependency running the wrong way.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(
    p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in {"tests", "bench"}
)
BRIDGES = [p for p in PACKAGES if p.endswith("_bridge")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


MODULES = project_modules()


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `name` imports (absolute names; project modules resolved to the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: {i for i in imports_of(name, path) if i in MODULES and i != name} for name, path in MODULES.items()}


def imports_from(package: str) -> set[str]:
    """Everything the modules of `package` import (any module, ours or not)."""
    return {i for name, path in MODULES.items() if name.split(".")[0] == package for i in imports_of(name, path)}


def top(names) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_the_scan_sees_the_packages():
    assert {"financing", "notifications", "core", "config"} <= set(PACKAGES)
    assert "financing.services.states" in GRAPH and "financing.services.leases" in GRAPH["financing.services.application"]


def test_no_import_cycles():
    cycles, done, stack = [], set(), []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(GRAPH):
        visit(node)
    assert cycles == [], "\n".join(" → ".join(c) for c in cycles)


def test_the_domain_never_talks_http_itself():
    for package in ("financing", "notifications", "core"):
        assert "requests" not in top(imports_from(package)), f"{package} imports requests"


def test_the_domain_does_not_know_the_partners():
    """`financing` reaches a bridge only through the registry's dotted paths (partners.py)."""
    assert top(imports_from("financing")) & set(BRIDGES) == set()
    assert top(imports_from("financing")) & {"sandboxes"} == set()


def test_notifications_know_nothing_of_cases():
    assert top(imports_from("notifications")) & {"financing", *BRIDGES, "sandboxes"} == set()


def test_the_shared_kit_depends_on_none_of_our_apps():
    assert top(imports_from("core")) & {"financing", "notifications", *BRIDGES, "sandboxes"} == set()


@pytest.mark.parametrize("bridge", BRIDGES)
def test_a_bridge_knows_the_ports_not_the_domain_nor_other_bridges(bridge):
    ours = top(imports_from(bridge)) & set(PACKAGES)
    assert ours - {bridge} <= {"financing", "notifications", "core", "partner_http"}, ours
    # Of financing, only the ports and what a webhook view hands its events to; of
    # notifications, only the SMS backend's interface.
    allowed = {"financing.ports", "financing.models", "financing.partners", "financing.services", "notifications.sms"}
    assert {i for i in imports_from(bridge) if i.split(".")[0] in ("financing", "notifications")} <= allowed


def test_sandboxes_judge_with_their_own_code():
    """A sandbox that validated with the code under test could never catch a wrong rule."""
    if "sandboxes" not in PACKAGES:
        pytest.skip("no sandboxes package yet")
    product = {"financing", "notifications", "core", "partner_http", *BRIDGES}
    sandbox_modules = [n for n in MODULES if n.startswith("sandboxes.") and ".management." not in n]
    for name in sandbox_modules:
        assert top(imports_of(name, MODULES[name])) & product == set(), name
