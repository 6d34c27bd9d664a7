"""The code's shape, as ARCHITECTURE.md and the README describe it: one folder a feature,
dependencies pointing one way, and functions short enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ("alerts", "triage", "summaries")
MAX_FUNCTION_LINES = 80


def modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_dependencies_point_one_way() -> None:
    """webhooks -> storage <- bot: storage imports neither, webhooks never imports bot."""
    for path in modules("storage"):
        assert not {m for m in imported(path) if m.startswith(("bot", "webhooks"))}, path
    for path in modules("webhooks"):
        assert not {m for m in imported(path) if m.startswith("bot")}, path


@pytest.mark.parametrize("feature", FEATURES)
def test_features_talk_only_through_the_shared_slack_and_shell_modules(feature: str) -> None:
    others = tuple(f"bot.{other}" for other in FEATURES if other != feature)
    for path in modules(f"bot/{feature}"):
        crossing = {m for m in imported(path) if m.startswith(others)}
        assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}"


def test_shared_slack_plumbing_depends_on_no_feature() -> None:
    features = ("webhooks", "bot.cli", "bot.service", *(f"bot.{f}" for f in FEATURES))
    for path in modules("bot/slack"):
        assert not {m for m in imported(path) if m.startswith(features)}, path


def test_bot_top_level_is_the_app_shell() -> None:
    top = sorted(p.name for p in (ROOT / "bot").glob("*.py"))
    assert len(top) <= 6, top
    assert {p.name for p in (ROOT / "bot").iterdir() if p.is_dir() and p.name != "__pycache__"} >= {
        *FEATURES,
        "slack",
        "cli",
    }


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for package in ("bot", "webhooks", "storage"):
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long
