"""schemathesis against a live hub and a live member, from the document each serves.

Every operation of ``/openapi.json`` gets generated requests: admin routes with the
node's token, federation routes signed (``CATTC-Sig``) by a node the callee knows,
public ones as they are. No answer may be a 500 or fall outside the document (status,
content type, body schema). Requests that fit the document and requests that do not
are both sent; half aim at listings the node holds, and half the EoIs to the hub are
re-signed as the caller's own, so that more than the first refusal is exercised. The run
is bounded and reproducible: a fixed number of examples per operation, derandomized, no
shrinking.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from node.web.openapi import served_routes
from protocol.keys import NodeKey
from protocol.request_sig import sign_request
from protocol.signing import sign_object
from tests.federation.network import NodeFactory, start_network
from tests.nodes import RunningNode

EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class SignedBy(requests.auth.AuthBase):
    """Signs each federation request as it is sent: method, path and query, body."""

    def __init__(self, origin: str, key: NodeKey, destination: str) -> None:
        self.origin, self.key, self.destination = origin, key, destination

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if not isinstance(body, str | bytes):
            raise TypeError("a streamed body cannot be signed here")
        sig = sign_request(
            method=str(r.method),
            target=r.path_url,
            origin=self.origin,
            destination=self.destination,
            body=body.encode() if isinstance(body, str) else body,
            key=self.key,
            now_ms=int(time.time() * 1000),
        )
        r.headers["Authorization"] = sig.header()
        return r


def fuzz(target: RunningNode, signer: SignedBy) -> tuple[dict[str, set[int]], list[str]]:
    """Run every operation of ``target``'s served document; the statuses each operation
    answered, and the failures found, each naming the operation and the request."""
    served = requests.get(f"{target.url}/openapi.json", timeout=10)
    served.raise_for_status()
    schema = schemathesis.openapi.from_dict(served.json())
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {target.token}"
    federation = requests.Session()
    federation.auth = signer
    public = requests.Session()
    sessions = {"adminToken": admin, "federationSignature": federation}
    page = admin.get(f"{target.url}/admin/v1/listings", params={"limit": 20}, timeout=10).json()
    known = [item["listing"]["id"] for item in page["items"]]
    assert known, "the node holds no listings to aim at"
    failures: list[str] = []
    ran: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the document: {result.err()}")
            continue
        operation = result.ok()
        # Credentials as the document asks for them.
        schemes = {name for need in operation.definition.raw.get("security", []) for name in need}
        session = sessions[min(schemes)] if schemes else public
        statuses = ran.setdefault(operation.label, set())
        # Requests that fit the document, and requests that do not (bad types, values
        # out of range, missing fields): neither may get a 500.
        strategy = operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE)
        test = _operation_test(strategy, target.url, session, statuses, known, signer)
        try:
            test()
        except Exception as exc:  # one operation's failure must not hide another's
            failures.append(f"{operation.label}: {exc}")
    for s in (admin, federation, public):
        s.close()
    return ran, failures


def _operation_test(
    strategy: st.SearchStrategy[Case[Any]],
    base_url: str,
    session: requests.Session,
    statuses: set[int],
    known: list[str],
    signer: SignedBy,
) -> Callable[[], None]:
    numbers = itertools.count(1)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, aim=st.none() | st.sampled_from(known))
    def test(case: Case[Any], aim: str | None) -> None:
        # Half the time at a listing the node holds and a real audience, so that more
        # than 404s are checked.
        if aim is not None and "listing_id" in (case.path_parameters or {}):
            case.path_parameters["listing_id"] = aim
            if "audience" in (case.query or {}):
                case.query["audience"] = "*"
        if aim is not None and case.path == "/federation/v1/eoi" and isinstance(case.body, dict):
            # An EoI the hub can take apart: signed by the caller, about a listing it holds.
            case.body = signed_eoi(signer, case.body, aim, next(numbers))
        response = case.call(base_url=base_url, session=session)
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    return test


def signed_eoi(signer: SignedBy, generated: dict[str, Any], listing_id: str, n: int) -> Any:
    """The generated EoI, made the caller's own and signed: its message and any other
    members kept, its envelope set so that the hub reads past the signature."""
    obj = {k: v for k, v in generated.items() if k != "signatures"}
    obj.update(
        issuer=signer.origin,
        audience=signer.destination,
        ts=int(time.time() * 1000),
        id=f"{signer.origin}-eoi-fuzz{n}",
        listing={"owner": signer.destination, "id": listing_id},
    )
    return sign_object(obj, signer.origin, signer.key)


def documented(node: RunningNode) -> set[str]:
    return {f"{method} {path}" for method, path, _ in served_routes(node.app.router)}


async def test_schemathesis_finds_no_500_and_no_answer_outside_the_document(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["th"])
    hub, member = net.hub, net.nodes["th"]
    as_member = SignedBy("th", member.runtime.keys.active, "cn")
    as_hub = SignedBy("cn", hub.runtime.keys.active, "th")
    for target, signer in ((hub, as_member), (member, as_hub)):
        # In a worker thread: this loop keeps serving both nodes meanwhile.
        ran, failures = await asyncio.to_thread(fuzz, target, signer)
        assert set(ran) == documented(target), "not every route was fuzzed"
        # The requests got through each door: signed, with the token, or public.
        for label in ("GET /federation/v1/feed", "GET /admin/v1/status", "GET /healthz"):
            assert 200 in ran[label], (target.node_id, label, ran[label])
        # and requests outside the document reached the handlers, which refused them.
        assert 400 in ran["GET /admin/v1/listings"], ran["GET /admin/v1/listings"]
        if target is hub:  # signed EoIs got past the signature to the hub's own checks
            assert 202 in ran["POST /federation/v1/eoi"], ran["POST /federation/v1/eoi"]
        assert not failures, f"{target.node_id}:\n" + "\n\n".join(failures)
