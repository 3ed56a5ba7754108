"""Sharing policies: who receives which listings and which of their fields (DESIGN 3, 7).

Pure decisions, importing only ``protocol``: no I/O, no clock (time is a parameter).
``parse`` reads and checks the operator's YAML, ``compiled`` and ``evaluate`` turn a
listing and an audience into the view that may leave (or the reason nothing does),
``diff`` previews a policy change, ``names`` anonymises names without consent.

The function ``evaluate`` is imported from ``policies.evaluate`` (it is deliberately not
re-exported here, where it would hide the module of the same name).
"""

from .compiled import CompiledPolicy, compile_policy
from .diff import AudienceDiff, diff_policies, format_diff_table
from .evaluate import (
    Decision,
    Explanation,
    audience_for,
    explain,
    relay_view,
)
from .model import Audience, Policy, PolicyError, PolicyIssue, Relay, Rule
from .parse import parse_policy, policy_digest, policy_from_data
from .write import DEFAULT_POLICY_YAML, default_policy_yaml, policy_to_yaml

__all__ = [
    "DEFAULT_POLICY_YAML",
    "Audience",
    "AudienceDiff",
    "CompiledPolicy",
    "Decision",
    "Explanation",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "Relay",
    "Rule",
    "audience_for",
    "compile_policy",
    "default_policy_yaml",
    "diff_policies",
    "explain",
    "format_diff_table",
    "parse_policy",
    "policy_digest",
    "policy_from_data",
    "policy_to_yaml",
    "relay_view",
]
