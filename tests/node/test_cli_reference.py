"""docs/cli-reference.md is the commands' own --help, kept exact.

The reference is generated in a fresh process, as ``python -m node.cli.reference`` does:
click caches each command's help option on first use, so a test that invoked a command
on its own earlier in this process would change what ``--help`` shows here.
"""

from __future__ import annotations

import subprocess
import sys

from tests.paths import PROJECT_ROOT


def test_cli_reference_is_current() -> None:
    doc = (PROJECT_ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    fresh = subprocess.run(
        [sys.executable, "-m", "node.cli.reference"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert doc == fresh, "run: .venv/bin/python -m node.cli.reference > docs/cli-reference.md"
