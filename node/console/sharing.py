"""The console's sharing rules: the grid, a cell's editor, the text editor, the preview,
applying, and "why does this audience see this listing?".

A draft travels in the forms (``text``: the policy YAML, ``base``: the digest of the
active policy it started from), so nothing is stored until "Apply". Viewers may look at
everything, including a preview; only editors may change a cell or apply. Applying
refuses a draft prepared against another active policy than the current one (someone
applied in between), and writes the new version and the audit-log entry in one
transaction with the staff user as the policy's author.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

from node.config import POLICY_FILE
from node.console.sharing_explain import explain_page
from node.console.sharing_forms import (
    PageProblem,
    country_label,
    pages,
    read_draft,
    text_answer,
)
from node.console.sharing_grid import (
    RULE_VISIBILITIES,
    Cell,
    CellEdit,
    Column,
    GridError,
    changed_cells,
    edit_cell,
    grid_cells,
    policy_text,
)
from node.console.sharing_preview import (
    GridSource,
    build_preview,
    grid_source,
    shown_ids,
)
from node.services.policy import InvalidPolicy, PolicyVersion, StalePolicy
from node.ui.audit import record as audit
from node.ui.auth import form_of, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME
from policies.model import NODE_ID_RE, STAR, Policy, PolicyError
from policies.names import NAME_FIELDS
from policies.parse import parse_policy
from protocol.listing import CATEGORIES, shareable_fields

__all__ = [
    "apply_page",
    "cell_page",
    "cell_save",
    "draft_page",
    "explain_page",
    "grid_page",
    "preview_page",
    "text_page",
]
SHORT_FIELDS = 3


def _cell_view(cell: Cell, changed: bool) -> dict[str, Any]:
    rule = cell.rule or cell.via_rule
    fields = list(rule.fields) if rule else []
    return {
        "category": cell.category,
        "audience": cell.audience,
        "state": "own" if cell.rule else ("via" if cell.via else "none"),
        "index": cell.index,
        "via": cell.via,
        "fields": fields,
        "short": fields[:SHORT_FIELDS],
        "more": max(0, len(fields) - SHORT_FIELDS),
        "visibility": list(rule.visibility) if rule else [],
        "relay": bool(rule and rule.relay),
        "changed": changed,
    }


def _grid_context(
    source: GridSource, text: str, base: str, policy: Policy, *, draft: bool
) -> dict[str, Any]:
    cells = grid_cells(policy, source.columns, source.directory_groups)
    active = parse_policy(source.active_text)
    changed = {(c[0], c[1]) for c in changed_cells(active, policy)}
    rows = [
        (
            category,
            [
                _cell_view(cells[(category, col.key)], (category, col.key) in changed)
                for col in source.columns
            ],
        )
        for category in CATEGORIES
    ]
    return {
        "columns": source.columns,
        "country_label": country_label,
        "rows": rows,
        "text": text,
        "base": base,
        "draft": draft,
        "changed_count": len(changed),
        "active_version": source.active_version,
        "stale": draft and base != source.active_digest,
        "groups": dict(policy.groups),
    }


@require_role("viewer")
@pages
async def grid_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    source = await rt.run(grid_source, rt)
    context = _grid_context(
        source,
        source.active_text,
        source.active_digest,
        parse_policy(source.active_text),
        draft=False,
    )
    applied = request.query.get("applied", "")
    context["applied"] = applied if applied.isdigit() else ""
    return render(request, "console/sharing.html", context)


@require_role("viewer")
@pages
async def draft_page(request: web.Request) -> web.Response:
    """The grid of a draft (from the preview's "Change more")."""
    rt = request.app[RUNTIME]
    text, base = read_draft(await form_of(request))
    try:
        policy = parse_policy(text)
    except PolicyError as exc:
        return text_answer(request, text, base, exc, status=422)
    source = await rt.run(grid_source, rt, policy)
    return render(
        request,
        "console/sharing.html",
        {**_grid_context(source, text, base, policy, draft=True), "applied": ""},
    )


def _column(source: GridSource, audience: str) -> Column:
    for column in source.columns:
        if column.key == audience:
            return column
    raise PageProblem(404, N_("There is no such cell in the grid."))


def _cell_context(
    source: GridSource,
    text: str,
    base: str,
    policy: Policy,
    category: str,
    audience: str,
    *,
    chosen: CellEdit | None = None,
    problems: dict[str, str] | None = None,
) -> dict[str, Any]:
    column = _column(source, audience)
    cell = grid_cells(policy, [column], source.directory_groups)[(category, audience)]
    rule = cell.rule
    if chosen is None:
        # A cell without a rule of its own starts from the rule that decides for it now.
        start = rule or cell.via_rule
        chosen = CellEdit(
            share=rule is not None,
            visibility=start.visibility if start else ("public", "network"),
            fields=start.fields if start else (),
            relay_to=start.relay.to if start and start.relay else (),
            relay_fields=start.relay.fields if start and start.relay else (),
        )
    names = NAME_FIELDS.get(category, {})
    targets = [c.key for c in source.columns if c.key not in (audience,)]
    return {
        "text": text,
        "base": base,
        "category": category,
        "audience": audience,
        "column": column,
        "country_label": country_label,
        "cell": cell,
        "chosen": chosen,
        "problems": problems or {},
        "fields": list(shareable_fields(category)),
        "name_fields": set(names),
        "visibilities": RULE_VISIBILITIES,
        "show_relay": column.kind == "hub" or bool(rule and rule.relay) or bool(chosen.relay_to),
        "relay_targets": targets,
    }


def _pick_cell(form: MultiDictProxy[Any]) -> tuple[str, str]:
    category, _, audience = str(form.get("cell", "")).partition("|")
    if not category:
        category, audience = str(form.get("category", "")), str(form.get("audience", ""))
    if category not in CATEGORIES or not (audience == STAR or NODE_ID_RE.match(audience)):
        raise PageProblem(400, N_("There is no such cell in the grid."))
    return category, audience


@require_role("viewer")
@pages
async def cell_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if request.method == "GET":
        category, audience = _pick_cell(request.query)  # type: ignore[arg-type]
        source = await rt.run(grid_source, rt)
        text, base = source.active_text, source.active_digest
        policy = parse_policy(text)
    else:
        form = await form_of(request)
        category, audience = _pick_cell(form)
        text, base = read_draft(form)
        try:
            policy = parse_policy(text)
        except PolicyError as exc:
            return text_answer(request, text, base, exc, status=422)
        source = await rt.run(grid_source, rt, policy)
    context = _cell_context(source, text, base, policy, category, audience)
    return render(request, "console/sharing_cell.html", context)


def _edit_of(form: MultiDictProxy[Any]) -> CellEdit:
    def many(name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(v) for v in form.getall(name, [])))

    return CellEdit(
        share=form.get("share") == "yes",
        visibility=many("visibility"),
        fields=many("field"),
        relay_to=many("relay_to"),
        relay_fields=many("relay_field"),
    )


