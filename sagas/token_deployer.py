"""Deploys the ERC-20 contract of every `token` thing created without a contract address.

Like a purchase's mint, a deployment is signed, recorded in the log (`TokenDeployment`, one stream
per token, so two deployers cannot both record one) and only then broadcast. Later rounds look the
recorded transaction up, broadcast the same bytes again while it is unknown, sign a replacement
only when it can never land, and, once its contract exists, give the token its address and record
`token_deployed` in one transaction. A crash at any point deploys each token once.
"""

from __future__ import annotations

import logging
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg_pool import ConnectionPool

from commands.bus import CommandBus
from commands.handlers import Context
from commands.models import ConfirmDeployment, RecordDeployment
from domain.errors import DomainError
from domain.things import Thing
from domain.token_deployment import TokenDeployment, deployment_id
from eventlog.store import EventLog
from providers.chain import ChainError, ChainUnavailable, SignedTx, StaleNonce
from sagas.signing import Signer

log = logging.getLogger(__name__)


class TokenDeployer:
    """A periodic chore of the saga runner."""

    def __init__(self, bus: CommandBus, event_log: EventLog, reads: ConnectionPool, signer: Signer) -> None:
        self.bus = bus
        self.event_log = event_log
        self.reads = reads
        self.signer = signer

    def __call__(self) -> None:
        """Deploy contracts for tokens that have none (the read model nominates candidates; the
        log decides, since the read model may lag)."""
        with self.reads.connection() as conn:
            candidates = conn.execute(
                "SELECT id FROM things WHERE type = 'token' AND deleted_at IS NULL"
                " AND NOT properties ? 'contractAddress' LIMIT 20"
            ).fetchall()
        for (thing_id,) in candidates:
            try:
                self._deploy(thing_id)
            except (ChainError, ChainUnavailable, DomainError) as error:
                log.warning("could not deploy token %s yet: %s", thing_id, error)

    def _deploy(self, token_id: UUID) -> None:
        token: Thing = self.event_log.repository.get(token_id)
        if token.deleted or token.properties.get("contractAddress"):
            return
        try:
            deployment: TokenDeployment | None = self.event_log.repository.get(deployment_id(token_id))
        except AggregateNotFoundError:  # nothing signed yet
            deployment = None
        if deployment is None:
            self._sign(token)
            return
        ledger = self.signer.ledger
        tx = deployment.tx
        receipt = ledger.receipt(tx["tx_hash"])
        if receipt is None:
            try:
                ledger.broadcast(SignedTx(tx["tx_hash"], tx["raw"], tx["nonce"], ""))
            except (StaleNonce, ChainError) as error:  # it can never land: sign another
                log.warning("deployment of token %s cannot land (%s); signing another", token_id, error)
                self._sign(token)
            return
        if receipt.succeeded and ledger.has_code(deployment.address):
            self.bus.execute(ConfirmDeployment(token_id=token_id, tx_hash=tx["tx_hash"],
                                               block_number=receipt.block_number), Context())
        else:
            log.warning("deployment %s of token %s reverted; signing another", tx["tx_hash"], token_id)
            self._sign(token)

    def _sign(self, token: Thing) -> None:
        symbol = str(token.properties.get("symbol") or token.name[:8].upper())
        where: list[str] = []

        def sign() -> SignedTx:
            signed, address = self.signer.ledger.sign_deploy(name=token.name, symbol=symbol)
            where.append(address)
            return signed

        def record(signed: SignedTx) -> None:
            self.bus.execute(RecordDeployment(token_id=token.id, address=where[0],
                                              tx_hash=signed.tx_hash, raw=signed.raw,
                                              nonce=signed.nonce), Context())

        self.signer.sign_record_broadcast(sign, record)
