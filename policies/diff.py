"""Dry run of a policy change: per audience, what starts or stops leaving the node.

Saving a policy narrows or widens what counterparts receive, and narrowing means signed
retractions to every holder (DESIGN 3.3, 7). Before applying, the operator sees, per
audience, which listings become visible or invisible and which fields appear or disappear,
computed by evaluating every listing under both policies (the same code that builds
the feeds, so the preview cannot disagree with what is sent).

Field counts cover the listings visible under both policies; listings that appear or
disappear as a whole are counted in ``becoming_visible`` / ``becoming_invisible`` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.listing import ALL_SHAREABLE_FIELDS

from .compiled import CompiledPolicy, compile_policy
from .evaluate import audience_for, evaluate
from .model import Audience, Policy

NESTED_KEYS = frozenset(path.partition(".")[0] for path in ALL_SHAREABLE_FIELDS if "." in path)
"""Fields whose parts a policy can name separately (contact, organization, parties)."""


@dataclass(frozen=True, slots=True)
class AudienceDiff:
    """What a policy change means for one audience."""

    audience: str
    visible_before: int
    visible_after: int
    becoming_visible: tuple[str, ...] = ()
    becoming_invisible: tuple[str, ...] = ()
    fields_appearing: dict[str, int] = field(default_factory=dict)
    fields_disappearing: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(
            self.becoming_visible
            or self.becoming_invisible
            or self.fields_appearing
            or self.fields_disappearing
        )


def view_paths(fields: Mapping[str, Any]) -> frozenset[str]:
    """Field paths present in a view's ``fields``, in the vocabulary of rules:
    ``organization.type`` for the parts of nested objects, the key for anything else."""
    out: set[str] = set()
    for key, value in fields.items():
        if key not in NESTED_KEYS:
            out.add(key)
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping):
                out.update(f"{key}.{sub}" for sub in item)
    return frozenset(out)


def _both(
    spec: Audience | str,
    old: CompiledPolicy,
    new: CompiledPolicy,
    extra_groups: Mapping[str, Collection[str]] | None,
) -> tuple[Audience, Audience]:
    if isinstance(spec, Audience):
        return spec, spec
    return audience_for(spec, old, extra_groups), audience_for(spec, new, extra_groups)


def diff_policies(
    old: Policy,
    new: Policy,
    listings: Iterable[Mapping[str, Any]],
    audiences: Iterable[Audience | str],
    now_ms: int,
    *,
    extra_groups: Mapping[str, Collection[str]] | None = None,
) -> dict[str, AudienceDiff]:
    """Per audience (keyed by node id), the effect of replacing ``old`` by ``new``.

    An audience given as a node id gets its groups from each policy separately (plus
    ``extra_groups``, e.g. the member directory), so moving a node between groups shows;
    an ``Audience`` is used as given under both policies.
    """
    compiled_old, compiled_new = compile_policy(old), compile_policy(new)
    items = list(listings)
    out: dict[str, AudienceDiff] = {}
    for spec in audiences:
        before, after = _both(spec, compiled_old, compiled_new, extra_groups)
        appear: Counter[str] = Counter()
        disappear: Counter[str] = Counter()
        gained: list[str] = []
        lost: list[str] = []
        count_before = count_after = 0
        for listing in items:
            view_old = evaluate(listing, before, compiled_old, now_ms).view
            view_new = evaluate(listing, after, compiled_new, now_ms).view
            count_before += view_old is not None
            count_after += view_new is not None
            if view_old is None and view_new is not None:
                gained.append(str(listing["id"]))
            elif view_old is not None and view_new is None:
                lost.append(str(listing["id"]))
            elif view_old is not None and view_new is not None:
                paths_old = view_paths(view_old["fields"])
                paths_new = view_paths(view_new["fields"])
                appear.update(paths_new - paths_old)
                disappear.update(paths_old - paths_new)
        out[before.node_id] = AudienceDiff(
            audience=before.node_id,
            visible_before=count_before,
            visible_after=count_after,
            becoming_visible=tuple(sorted(gained)),
            becoming_invisible=tuple(sorted(lost)),
            fields_appearing=dict(sorted(appear.items())),
            fields_disappearing=dict(sorted(disappear.items())),
        )
    return out


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{path} x{n}" for path, n in sorted(counts.items())) or "-"


def format_diff_table(diffs: Mapping[str, AudienceDiff]) -> str:
    """An aligned plain-text table, one row per audience in node-id order."""
    header = (
        "audience",
        "visible",
        "+listings",
        "-listings",
        "fields appearing",
        "fields disappearing",
    )
    rows = [header]
    for name in sorted(diffs):
        diff = diffs[name]
        rows.append(
            (
                name,
                f"{diff.visible_before} -> {diff.visible_after}",
                f"+{len(diff.becoming_visible)}",
                f"-{len(diff.becoming_invisible)}",
                _counts(diff.fields_appearing),
                _counts(diff.fields_disappearing),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {1, 2, 3}
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
