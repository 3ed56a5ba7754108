"""The types a summary's ``fields`` may hold: the listing's own, field by field.

A summary carries a policy's view of a listing: some of its fields, some of a nested
object's (``organization.type`` alone), a name replaced by words that describe it, free
text with names taken out. So a view is not a listing, and ``SummaryListing.fields`` was
any JSON: a member could send a title that is a string, a TRL that is a list, and each
reader of it (search, matching, the pages) met a type it never expected.

``check_view_fields`` holds a view to the listing model's *types*, every field optional,
nothing else allowed: a title is an object of strings, a TRL an integer, an organisation
an object with the organisation's fields. Lists and objects keep their listing's bounds
(20 codes, 12 titles): a member's 20,592 IPC codes took the hub's matching worker
seconds a listing. A string may be ``STR_SLACK`` times its listing's bound (a view's text
has names replaced by words that describe them, which may be longer); patterns are not
checked (the owner's node checked them, and no reader relies on them).
"""

from __future__ import annotations

import functools
import operator
import types
from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MaxLen
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from protocol.listing import ENVELOPE_FIELDS, MODEL_BY_CATEGORY

_STRICT = ConfigDict(strict=True, extra="forbid")


STR_SLACK = 4
MIN_STR_CAP = 1024  # characters, for a string whose listing bound is shorter or absent


def _max_len(metadata: Iterable[Any]) -> int | None:
    for item in metadata:
        for bound in (item, *getattr(item, "metadata", ())):  # a Field() holds its own
            found = getattr(bound, "max_length", None)
            if isinstance(found, int):
                return found
    return None


def _loose(annotation: Any) -> Any:
    """``annotation`` without its patterns, strings within ``STR_SLACK`` times their
    bound, lists and objects within theirs, a nested model made partial."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        bound = _max_len(metadata)
        if base is str:
            return Annotated[str, MaxLen(max(MIN_STR_CAP, STR_SLACK * (bound or 0)))]
        inner = _loose(base)
        return inner if bound is None else Annotated[inner, MaxLen(bound)]
    if annotation is str:
        return Annotated[str, MaxLen(MIN_STR_CAP)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _partial(annotation, ())
    if origin is Literal or origin is None:
        return annotation
    args = tuple(_loose(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, args)
    return origin[args]


def _declared(annotation: Any, metadata: list[Any]) -> Any:
    """A field's type as written (pydantic keeps its outer constraints apart)."""
    return Annotated[annotation, *metadata] if metadata else annotation


@cache
def _partial(model: type[BaseModel], skip: tuple[str, ...]) -> type[BaseModel]:
    fields: Any = {
        name: (_loose(_declared(info.annotation, info.metadata)) | None, None)
        for name, info in model.model_fields.items()
        if name not in skip
    }
    return create_model(f"View{model.__name__}", __config__=_STRICT, **fields)


def view_model(category: str) -> type[BaseModel]:
    """The partial model of ``category``'s view fields (envelope fields are not among them)."""
    return _partial(MODEL_BY_CATEGORY[category], tuple(sorted(ENVELOPE_FIELDS)))


def check_view_fields(category: str, fields: Any) -> None:
    """ValueError naming the first field of ``fields`` whose type is not the listing's."""
    try:
        view_model(category).model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"fields.{where}: {err['msg']}") from exc
