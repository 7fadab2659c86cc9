"""Deploys the ERC-20 contract of every `token` thing created without a contract address.

The address is written to the thing's properties (If-Match on the version it saw, so two
deployers cannot both win) and a `token_deployed` activity is recorded. A crash between deploy
and record leaves an unused contract behind; the thing still gets exactly one address.
"""

from __future__ import annotations

import logging

from psycopg_pool import ConnectionPool

from commands.bus import CommandBus
from commands.handlers import Context
from commands.models import RecordActivity, UpdateThing
from domain.errors import DomainError
from providers.chain import ChainError, ChainUnavailable, TokenLedger

log = logging.getLogger(__name__)


class TokenDeployer:
    """A periodic chore of the saga runner."""

    def __init__(self, bus: CommandBus, reads: ConnectionPool, ledger: TokenLedger) -> None:
        self.bus = bus
        self.reads = reads
        self.ledger = ledger

    def __call__(self) -> None:
        """Deploy contracts for tokens that have none."""
        with self.reads.connection() as conn:
            pending = conn.execute(
                "SELECT id, name, properties->>'symbol', version FROM things WHERE type = 'token'"
                " AND deleted_at IS NULL AND NOT properties ? 'contractAddress' LIMIT 20"
            ).fetchall()
        for thing_id, name, symbol, version in pending:
            try:
                address = self.ledger.deploy_token(name=name, symbol=symbol or name[:8].upper())
                self.bus.execute(UpdateThing(id=thing_id, properties={"contractAddress": address}),
                                 Context(expected_version=version))
                self.bus.execute(RecordActivity(type="token_deployed", target_id=thing_id,
                                                metadata={"contractAddress": address}))
            except (ChainError, ChainUnavailable, DomainError) as error:
                log.warning("could not deploy token %s: %s", thing_id, error)
