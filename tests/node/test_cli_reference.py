"""docs/cli-reference.md is the commands' own --help, kept exact."""

from __future__ import annotations

from node.cli.reference import reference
from tests.paths import PROJECT_ROOT


def test_cli_reference_is_current() -> None:
    doc = (PROJECT_ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    assert doc == reference(), "run: .venv/bin/python -m node.cli.reference > docs/cli-reference.md"
