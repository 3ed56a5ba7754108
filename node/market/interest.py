"""A marketplace visitor's expression of interest: checked, counted against the visitor's
limits, stored (``visitor_interests``, ``queued``), then passed to the owning center on
the hub's own EoI path: the hub issues an ``eoi`` for the visitor (signed by the hub,
the visitor's contact in its ``visitor`` block) and takes it as it takes a member's, so
it reaches the owner's feed as an ``eoi_forward`` and lands in the owner's EoI inbox.

Only listings in public search take a visitor's interest. For anything else the visitor
gets the same answer, the interest is kept as ``dropped`` and nothing leaves the hub, so
the form tells nobody whether the hub holds a listing it does not show. Dropped ones
count against the limits like the others, for the same reason.

States: ``queued`` (stored, not yet passed on), ``forwarded`` (in the owner's feed, or
for the hub's own listings, with the hub's operator), ``dropped``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.hub.eoi import hub_receive_eoi
from node.services.errors import Conflict, ServiceError
from node.storage.db import begin_write
from node.storage.models import EoiRow, SearchDocRow, VisitorInterestRow
from node.ui.i18n import N_
from protocol import PROTOCOL_VERSION
from protocol.eoi import MESSAGE_MAX_CHARS
from protocol.signing import sign_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
PER_ADDRESS_PER_HOUR = 5
PER_ADDRESS_LISTING_PER_DAY = 2
NAME_MAX = 200
ORGANIZATION_MAX = 200
# An address, and nothing a mail link would read as more: no "?" or "&" (headers such as
# bcc= or body=), no "%" (an encoded "@"), no other separator of URLs or address lists.
_NOT_IN_ADDRESS = r"@\s?&%#/\\:;,<>\"()\[\]"
EMAIL = re.compile(
    rf"^[^{_NOT_IN_ADDRESS}]{{1,64}}@[^{_NOT_IN_ADDRESS}.]+(\.[^{_NOT_IN_ADDRESS}.]+)+$"
)
EMAIL_MAX = 255
FIELDS = ("name", "email", "organization", "message")


@dataclass(frozen=True)
class VisitorForm:
    name: str
    email: str
    organization: str
    message: str


class TooMany(Exception):
    """The visitor's address is over a limit; ``retry_after_s`` until it is not."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"over the limit; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    # Control characters other than line breaks and tabs have no place in a message.
    return "".join(c for c in text if c in "\n\t" or c >= " ").replace("\r", "")


def validate(form: Mapping[str, Any]) -> tuple[VisitorForm, dict[str, str]]:
    """The visitor's form, cleaned, and an error (a message id) per field that is wrong."""
    values = {f: _clean(form.get(f, "")) for f in FIELDS}
    name = " ".join(values["name"].split())
    email = values["email"].strip()
    organization = " ".join(values["organization"].split())
    message = values["message"].strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = N_("Enter your name.")
    elif len(name) > NAME_MAX:
        errors["name"] = N_("Your name is too long (at most 200 characters).")
    if not email:
        errors["email"] = N_("Enter your email address.")
    elif len(email) > EMAIL_MAX or not EMAIL.match(email):
        errors["email"] = N_("Enter an email address like name@example.org.")
    if len(organization) > ORGANIZATION_MAX:
        errors["organization"] = N_("The organisation's name is too long (at most 200 characters).")
    if not message:
        errors["message"] = N_("Write a message to the center.")
    elif len(message) > MESSAGE_MAX_CHARS:
        errors["message"] = N_("The message is too long (at most 4,000 characters).")
    return VisitorForm(name, email, organization, message), errors


def is_public(session: Session, owner: str, listing_id: str, now: int) -> bool:
    """Whether the listing is in public search now."""
    found = session.scalar(
        select(SearchDocRow.id).where(
            SearchDocRow.owner == owner,
            SearchDocRow.listing_id == listing_id,
            SearchDocRow.expires > now,
        )
    )
    return found is not None


