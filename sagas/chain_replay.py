"""The embedded default's in-process chain starts empty: it is rebuilt from the log.

Every transaction the platform signs (token deployments, mints, burns) is recorded in the log
before it is broadcast, so broadcasting them again in log order, from the same genesis, recreates
every contract at its address and every balance. The saga runner does this whenever it takes the
lead, before it signs anything new.
"""

from __future__ import annotations

import contextlib
import json

from eventsourcing.utils import get_topic

from domain.token_deployment import TokenDeployment
from domain.token_purchase import TokenPurchase
from eventlog.store import EventLog
from providers.chain import ChainError, SignedTx, TokenLedger

SIGNED_TOPICS = tuple(get_topic(event) for event in (
    TokenDeployment.Signed, TokenDeployment.Resigned, TokenPurchase.MintSigned,
    TokenPurchase.BurnSigned))


def replay_signed_transactions(event_log: EventLog, ledger: TokenLedger, chunk: int = 500) -> int:
    """Broadcast every recorded transaction again, in log order (the chain keeps what it already
    has and refuses what could never land, as it did the first time); return how many."""
    position, sent = 0, 0
    while notifications := event_log.recorder.select_notifications(start=position + 1, limit=chunk,
                                                                    topics=SIGNED_TOPICS):
        for notification in notifications:
            recorded = json.loads(notification.state)
            with contextlib.suppress(ChainError):
                ledger.broadcast(SignedTx(recorded["tx_hash"], recorded["raw"], recorded["nonce"], ""))
            sent += 1
        position = notifications[-1].id
    ledger.resync_nonces()
    return sent
