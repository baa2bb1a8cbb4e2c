"""The folders' import rules, as docs/architecture.md states them: each area imports only what its
paragraph there allows (every import, the lazy ones inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("schemas", "transforms", "sinks", "pipelines", "dashboards", "seaport")
SHARED = {"seaport.errors"}  # the one error type every layer raises

# area -> the areas (or modules) it may import, besides itself and SHARED
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "transforms": {"schemas"},
    "sinks": {"schemas", "transforms", "dashboards.views"},
    "seaport.kafka": {"schemas", "transforms.policy"},
    "seaport.collector": {"schemas", "seaport.kafka", "seaport.options"},
    "pipelines": {"schemas", "transforms", "sinks", "seaport.kafka", "seaport.options", "seaport.progress", "dashboards.html"},
    "dashboards": {"seaport.options"},
    "seaport.commands": {"schemas", "transforms", "sinks", "dashboards", "seaport.kafka", "seaport.options", "seaport.residency"},
    "seaport.devtools": {"schemas", "transforms", "sinks", "pipelines", "seaport.kafka", "seaport.options", "seaport.progress"},
    "seaport": {"sinks.trail", "transforms.redact", "seaport.residency"},  # the CLI, its options, progress, residency
}
SUBPACKAGES = ("seaport.kafka", "seaport.collector", "seaport.commands", "seaport.devtools")


def area_of(module: str) -> str:
    for sub in SUBPACKAGES:
        if module == sub or module.startswith(sub + "."):
            return sub
    return module.split(".")[0]


def imports(path: Path) -> set[tuple[str, ...]]:
    """Every import of ours, as the modules it may be: `from sinks import trail` is `sinks` or
    `sinks.trail`, `from sinks.trail import record` is `sinks.trail` (or `sinks.trail.record`)."""
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update((node.module, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update((alias.name,) for alias in node.names)
    return {names for names in found if names[0].split(".")[0] in OURS}


def allowed(area: str, module: str) -> bool:
    if area_of(module) == area or module in SHARED:
        return True
    return any(module == rule or module.startswith(rule + ".") for rule in ALLOWED[area])


def sources() -> list[Path]:
    return sorted(p for top in OURS for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_folder_may(path: Path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    area = area_of(module)
    wrong = sorted(names[-1] for names in imports(path) if not any(allowed(area, m) for m in names))
    assert wrong == [], f"{module} ({area}) imports {wrong}: see docs/architecture.md"


def test_the_rules_catch_a_wrong_import():
    """The rules are not vacuous: the Kafka layer importing the CLI, production code importing a
    developer tool, a transform importing the sink are each refused."""
    assert not allowed("seaport.kafka", "seaport.cli")
    assert not allowed("seaport.kafka", "seaport.options")
    assert not allowed("pipelines", "seaport.devtools.simulate")
    assert not allowed("seaport.commands", "seaport.devtools.broker")
    assert not allowed("transforms", "sinks.warehouse")
    assert not allowed("seaport.collector", "seaport.devtools.loadtest")
    assert allowed("seaport.collector", "seaport.kafka.topics")


def test_every_folder_of_the_code_has_rules_and_a_paragraph():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for area in ALLOWED:
        assert f"`{area.replace('.', '/')}/`" in doc, f"docs/architecture.md says nothing of {area}"
    areas = {area_of(".".join(p.relative_to(ROOT).with_suffix("").parts)) for p in sources()}
    assert areas == set(ALLOWED)
