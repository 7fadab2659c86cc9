"""Deploys the ERC-20 contract of every `token` thing created without a contract address.

The address is written to the thing's properties (If-Match on the version it saw, so two
deployers cannot both win) and a `token_deployed` activity is recorded. A crash between deploy
and record leaves an unused contract behind; the thing still gets exactly one address.
"""

from __future__ import annotations

import logging
from uuid import UUID

from psycopg_pool import ConnectionPool

from commands.bus import CommandBus
from commands.handlers import Context
from commands.models import RecordActivity, UpdateThing
from commands.store import EventLog
from domain.errors import DomainError
from domain.things import Thing
from providers.chain import ChainError, ChainUnavailable, TokenLedger

log = logging.getLogger(__name__)


class TokenDeployer:
    """A periodic chore of the saga runner."""

    def __init__(
        self, bus: CommandBus, event_log: EventLog, reads: ConnectionPool, ledger: TokenLedger
    ) -> None:
        self.bus = bus
        self.event_log = event_log
        self.reads = reads
        self.ledger = ledger

    def __call__(self) -> None:
        """Deploy contracts for tokens that have none (the read model nominates candidates; the
        thing's stream decides, since the read model may lag)."""
        with self.reads.connection() as conn:
            candidates = conn.execute(
                "SELECT id FROM things WHERE type = 'token' AND deleted_at IS NULL"
                " AND NOT properties ? 'contractAddress' LIMIT 20"
            ).fetchall()
        for (thing_id,) in candidates:
            try:
                self._deploy(thing_id)
            except (ChainError, ChainUnavailable, DomainError) as error:
                log.warning("could not deploy token %s: %s", thing_id, error)

    def _deploy(self, thing_id: UUID) -> None:
        token: Thing = self.event_log.repository.get(thing_id)
        if token.deleted or token.properties.get("contractAddress"):
            return
        symbol = str(token.properties.get("symbol") or token.name[:8].upper())
        address = self.ledger.deploy_token(name=token.name, symbol=symbol)
        self.bus.execute(UpdateThing(id=thing_id, properties={"contractAddress": address}),
                         Context(expected_version=token.version))
        self.bus.execute(RecordActivity(type="token_deployed", target_id=thing_id,
                                        metadata={"contractAddress": address}),
                         Context(org_id=token.org_id))