def _retry_after(free_at: int, now: int) -> int:
    return max(1, -(-(free_at - now) // 1000))


def _check_rates(session: Session, address: str, owner: str, listing_id: str, now: int) -> None:
    mine = select(VisitorInterestRow.received).where(VisitorInterestRow.address_sha256 == address)
    hour = session.scalars(mine.where(VisitorInterestRow.received > now - HOUR_MS)).all()
    if len(hour) >= PER_ADDRESS_PER_HOUR:
        raise TooMany(_retry_after(min(hour) + HOUR_MS, now))
    same = session.scalars(
        mine.where(
            VisitorInterestRow.owner == owner,
            VisitorInterestRow.listing_id == listing_id,
            VisitorInterestRow.received > now - DAY_MS,
        )
    ).all()
    if len(same) >= PER_ADDRESS_LISTING_PER_DAY:
        raise TooMany(_retry_after(min(same) + DAY_MS, now))


def take(
    rt: NodeRuntime, owner: str, listing_id: str, visitor: VisitorForm, address_sha256: str
) -> tuple[str, str]:
    """Store a visitor's interest (blocking): (its id, ``queued`` or ``dropped``). Raises
    ``TooMany`` over the address's limits, before the listing is looked at."""
    now = rt.clock()
    interest_id = f"{rt.node_id}-eoi-v{secrets.token_hex(8)}"
    with Session(rt.engine) as session, session.begin():
        # Counted and added under one lock: on PostgreSQL, 20 posts at once all counted
        # before any was added, and 5 passed a limit of 2.
        begin_write(session.connection(), VisitorInterestRow.__tablename__)
        _check_rates(session, address_sha256, owner, listing_id, now)
        state = "queued" if is_public(session, owner, listing_id, now) else "dropped"
        session.add(
            VisitorInterestRow(
                id=interest_id,
                owner=owner[:32],
                listing_id=listing_id[:64],
                name=visitor.name,
                email=visitor.email,
                organization=visitor.organization,
                message=visitor.message,
                address_sha256=address_sha256,
                state=state,
                received=now,
            )
        )
    if state == "dropped":
        logger.info(
            "visitor interest %s in %s/%s dropped: not public", interest_id, owner, listing_id
        )
    return interest_id, state


def _eoi(rt: NodeRuntime, row: VisitorInterestRow) -> dict[str, Any]:
    visitor: dict[str, str] = {"name": row.name, "email": row.email}
    if row.organization:
        visitor["organization"] = row.organization
    obj = {
        "type": "eoi",
        "v": PROTOCOL_VERSION,
        "issuer": rt.node_id,
        "ts": row.received,
        "audience": rt.node_id,
        "id": row.id,
        "listing": {"owner": row.owner, "id": row.listing_id},
        "message": row.message,
        "visitor": visitor,
    }
    return sign_object(obj, rt.node_id, rt.keys.active)


def _set_state(rt: NodeRuntime, interest_id: str, state: str) -> None:
    with Session(rt.engine) as session, session.begin():
        row = session.get(VisitorInterestRow, interest_id)
        if row is not None and row.state == "queued":
            row.state = state


def forward(rt: NodeRuntime, interest_id: str) -> str:
    """Pass a queued interest on to the owning center (blocking); its state after.
    Idempotent: the EoI's id is the interest's, so a second try finds it taken."""
    with Session(rt.engine) as session:
        row = session.get(VisitorInterestRow, interest_id)
        if row is None or row.state != "queued":
            return "missing" if row is None else row.state
        session.expunge(row)
    if row.owner == rt.node_id:  # the hub's own listing: its operator answers it
        _set_state(rt, row.id, "forwarded")
        return "forwarded"
    if not is_public_now(rt, row.owner, row.listing_id):
        _set_state(rt, row.id, "dropped")
        return "dropped"
    try:
        hub_receive_eoi(rt, rt.node_id, _eoi(rt, row))
    except Conflict:
        pass  # taken by an earlier try
    except ServiceError as exc:
        logger.warning("visitor interest %s not passed on: %s", row.id, exc.message)
        return "queued"
    with Session(rt.engine) as session:
        taken = session.get(EoiRow, row.id)
        state = "forwarded" if taken is not None and taken.state == "forwarded" else "dropped"
    _set_state(rt, row.id, state)
    return state


def is_public_now(rt: NodeRuntime, owner: str, listing_id: str) -> bool:
    with Session(rt.engine) as session:
        return is_public(session, owner, listing_id, rt.clock())


def forward_queued(rt: NodeRuntime, limit: int = 100) -> dict[str, int]:
    """Pass on what is still queued (after a failure), oldest first: count per state."""
    with Session(rt.engine) as session:
        ids = list(
            session.scalars(
                select(VisitorInterestRow.id)
                .where(VisitorInterestRow.state == "queued")
                .order_by(VisitorInterestRow.received)
                .limit(limit)
            )
        )
    out: dict[str, int] = {}
    for interest_id in ids:
        state = forward(rt, interest_id)
        out[state] = out.get(state, 0) + 1
    return out


def counts(rt: NodeRuntime) -> dict[str, int]:
    """How many visitors' interests are in each state."""
    with Session(rt.engine) as session:
        rows = session.execute(
            select(VisitorInterestRow.state, func.count()).group_by(VisitorInterestRow.state)
        ).all()
    return {str(state): int(n) for state, n in rows}
