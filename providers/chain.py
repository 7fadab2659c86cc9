"""Token ledger: ERC-20 deploy, mint and burn on any EVM JSON-RPC, crash-safe by construction.

``TokenLedger`` is what the token purchase saga calls; ``Web3Ledger`` implements it with web3.py 8
over any JSON-RPC node (a real network, anvil in tests) or the in-process EVM of ``providers.evm``
(embedded default). The contract is ``contracts/OneToken.sol`` (its committed artifact).

Transactions are signed locally with an explicit nonce and are *not* broadcast by the signing call,
so the saga can make a mint (or burn) exactly-once across crashes::

    tx = ledger.sign_mint(contract=c, to=wallet, amount=n)   # nonce from the NonceManager
    append event MintSigned(tx.tx_hash, tx.raw, tx.nonce)   # durable BEFORE anything leaves the process
    ledger.broadcast(tx)                                     # idempotent; retry on ChainUnavailable
    poll ledger.receipt(tx.tx_hash) until not None           # succeeded=False: reverted, nothing minted

Recovery after a crash at any point: take the recorded hash; ``receipt(hash)`` tells if it was mined;
if not, ``broadcast(SignedTx(recorded...))`` re-sends the *same* raw bytes (``already known`` or
``nonce too low`` for that very hash count as success). Never sign a second mint while the recorded
one can still be mined: the only safe moment to re-sign is when ``broadcast`` raised
``StaleNonce`` (its nonce was taken by another transaction, so the recorded one can never be mined)
or ``ChainError`` (the node rejected it; it is in no mempool). Re-broadcast recorded transactions on
recovery before signing new ones, so their nonces are used and do not leave gaps.

Nonces: one ``NonceManager`` per signer per process hands them out under a lock, starting from the
node's ``pending`` count, so concurrent sagas never collide; a nonce error on broadcast resyncs it from
the chain. Run one process per signer key (or give each process its own key).

Errors: ``ChainUnavailable`` is transient (node down, timeout): retry the same call. ``ChainError`` is
permanent (bad address, revert on deploy, rejected transaction).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import requests
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.conversions import to_bytes
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TooManyRequests,
    TransactionIndexingInProgress,
    TransactionNotFound,
    Web3RPCError,
)
from web3.providers.rpc.utils import ExceptionRetryConfiguration

__all__ = [
    "ARTIFACT_PATH",
    "ChainError",
    "ChainUnavailable",
    "NonceManager",
    "SignedTx",
    "StaleNonce",
    "TokenLedger",
    "TxReceipt",
    "Web3Ledger",
    "derive_custodial_key",
    "http_web3",
    "load_artifact",
]

ARTIFACT_PATH = Path(__file__).resolve().parent.parent / "contracts" / "artifacts" / "OneToken.json"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_UINT256 = 2**256 - 1
_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "already exists")
_TRANSIENT = (requests.RequestException, ProviderConnectionError, RequestTimedOut, TooManyRequests, OSError)


@dataclass(frozen=True)
class SignedTx:
    """A locally signed transaction: record it before broadcasting."""

    tx_hash: str  # 0x-hex
    raw: str  # 0x-hex of the signed bytes, re-broadcastable as is
    nonce: int
    sender: str  # checksum address


TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
"""topic 0 of the ERC-20 `Transfer` event."""


@dataclass(frozen=True)
class TxReceipt:
    tx_hash: str
    succeeded: bool  # False: mined but reverted (nothing minted or burned)
    block_number: int
    transfers_from: frozenset[str] = frozenset()
    """The (lowercase) addresses that emitted an ERC-20 `Transfer` in this transaction."""

    def transferred(self, contract: str) -> bool:
        """Whether `contract` moved tokens in this transaction: a mint or burn counts as done only
        then (a transaction to an address without code succeeds, and does nothing)."""
        return self.succeeded and contract.lower() in self.transfers_from


class ChainUnavailable(Exception):
    """Transient: the node is down, slow or rate-limiting. Retry the same call."""


class ChainError(Exception):
    """Permanent: bad input, a revert on deploy or call, or a transaction the node rejected."""


class StaleNonce(ChainError):
    """The signed transaction's nonce was used by another transaction: it can never be mined; sign again."""


