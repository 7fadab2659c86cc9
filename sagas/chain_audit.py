"""Compare the chain with the read models: for every token, is its contract there, and do its
`totalSupply` and each holder's `balanceOf` equal the holdings the platform recorded?

Holders are found in the holdings read model (`holds_tokens` edges); the address a holder's
tokens were minted to is the wallet each purchase recorded when it started (the buyer's own, or
a custodial address derived from the buyer's id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic

from domain.token_purchase import TOKEN_DECIMALS, TokenPurchase
from eventlog.store import EventLog
from providers.chain import ChainError, TokenLedger

_STARTED = get_topic(TokenPurchase.Started)
_UNIT = 10**TOKEN_DECIMALS


@dataclass(frozen=True)
class HolderAudit:
    """One holder of a token: the balance recorded and the balance on chain (base units)."""

    holder_id: str
    address: str
    recorded: int
    on_chain: int

    @property
    def agrees(self) -> bool:
        """The chain holds what the platform recorded."""
        return self.recorded == self.on_chain


@dataclass(frozen=True)
class TokenAudit:
    """One token's contract compared with its holdings (amounts in base units)."""

    org_id: str
    token_id: str
    contract: str
    deployed: bool
    recorded_supply: int
    on_chain_supply: int
    holders: list[HolderAudit] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """Deployed, with the recorded supply and every recorded balance on chain."""
        return (self.deployed and self.recorded_supply == self.on_chain_supply
                and all(holder.agrees for holder in self.holders))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (amounts as strings: they exceed JSON's safe integers)."""
        return {
            "org_id": self.org_id, "token_id": self.token_id, "contract": self.contract,
            "deployed": self.deployed, "agrees": self.agrees,
            "recorded_supply": str(self.recorded_supply), "on_chain_supply": str(self.on_chain_supply),
            "holders": [{"holder_id": h.holder_id, "address": h.address, "recorded": str(h.recorded),
                         "on_chain": str(h.on_chain), "agrees": h.agrees} for h in self.holders],
        }


def audit_chain(event_log: EventLog, conn: Any, ledger: TokenLedger) -> list[TokenAudit]:
    """Every deployed token compared with the chain `ledger` reaches (`conn`: a read connection)."""
    wallets = _purchase_wallets(event_log, ledger)
    return [_audit_token(conn, ledger, wallets, org_id, token_id, contract)
            for org_id, token_id, contract in _deployed_tokens(conn)]


def missing_contracts(conn: Any, ledger: TokenLedger) -> list[str]:
    """Tokens recorded as deployed whose contract the chain does not hold ("token at address")."""
    return [f"{token_id} at {contract}" for _, token_id, contract in _deployed_tokens(conn)
            if not _deployed(ledger, contract)]


def _deployed_tokens(conn: Any) -> list[tuple[str, str, str]]:
    """(org, token, contract address) of every token with a recorded contract."""
    rows: list[tuple[str, str, str]] = conn.execute(
        "SELECT org_id, id::text, properties->>'contractAddress' FROM things"
        " WHERE type = 'token' AND properties ? 'contractAddress' ORDER BY created_position"
    ).fetchall()
    return rows


def _audit_token(conn: Any, ledger: TokenLedger, wallets: dict[tuple[str, str], str],
                 org_id: str, token_id: str, contract: str) -> TokenAudit:
    holdings = conn.execute(
        "SELECT from_id::text, CASE WHEN jsonb_typeof(metadata->'balance') = 'number'"
        " THEN (metadata->>'balance')::numeric ELSE 0 END FROM connections"
        " WHERE to_id = %s AND org_id = %s AND type = 'holds_tokens' AND removed_at IS NULL"
        " ORDER BY from_id", (token_id, org_id),
    ).fetchall()
    deployed = _deployed(ledger, contract)
    holders = [
        HolderAudit(holder, address, int(Decimal(balance) * _UNIT),
                    ledger.balance_of(contract, address) if deployed else 0)
        for holder, balance in holdings
        for address in [wallets.get((token_id, holder)) or ledger.custodial_address(holder)]
    ]
    return TokenAudit(org_id, token_id, contract, deployed,
                      recorded_supply=sum(holder.recorded for holder in holders),
                      on_chain_supply=ledger.total_supply(contract) if deployed else 0,
                      holders=holders)


def _deployed(ledger: TokenLedger, contract: str) -> bool:
    try:
        return ledger.has_code(contract)
    except ChainError:
        return False


def _purchase_wallets(event_log: EventLog, ledger: TokenLedger) -> dict[tuple[str, str], str]:
    """(token, buyer) → the address the buyer's purchases of the token minted to."""
    wallets: dict[tuple[str, str], str] = {}
    position = 0
    while started := event_log.recorder.select_notifications(start=position + 1, limit=500,
                                                             topics=(_STARTED,)):
        for notification in started:
            purchase = json.loads(notification.state)
            buyer = str(purchase["buyer_id"])
            wallets[(str(purchase["token_id"]), buyer)] = (purchase["wallet"]
                                                           or ledger.custodial_address(buyer))
        position = started[-1].id
    return wallets
