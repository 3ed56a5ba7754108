"""The listing form of the console: which fields each category's form has, turning the
posted form into a listing record and a record back into form values, and pydantic's
errors into one message per field, shown next to it.

Messages are message ids (marked with ``N_``) and their parameters: the template
translates them, so an error reads in the officer's language.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from node.console.listing_fields import TITLE_LANGUAGES, FormField, Message, fields_for
from node.ui.i18n import N_
from protocol.listing import CATEGORIES, normalize_record, parse_listing
from protocol.timeutil import date_to_ms, ms_to_date


# -- record <-> form ---------------------------------------------------------------------
def _get(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def form_values(category: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """What each input shows for ``record``: strings, or a list of chosen values."""
    out: dict[str, Any] = {}
    for f in fields_for(category):
        value = _get(record, f.name)
        if value is None:
            out[f.name] = [] if f.kind == "choices" else ""
        elif f.kind == "date" and isinstance(value, int):
            out[f.name] = ms_to_date(value)
        elif f.kind == "list":
            out[f.name] = value if isinstance(value, str) else "\n".join(map(str, value))
        elif f.kind == "parties":
            out[f.name] = "\n".join(
                p["name"] + (f" | {p['node']}" if p.get("node") else "") for p in value
            )
        elif f.kind == "choices":
            out[f.name] = list(value)
        elif f.kind == "bool":
            out[f.name] = bool(value)
        else:
            out[f.name] = str(value)
    return out


def posted_values(category: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values as posted (kept as typed, to show them again)."""
    getall = getattr(form, "getall", None)
    out: dict[str, Any] = {}
    for f in fields_for(category):
        if f.kind == "choices":
            chosen = getall(f.name, []) if getall is not None else form.get(f.name, [])
            out[f.name] = [str(v) for v in chosen][: len(f.choices)]
        elif f.kind == "bool":
            out[f.name] = form.get(f.name) == "on"
        else:
            value = form.get(f.name, "")
            out[f.name] = value[:20_000] if isinstance(value, str) else ""
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for line in text.splitlines() for part in line.split(";") if part.strip()]


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = record
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    if value is None:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value


def _value(f: FormField, raw: Any) -> tuple[Any, Message | None]:
    if f.kind == "bool":
        return bool(raw), None
    if f.kind == "choices":
        return (list(raw) or None), None
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None, None
    if f.kind == "int":
        digits = text.lstrip("+-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 16:
            return None, Message(N_("Enter a whole number."))
        return int(text), None
    if f.kind == "date":
        try:
            date_to_ms(text)
        except ValueError:
            return None, Message(N_("Enter a date as YYYY-MM-DD."))
        return text, None
    if f.kind == "list":
        if f.name == "rights.attribution" and text.lower() == "declined":
            return "declined", None
        return _split(text), None
    if f.kind == "parties":
        parties = []
        for line in text.splitlines():
            name, _, node = line.partition("|")
            if name.strip():
                party = {"name": name.strip()}
                if node.strip():
                    party["node"] = node.strip()
                parties.append(party)
        return parties, None
    return text, None


def _keep_order(chosen: list[str], before: Any) -> list[str]:
    """Checked boxes in the order the listing had them (the boxes' order is the form's,
    and an unchanged form must not change the listing), new ones after."""
    kept = [v for v in before if v in chosen] if isinstance(before, list) else []
    return kept + [v for v in chosen if v not in kept]


def _prune(record: dict[str, Any]) -> None:
    for key in [k for k, v in record.items() if isinstance(v, dict)]:
        _prune(record[key])
        if not record[key]:
            del record[key]


def form_to_record(
    category: str, values: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Message]]:
    """The record the form describes, on top of ``base`` (what the listing holds: fields
    the form does not show, such as a title in another language, are kept), and the
    errors found before validation (a number that is not one, a date that is not one)."""
    record: dict[str, Any] = copy.deepcopy(dict(base or {}))
    record["category"] = category
    errors: dict[str, Message] = {}
    for f in fields_for(category):
        value, error = _value(f, values.get(f.name))
        if error is not None:
            errors[f.name] = error
        if f.kind == "choices" and value:
            value = _keep_order(value, _get(base or {}, f.name))
        before = _get(base or {}, f.name)
        if f.kind == "date" and isinstance(before, int) and value == ms_to_date(before):
            value = before  # the same day: keep the time of day the listing had
        _set(record, f.name, value)
    _prune(record)
    return record, errors