@runtime_checkable
class TokenLedger(Protocol):
    @property
    def ephemeral(self) -> bool:
        """The chain lives in this process and starts empty (the embedded default's)."""
        ...

    def sign_deploy(self, *, name: str, symbol: str) -> tuple[SignedTx, str]: ...
    def sign_mint(self, *, contract: str, to: str, amount: int) -> SignedTx: ...
    def sign_burn(self, *, contract: str, holder: str, amount: int) -> SignedTx: ...
    def broadcast(self, tx: SignedTx) -> None: ...
    def receipt(self, tx_hash: str) -> TxReceipt | None: ...
    def has_code(self, address: str) -> bool: ...
    def balance_of(self, contract: str, holder: str) -> int: ...
    def total_supply(self, contract: str) -> int: ...
    def custodial_address(self, owner_id: str) -> str: ...
    def resync_nonces(self) -> None: ...


def load_artifact(path: Path = ARTIFACT_PATH) -> dict[str, Any]:
    """The compiled contract artifact (``contracts/compile.mjs`` output)."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def http_web3(url: str, *, timeout_s: float = 10.0, retries: int = 2) -> Web3:
    """A ``Web3`` over HTTP JSON-RPC with a bounded request timeout and few retries (fail fast)."""
    # web3 8: ``errors`` must be given (its pydantic model rejects the documented ``None`` default)
    errors = (ConnectionError, requests.HTTPError, requests.Timeout)
    retry = ExceptionRetryConfiguration(errors=errors, retries=retries, backoff_factor=0.1)
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=retry
    )
    return Web3(provider)


def derive_custodial_key(seed: bytes, owner_id: str) -> bytes:
    """The custodial private key of ``owner_id``: keccak256(seed || utf8(owner_id)), rehashed if invalid."""
    material = seed + owner_id.encode()
    counter = 0
    while True:
        key = keccak(material if counter == 0 else material + counter.to_bytes(4, "big"))
        if 0 < int.from_bytes(key, "big") < SECP256K1_N:
            return key
        counter += 1


@contextmanager
def _rpc(what: str) -> Iterator[None]:
    """Map transport failures to ``ChainUnavailable``; leave our own errors alone."""
    try:
        yield
    except (ChainError, ChainUnavailable):
        raise
    except _TRANSIENT as exc:
        raise ChainUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


def _checksum(address: str, what: str) -> ChecksumAddress:
    if not isinstance(address, str) or not Web3.is_address(address):
        raise ChainError(f"{what} is not a valid address: {address!r}")
    return to_checksum_address(address)


def _amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_UINT256:
        raise ChainError(f"amount must be an integer in 1..2**256-1, got {amount!r}")
    return amount


def _rpc_message(exc: Web3RPCError) -> str:
    rpc = getattr(exc, "rpc_response", None)
    if isinstance(rpc, Mapping) and isinstance(rpc.get("error"), Mapping):
        return str(rpc["error"].get("message", exc))
    return str(exc)


class NonceManager:
    """Hands out consecutive nonces for one sender under a lock; ``resync()`` reloads from the node."""

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self.address = to_checksum_address(address)
        self._lock = threading.Lock()
        self._next: int | None = None

    def _chain_pending(self) -> int:
        with _rpc("eth_getTransactionCount"):
            return int(self._w3.eth.get_transaction_count(self.address, "pending"))

    def next(self) -> int:
        with self._lock:
            if self._next is None:
                self._next = self._chain_pending()
            nonce = self._next
            self._next += 1
            return nonce

    def resync(self) -> int:
        """Forget local state; the next nonce is the node's pending count. Returns it."""
        with self._lock:
            self._next = self._chain_pending()
            return self._next


