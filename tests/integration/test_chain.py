"""The token ledger against a real anvil node and the in-process EVM: the same scenarios on both."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pytest
from eth_account import Account
from web3 import Web3

from providers.chain import (
    ChainError,
    ChainUnavailable,
    SignedTx,
    StaleNonce,
    TokenLedger,
    Web3Ledger,
    http_web3,
)
from providers.evm import DEV_DEPLOYER_KEY, in_process_web3
from tests.support.anvil import Anvil
from tests.support.processes import free_port

SEED = b"one-test-custody-seed-0123456789"
# account 1 of the dev mnemonic: funded on both chains, but not the owner of the tokens we deploy
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@dataclass
class Chain:
    kind: str
    w3: Web3

    def ledger(self, key: str = DEV_DEPLOYER_KEY, seed: bytes = SEED) -> Web3Ledger:
        """A new ledger, as a freshly started process would build it (its own NonceManager)."""
        return Web3Ledger(self.w3, key, seed, receipt_timeout_s=30.0)


@pytest.fixture(scope="module")
def anvil_node() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(params=["anvil", "in_process"])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    if request.param == "in_process":
        yield Chain("in_process", in_process_web3())
        return
    node: Anvil = request.getfixturevalue("anvil_node")
    snapshot = node.snapshot()
    yield Chain("anvil", http_web3(node.rpc_url))
    node.revert(snapshot)


@pytest.fixture
def ledger(chain: Chain) -> Web3Ledger:
    return chain.ledger()


@pytest.fixture
def token(ledger: Web3Ledger) -> str:
    return ledger.deploy_token(name="Test Creator Token", symbol="TCT")


def _mint(ledger: Web3Ledger, token: str, to: str, amount: int) -> SignedTx:
    tx = ledger.sign_mint(contract=token, to=to, amount=amount)
    ledger.broadcast(tx)
    assert ledger.wait_for_receipt(tx.tx_hash).succeeded
    return tx


def test_ledger_satisfies_protocol(ledger: Web3Ledger) -> None:
    assert isinstance(ledger, TokenLedger)


def test_deploy_mint_to_custodial_address_and_balance(chain: Chain, ledger: Web3Ledger, token: str) -> None:
    assert Web3.is_checksum_address(token)
    assert chain.w3.eth.get_code(Web3.to_checksum_address(token)) != b""
    buyer = ledger.custodial_address("person:buyer-1")
    tx = ledger.sign_mint(contract=token, to=buyer, amount=1_000)
    assert tx.sender == ledger.address and tx.raw.startswith("0x") and tx.tx_hash.startswith("0x")
    assert ledger.receipt(tx.tx_hash) is None  # signed, not broadcast
    ledger.broadcast(tx)
    receipt = ledger.wait_for_receipt(tx.tx_hash)
    assert receipt.succeeded and receipt.block_number > 0 and receipt.tx_hash == tx.tx_hash
    assert ledger.balance_of(token, buyer) == 1_000
    assert ledger.total_supply(token) == 1_000


def test_owner_burns_from_holder(ledger: Web3Ledger, token: str) -> None:
    holder = ledger.custodial_address("person:burn")
    _mint(ledger, token, holder, 100)
    burn = ledger.sign_burn(contract=token, holder=holder, amount=40)
    ledger.broadcast(burn)
    assert ledger.wait_for_receipt(burn.tx_hash).succeeded
    assert ledger.balance_of(token, holder) == 60
    assert ledger.total_supply(token) == 60
    over = ledger.sign_burn(contract=token, holder=holder, amount=61)  # more than held: reverts
    ledger.broadcast(over)
    assert not ledger.wait_for_receipt(over.tx_hash).succeeded
    assert ledger.balance_of(token, holder) == 60


def test_rebroadcast_of_the_same_signed_tx_mints_once(ledger: Web3Ledger, token: str) -> None:
    holder = ledger.custodial_address("person:rebroadcast")
    tx = _mint(ledger, token, holder, 7)
    for _ in range(3):
        ledger.broadcast(tx)  # mined already: "nonce too low" for this very hash is success
    assert ledger.balance_of(token, holder) == 7
    later = _mint(ledger, token, holder, 1)  # nonces stay in step with the node
    assert later.nonce == tx.nonce + 1
    assert ledger.balance_of(token, holder) == 8


def test_out_of_order_and_pending_rebroadcast(ledger: Web3Ledger, token: str) -> None:
    holder = ledger.custodial_address("person:pending")
    first = ledger.sign_mint(contract=token, to=holder, amount=1)
    second = ledger.sign_mint(contract=token, to=holder, amount=2)
    ledger.broadcast(second)  # nonce gap: held in the node's pool
    ledger.broadcast(second)  # "already known"
    assert ledger.receipt(second.tx_hash) is None
    ledger.broadcast(first)
    assert ledger.wait_for_receipt(first.tx_hash).succeeded
    assert ledger.wait_for_receipt(second.tx_hash).succeeded
    assert ledger.balance_of(token, holder) == 3


def test_crash_before_broadcast_recovers_with_exactly_one_mint(chain: Chain, token: str) -> None:
    saga_log: list[str] = []  # stands in for the saga's event stream (durable, serialised)
    before_crash = chain.ledger()
    holder = before_crash.custodial_address("person:crash")
    tx = before_crash.sign_mint(contract=token, to=holder, amount=500)
    saga_log.append(json.dumps({"type": "MintSigned", **asdict(tx)}))
    del before_crash  # the driver dies here: signed and recorded, never broadcast

    def recover() -> None:
        ledger = chain.ledger()  # a new process: fresh NonceManager
        recorded = json.loads(saga_log[-1])
        recorded.pop("type")
        signed = SignedTx(**recorded)
        if ledger.receipt(signed.tx_hash) is None:
            ledger.broadcast(signed)
        assert ledger.wait_for_receipt(signed.tx_hash).succeeded

    recover()
    recover()  # crashing again after the broadcast and recovering again changes nothing
    ledger = chain.ledger()
    ledger.broadcast(SignedTx(**{k: v for k, v in json.loads(saga_log[-1]).items() if k != "type"}))
    assert ledger.balance_of(token, holder) == 500
    assert ledger.total_supply(token) == 500


def test_recorded_tx_whose_nonce_was_taken_is_stale_and_is_re_signed(chain: Chain, token: str) -> None:
    crashed = chain.ledger()
    holder = crashed.custodial_address("person:stale")
    recorded = crashed.sign_mint(contract=token, to=holder, amount=5)  # recorded, then the driver dies
    survivor = chain.ledger()  # another process took the same nonce and used it first
    other = _mint(survivor, token, crashed.custodial_address("person:other"), 1)
    assert other.nonce == recorded.nonce
    recovering = chain.ledger()
    assert recovering.receipt(recorded.tx_hash) is None
    with pytest.raises(StaleNonce):
        recovering.broadcast(recorded)  # can never be mined now, so re-signing cannot mint twice
    _mint(recovering, token, holder, 5)
    assert recovering.balance_of(token, holder) == 5


def test_concurrent_signing_gets_distinct_consecutive_nonces(ledger: Web3Ledger, token: str) -> None:
    holders = [ledger.custodial_address(f"person:concurrent-{i}") for i in range(20)]
    start = ledger.nonces.resync()
    barrier = threading.Barrier(len(holders))

    def sign(holder: str) -> SignedTx:
        barrier.wait()
        return ledger.sign_mint(contract=token, to=holder, amount=10)

    with ThreadPoolExecutor(max_workers=len(holders)) as pool:
        signed = list(pool.map(sign, holders))
        assert sorted(tx.nonce for tx in signed) == list(range(start, start + len(holders)))
        list(pool.map(ledger.broadcast, reversed(signed)))  # any order; gaps close as they arrive
    for tx in signed:
        assert ledger.wait_for_receipt(tx.tx_hash).succeeded
    assert [ledger.balance_of(token, h) for h in holders] == [10] * len(holders)
    assert ledger.total_supply(token) == 10 * len(holders)


def test_custodial_addresses_are_deterministic_and_distinct(chain: Chain, ledger: Web3Ledger) -> None:
    ids = [f"person:{i}" for i in range(50)]
    addresses = [ledger.custodial_address(i) for i in ids]
    assert all(Web3.is_checksum_address(a) for a in addresses)
    assert len(set(addresses)) == len(ids)
    assert [chain.ledger(key=OTHER_KEY).custodial_address(i) for i in ids] == addresses  # seed, not signer
    assert chain.ledger(seed=b"another-custody-seed-0123456789").custodial_address(ids[0]) != addresses[0]


def test_non_owner_mint_reverts(chain: Chain, ledger: Web3Ledger, token: str) -> None:
    intruder = chain.ledger(key=OTHER_KEY)
    holder = ledger.custodial_address("person:intruder")
    tx = intruder.sign_mint(contract=token, to=holder, amount=1)
    try:
        intruder.broadcast(tx)
        receipt = intruder.wait_for_receipt(tx.tx_hash)
        assert not receipt.succeeded
    except ChainError:
        pass
    assert ledger.balance_of(token, holder) == 0


def test_bad_input_is_a_permanent_error(ledger: Web3Ledger, token: str) -> None:
    with pytest.raises(ChainError):
        ledger.sign_mint(contract=token, to="0x1234", amount=1)
    with pytest.raises(ChainError):
        ledger.sign_mint(contract="not-an-address", to=ledger.address, amount=1)
    with pytest.raises(ChainError):
        ledger.sign_mint(contract=token, to=ledger.address, amount=0)
    with pytest.raises(ChainError):
        ledger.balance_of(Account.create().address, ledger.address)  # no contract there


def test_node_down_is_transient() -> None:
    ledger = Web3Ledger(http_web3(f"http://127.0.0.1:{free_port()}", timeout_s=2.0), DEV_DEPLOYER_KEY, SEED)
    with pytest.raises(ChainUnavailable):
        ledger.sign_mint(contract=ledger.address, to=ledger.address, amount=1)
    with pytest.raises(ChainUnavailable):
        ledger.receipt("0x" + "11" * 32)


def test_node_restart_then_recovery(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A node that goes down between sign and broadcast: ChainUnavailable, then success once it is back."""
    with Anvil(state_file=tmp_path_factory.mktemp("anvil") / "state.json") as node:
        ledger = Web3Ledger(http_web3(node.rpc_url, timeout_s=2.0), DEV_DEPLOYER_KEY, SEED)
        token = ledger.deploy_token(name="Restart", symbol="RST")
        holder = ledger.custodial_address("person:restart")
        tx = ledger.sign_mint(contract=token, to=holder, amount=3)
        node.stop()  # graceful: state dumped
        with pytest.raises(ChainUnavailable):
            ledger.broadcast(tx)
        node.start()
        ledger.broadcast(tx)
        assert ledger.wait_for_receipt(tx.tx_hash).succeeded
        assert ledger.balance_of(token, holder) == 3
