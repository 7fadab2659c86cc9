"""Chain transactions of the platform's signer key: signed, recorded in the log, then broadcast,
one at a time.

Recording before broadcasting makes every transaction exactly-once across crashes (after one, the
recorded bytes are broadcast again, never a new transaction). Doing the three under one lock keeps
nonces gap-free: if recording fails (another process moved the saga first), the unsent
transaction's nonce is released before anyone signs again. The purchase driver (mints, burns) and
the token deployer (deployments) share one `Signer`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from providers.chain import ChainUnavailable, SignedTx, TokenLedger


class Signer:
    """Sign, record, broadcast — for one ledger (one signer key)."""

    def __init__(self, ledger: TokenLedger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()

    def sign_record_broadcast(self, sign: Callable[[], SignedTx],
                              record: Callable[[SignedTx], None]) -> SignedTx:
        """Sign, `record` (append to the log), then broadcast; a broadcast that fails for want of
        the node is left to the receipt checks, which broadcast the recorded bytes again."""
        with self._lock:
            signed = sign()
            try:
                record(signed)
            except BaseException:
                self.ledger.resync_nonces()
                raise
            with contextlib.suppress(ChainUnavailable):
                self.ledger.broadcast(signed)
        return signed