class Web3Ledger:
    """``TokenLedger`` on web3.py 8: the signer key owns every token contract it deploys."""

    def __init__(
        self,
        w3: Web3,
        signer_private_key: str,
        custody_seed: bytes,
        *,
        artifact: Mapping[str, Any] | None = None,
        priority_fee_wei: int = 10**9,
        mint_gas: int = 150_000,
        burn_gas: int = 120_000,
        receipt_timeout_s: float = 120.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        if len(custody_seed) < 16:
            raise ValueError("custody_seed must be at least 16 bytes")
        self._w3 = w3
        self._account: LocalAccount = Account.from_key(signer_private_key)
        self._custody_seed = bytes(custody_seed)
        art = artifact or load_artifact()
        self._abi: list[dict[str, Any]] = list(art["abi"])
        self._bytecode: str = str(art["bytecode"])
        self._codec = w3.eth.contract(abi=self._abi)
        self.priority_fee_wei = priority_fee_wei
        self.mint_gas = mint_gas
        self.burn_gas = burn_gas
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s = poll_interval_s
        self.nonces = NonceManager(w3, self._account.address)
        self._chain_id: int | None = None

    def resync_nonces(self) -> None:
        """Reload the next nonce from the node (after a signed transaction was abandoned unsent)."""
        self.nonces.resync()

    @property
    def ephemeral(self) -> bool:
        """Whether the chain is the in-process EVM (it starts empty on every start)."""
        from providers.evm import InProcessEVMProvider

        return isinstance(self._w3.provider, InProcessEVMProvider)

    @property
    def address(self) -> str:
        """The signer (contract owner) address."""
        return str(self._account.address)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with _rpc("eth_chainId"):
                self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    # ------------------------------------------------------------------------------------ signing

    def _fees(self) -> dict[str, int]:
        with _rpc("eth_getBlockByNumber"):
            block = self._w3.eth.get_block("latest")
            base = block.get("baseFeePerGas")
            if base is None:  # pre-London chain: legacy pricing
                return {"gasPrice": int(self._w3.eth.gas_price)}
        tip = self.priority_fee_wei
        return {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}

    def _sign(self, fields: dict[str, Any]) -> SignedTx:
        tx = {**fields, **self._fees(), "chainId": self.chain_id}
        tx["nonce"] = self.nonces.next()  # last: nothing that can fail sits between taking and signing
        signed = self._account.sign_transaction(tx)
        return SignedTx(
            tx_hash=Web3.to_hex(signed.hash),
            raw=Web3.to_hex(signed.raw_transaction),
            nonce=int(tx["nonce"]),
            sender=self.address,
        )

    def sign_deploy(self, *, name: str, symbol: str) -> tuple[SignedTx, str]:
        """A signed deployment of a new token owned by the signer, and its (nonce-determined) address."""
        data = (
            self._w3.eth.contract(abi=self._abi, bytecode=self._bytecode)
            .constructor(name, symbol, self.address)
            .data_in_transaction
        )
        with _rpc("eth_estimateGas"):
            try:
                gas = self._w3.eth.estimate_gas({"from": self.address, "data": data})
            except (ContractLogicError, Web3RPCError) as exc:
                raise ChainError(f"token deployment would revert: {exc}") from exc
        tx = self._sign({"data": data, "gas": int(gas * 5 // 4), "value": 0})
        raw_sender = to_bytes(hexstr=self.address)
        created = to_checksum_address(keccak(rlp.encode([raw_sender, tx.nonce]))[12:])
        return tx, created

    def sign_mint(self, *, contract: str, to: str, amount: int) -> SignedTx:
        target = _checksum(contract, "contract")
        data = self._codec.encode_abi("mint", args=[_checksum(to, "to"), _amount(amount)])
        return self._sign({"to": target, "data": data, "gas": self.mint_gas, "value": 0})

    def sign_burn(self, *, contract: str, holder: str, amount: int) -> SignedTx:
        target = _checksum(contract, "contract")
        data = self._codec.encode_abi("burnFrom", args=[_checksum(holder, "holder"), _amount(amount)])
        return self._sign({"to": target, "data": data, "gas": self.burn_gas, "value": 0})

    # ------------------------------------------------------------------------ broadcast, receipts

    def broadcast(self, tx: SignedTx) -> None:
        """Send the recorded raw bytes; idempotent for the same transaction."""
        try:
            raw = to_bytes(hexstr=tx.raw)
        except ValueError as exc:
            raise ChainError(f"raw transaction is not hex: {exc}") from exc
        with _rpc("eth_sendRawTransaction"):
            try:
                self._w3.eth.send_raw_transaction(raw)
                return
            except Web3RPCError as exc:
                message = _rpc_message(exc).lower()
            if any(marker in message for marker in _ALREADY_KNOWN) or self._is_known(tx.tx_hash):
                return
            self.nonces.resync()  # whatever the reason, local nonces may now be ahead of the node
            if "nonce" in message or "replacement" in message:
                raise StaleNonce(f"{tx.tx_hash} (nonce {tx.nonce}) rejected: {message}")
            raise ChainError(f"{tx.tx_hash} rejected: {message}")

    def _is_known(self, tx_hash: str) -> bool:
        try:
            self._w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except (TransactionNotFound, Web3RPCError):
            return False
        return True

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        with _rpc("eth_getTransactionReceipt"):
            try:
                rcpt = self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except (TransactionNotFound, TransactionIndexingInProgress):
                return None
            except Web3RPCError as exc:
                raise ChainUnavailable(f"eth_getTransactionReceipt: {_rpc_message(exc)}") from exc
        transfers = frozenset(
            str(entry["address"]).lower() for entry in rcpt.get("logs", ())
            if entry.get("topics") and Web3.to_hex(entry["topics"][0]) == TRANSFER_TOPIC
        )
        return TxReceipt(tx_hash=tx_hash, succeeded=rcpt["status"] == 1,
                         block_number=int(rcpt["blockNumber"]), transfers_from=transfers)

    def has_code(self, address: str) -> bool:
        """Whether a contract lives at `address` (a token whose contract is missing must not be
        minted into)."""
        with _rpc("eth_getCode"):
            return len(self._w3.eth.get_code(_checksum(address, "address"))) > 0

    def wait_for_receipt(self, tx_hash: str, timeout_s: float | None = None) -> TxReceipt:
        """Poll ``receipt`` until mined; ``ChainUnavailable`` after the timeout."""
        deadline = time.monotonic() + (self.receipt_timeout_s if timeout_s is None else timeout_s)
        while (rcpt := self.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"{tx_hash} not mined within the timeout")
            time.sleep(self.poll_interval_s)
        return rcpt

    def deploy_token(self, *, name: str, symbol: str) -> str:
        """Deploy a ``OneToken`` owned by the signer and wait for it; returns its checksum address."""
        tx, address = self.sign_deploy(name=name, symbol=symbol)
        self.broadcast(tx)
        rcpt = self.wait_for_receipt(tx.tx_hash)
        if not rcpt.succeeded:
            raise ChainError(f"token deployment {tx.tx_hash} reverted")
        return address

    # ------------------------------------------------------------------------------------- reads

    def _call(self, contract: str, fn: str, *args: Any) -> int:
        token = self._w3.eth.contract(address=_checksum(contract, "contract"), abi=self._abi)
        with _rpc(f"eth_call {fn}"):
            try:
                return int(token.functions[fn](*args).call())
            except (BadFunctionCallOutput, ContractLogicError) as exc:
                raise ChainError(f"{fn} on {contract} failed (not a OneToken?): {exc}") from exc

    def balance_of(self, contract: str, holder: str) -> int:
        return self._call(contract, "balanceOf", _checksum(holder, "holder"))

    def total_supply(self, contract: str) -> int:
        return self._call(contract, "totalSupply")

    def custodial_address(self, owner_id: str) -> str:
        """The deterministic custodial address of ``owner_id`` (keys derived from the custody seed)."""
        if not owner_id:
            raise ChainError("owner_id must not be empty")
        return str(Account.from_key(derive_custodial_key(self._custody_seed, owner_id)).address)
