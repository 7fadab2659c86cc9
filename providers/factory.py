"""Build the configured providers: real services when configured, in-process sandboxes otherwise."""

from __future__ import annotations

from pathlib import Path

from infra.settings import Settings
from providers.chain import TokenLedger, Web3Ledger, http_web3
from providers.payments import PaymentGateway
from providers.stripe_gateway import StripeGateway


def build_payments(settings: Settings) -> PaymentGateway:
    """Stripe (`STRIPE_API_KEY`, optional `STRIPE_API_BASE`), else the Stripe test-mode sandbox
    whose state is kept under the data dir (so idempotency survives restarts)."""
    if settings.stripe_api_key:
        return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
    from providers.stripe_sandbox import sandbox_gateway

    state = None if settings.database_url else Path(settings.data_dir) / "stripe-sandbox.json"
    return sandbox_gateway(state_file=state)


def build_ledger(settings: Settings) -> TokenLedger:
    """An EVM over JSON-RPC (`CHAIN_RPC_URL` + `CHAIN_PRIVATE_KEY`), else the in-process EVM
    (eth-tester + py-evm; its chain lives in memory and starts empty on every start)."""
    seed = settings.custody_seed.encode()
    if settings.chain_rpc_url:
        if not settings.chain_private_key:
            raise ValueError("CHAIN_PRIVATE_KEY is required with CHAIN_RPC_URL")
        return Web3Ledger(http_web3(settings.chain_rpc_url), settings.chain_private_key, seed)
    from providers.evm import DEV_DEPLOYER_KEY, in_process_web3

    return Web3Ledger(in_process_web3(), DEV_DEPLOYER_KEY, seed)
