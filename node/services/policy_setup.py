"""Placeholder until the policy service lands."""

from __future__ import annotations

from typing import Any


def install_default_policy(rt: Any) -> None:
    return None
