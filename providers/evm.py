"""In-process EVM for the embedded default: web3.py over eth-tester + py-evm, no node to run.

``in_process_web3()`` returns a ``Web3`` whose provider behaves like a small JSON-RPC node for
locally signed transactions, so ``providers.chain.Web3Ledger`` runs unchanged on it and on anvil:

- calls are serialised under a lock (py-evm is not thread-safe; sagas sign and broadcast from threads);
- ``eth_sendRawTransaction`` failures come back as JSON-RPC errors (``Web3RPCError``), not Python
  exceptions: ``nonce too low`` for a mined or superseded nonce, ``already known`` for a pooled one;
- a transaction whose nonce is ahead of the sender's is held in a pool and mined as soon as the gap
  closes, as a real node's mempool does (concurrent sagas broadcast in any order).

Every accepted transaction is mined at once into its own block. The chain id is eth-tester's fixed
``131277322940537``. The accounts are those of anvil's well-known dev mnemonic, so ``DEV_DEPLOYER_KEY``
(account 0) is funded on both; never use it on a real network.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils.conversions import to_bytes
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

__all__ = [
    "DEV_DEPLOYER_KEY",
    "DEV_HD_PATH",
    "DEV_MNEMONIC",
    "IN_PROCESS_CHAIN_ID",
    "InProcessEVMProvider",
    "in_process_web3",
]

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_HD_PATH = "m/44'/60'/0'/0"  # eth-tester appends /<index>; anvil's default derivation
DEV_DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # account 0
IN_PROCESS_CHAIN_ID = 131277322940537
DEFAULT_BALANCE_WEI = 10**24


class InProcessEVMProvider(EthereumTesterProvider):
    """An ``EthereumTesterProvider`` made thread-safe and node-like for raw transactions."""

    def __init__(self, tester: EthereumTester, backend: PyEVMBackend) -> None:
        super().__init__(tester)
        self._tester = tester
        self._backend = backend
        self._lock = threading.RLock()
        self._pool: dict[tuple[bytes, int], tuple[bytes, str]] = {}  # (sender, nonce) -> (raw, hash)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            if method == "eth_sendRawTransaction":
                return self._send_raw(params[0])
            return super().make_request(method, params)

    def _send_raw(self, raw_param: Any) -> RPCResponse:
        raw = raw_param if isinstance(raw_param, bytes) else to_bytes(hexstr=str(raw_param))
        try:
            tx = self._backend.chain.get_vm().get_transaction_builder().decode(raw)
            sender, nonce, tx_hash = tx.sender, tx.nonce, "0x" + tx.hash.hex()
        except Exception as exc:  # malformed or unsigned bytes
            return self._error(-32602, f"invalid raw transaction: {exc}")
        pooled = self._pool.get((sender, nonce))
        if pooled is not None:
            if pooled[1] == tx_hash:
                return self._error(-32000, "already known")
            return self._error(-32000, "replacement transaction underpriced")
        expected = self._backend.get_nonce(sender)
        if nonce < expected:
            return self._error(-32000, "nonce too low")
        if nonce > expected:
            self._pool[(sender, nonce)] = (raw, tx_hash)
            return self._result(tx_hash)
        try:
            self._tester.send_raw_transaction("0x" + raw.hex())
        except Exception as exc:  # invalid for the current state: funds, fees, gas limit
            return self._error(-32000, str(exc))
        self._flush(sender, nonce + 1)
        return self._result(tx_hash)

    def _flush(self, sender: bytes, nonce: int) -> None:
        """Mine pooled transactions of ``sender`` that have become executable, in nonce order."""
        while (entry := self._pool.pop((sender, nonce), None)) is not None:
            try:
                self._tester.send_raw_transaction("0x" + entry[0].hex())
            except Exception:
                return  # dropped, as a node drops an invalid pooled tx; the gap stays
            nonce += 1

    def _result(self, result: Any) -> RPCResponse:
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, "result": result})

    def _error(self, code: int, message: str) -> RPCResponse:
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, "error": {"code": code, "message": message}})


def in_process_web3(
    *, deployer_key: str = DEV_DEPLOYER_KEY, balance_wei: int = DEFAULT_BALANCE_WEI, accounts: int = 10
) -> Web3:
    """A fresh in-process chain with the dev mnemonic's accounts and ``deployer_key`` funded."""
    state = PyEVMBackend.generate_genesis_state(
        overrides={"balance": balance_wei}, num_accounts=accounts, mnemonic=DEV_MNEMONIC, hd_path=DEV_HD_PATH
    )
    deployer = to_bytes(hexstr=Account.from_key(deployer_key).address)
    if deployer not in state:
        state[deployer] = {"balance": balance_wei, "nonce": 0, "code": b"", "storage": {}}
    backend = PyEVMBackend(genesis_state=state, mnemonic=DEV_MNEMONIC, hd_path=DEV_HD_PATH)
    return Web3(InProcessEVMProvider(EthereumTester(backend), backend))