@require_role("editor")
@pages
async def cell_save(request: web.Request) -> web.Response:
    """A cell's new rule into the draft; back to the grid of the draft."""
    rt = request.app[RUNTIME]
    form = await form_of(request)
    category, audience = _pick_cell(form)
    text, base = read_draft(form)
    try:
        policy = parse_policy(text)
    except PolicyError as exc:
        return text_answer(request, text, base, exc, status=422)
    source = await rt.run(grid_source, rt, policy)
    edit = _edit_of(form)
    try:
        new = edit_cell(policy, category, audience, edit)
        new_text, _ = policy_text(text, policy, new)
        parse_policy(new_text)
    except GridError as exc:
        context = _cell_context(
            source, text, base, policy, category, audience, chosen=edit, problems=exc.problems
        )
        return render(request, "console/sharing_cell.html", context, status=422)
    except PolicyError as exc:
        problems = {"share": "; ".join(i.message for i in exc.issues)}
        context = _cell_context(
            source, text, base, policy, category, audience, chosen=edit, problems=problems
        )
        return render(request, "console/sharing_cell.html", context, status=422)
    source = await rt.run(grid_source, rt, new)
    context = {**_grid_context(source, new_text, base, new, draft=True), "applied": ""}
    return render(request, "console/sharing.html", context)


@require_role("viewer")
@pages
async def text_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if request.method == "GET":
        source = await rt.run(grid_source, rt)
        return text_answer(request, source.active_text, source.active_digest, None)
    text, base = read_draft(await form_of(request))
    try:
        parse_policy(text)
    except PolicyError as exc:
        return text_answer(request, text, base, exc, checked=True, status=422)
    return text_answer(request, text, base, None, checked=True)


@require_role("viewer")
@pages
async def preview_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    text, base = read_draft(await form_of(request))
    try:
        parse_policy(text)
    except PolicyError as exc:
        return text_answer(request, text, base, exc, checked=True, status=422)
    preview = await rt.run(build_preview, rt, text)
    user = request[STAFF_USER]
    context = {
        "text": text,
        "base": base,
        "preview": preview,
        "stale": base != preview.active_digest,
        "shown_ids": shown_ids,
        "country_label": country_label,
        "may_apply": user is not None and user.may("editor"),
        "refused": "",
    }
    return render(request, "console/sharing_preview.html", context)


@require_role("editor")
@pages
async def apply_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    assert user is not None
    text, base = read_draft(await form_of(request))

    def also(session: Session, version: PolicyVersion) -> None:
        audit(
            session,
            at=version.created,
            actor=user.name,
            action="policy.apply",
            target=f"policy version {version.version}",
            detail=f"sha256 {version.digest}",
        )

    try:
        version = await rt.run(rt.policy.apply, text, user.name, expect_digest=base, also=also)
    except InvalidPolicy:
        try:
            parse_policy(text)
        except PolicyError as exc:
            return text_answer(request, text, base, exc, checked=True, status=422)
        raise
    except StalePolicy as exc:
        context = {"text": text, "message": exc.message}
        return render(request, "console/sharing_stale.html", context, status=409)
    # Keep DATA_DIR/policy.yaml the active text, as 'cattc policy apply' does.
    await rt.run((rt.data_dir / POLICY_FILE).write_text, version.text, "utf-8")
    return see_other(f"/console/sharing?applied={version.version}")
