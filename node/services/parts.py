"""``NodeParts``: the few parts of a node that its feed and summary services use.

``NodeRuntime`` has them all (it is passed as one), but a service typed with this
protocol does not import the runtime: ``node.runtime`` composes ``FeedService`` without
the feed importing it back, and a test or bench can hand a service only these parts.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from node.clock import Clock
from node.config import NodeConfig
from node.services.policy import PolicyService
from protocol.keys import KeyStore


class NodeParts(Protocol):
    """Read-only views of what changes under a running node (its keys after a rotation,
    its config after a hub key hand-over) as well as what does not."""

    @property
    def node_id(self) -> str: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def config(self) -> NodeConfig: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def policy(self) -> PolicyService: ...

    @property
    def clock(self) -> Clock: ...