# -- validation errors -------------------------------------------------------------------
_PATTERNS = {
    "ipc": N_("%(given)s is not an IPC code (e.g. A01G or A01G 9/14)."),
    "isic": N_("%(given)s is not an ISIC code (a letter, or 2 to 4 digits)."),
    "contact.email": N_("This is not an email address."),
    "contact.phone": N_("This is not a phone number."),
    "website": N_("A web address starts with http:// or https://."),
    "languages": N_("%(given)s is not a language code (e.g. en, zh, th)."),
    "related_listings": N_("%(given)s is not a listing id."),
}
_NODE_FIELDS = frozenset({"target_countries", "share_with", "organizer", "parties"})
_MODEL_ERRORS = (  # errors of the whole record, placed at the field they are about
    ("does not fit stage", "trl", N_("This readiness level does not fit the stage chosen.")),
    ("end is before start", "end", N_("The end is before the start.")),
    ("share_with is required", "share_with", N_("Name the nodes to share with.")),
    ("share_with is only", "share_with", N_("Nodes to share with are for bilateral only.")),
    ("must not name the owner", "share_with", N_("Do not name this node itself.")),
)


def _field_of(loc: list[str], names: set[str]) -> str | None:
    parts = [p for p in loc if not p.isdigit()]
    if parts[:1] == ["title"]:
        return "title." + (parts[1] if len(parts) > 1 and parts[1] in TITLE_LANGUAGES else "en")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def _message(name: str, err: Mapping[str, Any]) -> Message:
    kind = str(err["type"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    raw = err.get("input")
    shown = raw if isinstance(raw, str | int) else ""
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return Message(N_("This field is required."))
    if kind == "too_short":
        return Message(N_("Give at least %(count)s."), {"count": ctx.get("min_length", 1)})
    if kind == "string_too_long":
        return Message(N_("At most %(count)s characters."), {"count": ctx.get("max_length")})
    if kind == "too_long":
        return Message(N_("At most %(count)s entries."), {"count": ctx.get("max_length")})
    if kind == "less_than_equal":
        return Message(N_("At most %(limit)s."), {"limit": ctx.get("le")})
    if kind == "greater_than_equal":
        return Message(N_("At least %(limit)s."), {"limit": ctx.get("ge")})
    if kind == "literal_error":
        return Message(N_("Choose one of the options."))
    if kind == "string_pattern_mismatch":
        if name in _PATTERNS:
            return Message(_PATTERNS[name], {"given": shown})
        if name.split(".", maxsplit=1)[0] in _NODE_FIELDS:
            return Message(N_("%(given)s is not a node id (e.g. th)."), {"given": shown})
        if name == "country":
            return Message(N_("Choose a country."))
        return Message(N_("%(given)s is not in the expected form."), {"given": shown})
    text = str(err.get("msg", ""))
    if "country code" in text:
        return Message(N_("Choose a country."))
    if "must be unique" in text:
        return Message(N_("Each value may be given once."))
    if "English title" in text:
        return Message(N_("An English title is required."))
    return Message(N_("This value is not valid."))


def validation_errors(category: str, exc: ValidationError) -> dict[str, Message]:
    """One message per field of the form, from a pydantic validation error; errors that
    belong to no field of the form are under the key ``""``."""
    names = {f.name for f in fields_for(category)}
    out: dict[str, Message] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc[:1] and loc[0] in CATEGORIES:
            loc = loc[1:]
        name = _field_of(loc, names)
        if name is None:
            text = str(err.get("msg", ""))
            for marker, target, msgid in _MODEL_ERRORS:
                if marker in text and target in names:
                    out.setdefault(target, Message(msgid))
                    break
            else:
                out.setdefault(
                    "",
                    Message(
                        N_("The listing is not valid: %(reason)s"),
                        {"reason": text.removeprefix("Value error, ")},
                    ),
                )
            continue
        out.setdefault(name, _message(name, err))
    return out


def check(category: str, record: dict[str, Any]) -> dict[str, Message]:
    """Every field error of ``record`` at once (the service stops at the first)."""
    try:
        parse_listing(normalize_record(record))
    except ValidationError as exc:
        return validation_errors(category, exc)
    return {}


def rows(
    category: str,
    values: Mapping[str, Any],
    errors: Mapping[str, Message],
    languages: Mapping[str, str],
) -> list[dict[str, Any]]:
    """What the template needs for each input: the field, its label's parameters, its
    value and its error (or None)."""
    out = []
    for f in fields_for(category):
        code = f.name.removeprefix("title.") if f.name.startswith("title.") else ""
        out.append(
            {
                "field": f,
                "label_params": {"language": languages.get(code, code)} if code else {},
                "value": values.get(f.name, [] if f.kind == "choices" else ""),
                "error": errors.get(f.name),
            }
        )
    return out
