"""The deployment of a token's ERC-20 contract, recorded before it is broadcast.

One stream per token (its id derived from the token's), so two deployers racing for the same token
cannot both record a deployment. The signed transaction is kept like a purchase's mint: after a
crash the same bytes are broadcast again, never a second deployment; and the in-process chain of
the embedded default is rebuilt from these recorded transactions (with the mints and burns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import OneAggregate
from domain.errors import InvalidState


def deployment_id(token_id: UUID) -> UUID:
    """The deployment stream of a token."""
    return uuid5(NAMESPACE_URL, f"one:token-deployment:{token_id}")


class TokenDeployment(OneAggregate):
    """The (latest) signed deployment transaction of a token's contract, and whether it landed."""

    if TYPE_CHECKING:
        token_id: str
        address: str
        tx: dict[str, Any]
        confirmed: bool

    class Signed(OneAggregate.Created):
        """A deployment was signed (not yet broadcast); `address` is where it will create the
        contract."""

        TYPE = "token_deployment.signed"
        token_id: str
        address: str
        tx_hash: str
        raw: str
        nonce: int

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.token_id = self.token_id
            aggregate.confirmed = False
            _keep(aggregate, self)

    class Resigned(OneAggregate.Event):
        """The previous transaction can never land (rejected, reverted, nonce taken): another was
        signed."""

        TYPE = "token_deployment.resigned"
        address: str
        tx_hash: str
        raw: str
        nonce: int

        def apply(self, aggregate: Any) -> None:
            _keep(aggregate, self)

    class Confirmed(OneAggregate.Event):
        """The contract is on chain."""

        TYPE = "token_deployment.confirmed"
        block_number: int

        def apply(self, aggregate: Any) -> None:
            aggregate.confirmed = True

    @classmethod
    def sign(cls, *, org_id: str, actor_id: str, token_id: UUID, address: str, tx_hash: str,
             raw: str, nonce: int) -> TokenDeployment:
        """Record the first signed deployment of a token."""
        return cls._create(cls.Signed, id=deployment_id(token_id), org_id=org_id, actor_id=actor_id,
                           token_id=str(token_id), address=address, tx_hash=tx_hash, raw=raw,
                           nonce=nonce)

    def resign(self, actor_id: str, *, address: str, tx_hash: str, raw: str, nonce: int) -> None:
        """Record a replacement for a transaction that can never land."""
        self._require_pending()
        self.trigger_event(self.Resigned, actor_id=actor_id, address=address, tx_hash=tx_hash,
                           raw=raw, nonce=nonce)

    def confirm(self, actor_id: str, tx_hash: str, block_number: int) -> None:
        """The recorded transaction created the contract."""
        self._require_pending()
        if tx_hash != self.tx["tx_hash"]:
            raise InvalidState("confirmation for another deployment transaction", "tx_hash")
        self.trigger_event(self.Confirmed, actor_id=actor_id, block_number=block_number)

    def _require_pending(self) -> None:
        if self.confirmed:
            raise InvalidState(f"the contract of token {self.token_id} is already deployed", "token_id")


def _keep(aggregate: Any, signed: Any) -> None:
    aggregate.address = signed.address
    aggregate.tx = {"tx_hash": signed.tx_hash, "raw": signed.raw, "nonce": signed.nonce}
