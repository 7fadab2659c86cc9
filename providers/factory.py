"""Build the configured providers: real services when configured, in-process sandboxes otherwise."""

from __future__ import annotations

from infra.database import ConnectionInfo
from infra.settings import Settings
from providers.chain import TokenLedger, Web3Ledger, http_web3
from providers.embeddings import Embedder, EmbedderMisconfigured, EmbedderSpec
from providers.payments import PaymentGateway
from providers.privy import PrivyVerifier
from providers.sandbox_state import DatabaseStore
from providers.stripe_gateway import StripeGateway


def build_payments(settings: Settings, db: ConnectionInfo) -> PaymentGateway:
    """Stripe (`STRIPE_API_KEY`, optional `STRIPE_API_BASE`), else the Stripe test-mode sandbox
    whose state is kept in the database (idempotency survives restarts and is shared by every
    process)."""
    if settings.stripe_api_key:
        return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
    from providers.stripe_sandbox import sandbox_gateway

    return sandbox_gateway(store=DatabaseStore(db.conninfo))


def build_ledger(settings: Settings) -> TokenLedger:
    """An EVM over JSON-RPC (`CHAIN_RPC_URL` + `CHAIN_PRIVATE_KEY`), else the in-process EVM
    (eth-tester + py-evm: its chain lives in memory, and the leading saga runner rebuilds it from
    the signed transactions the log records)."""
    seed = settings.custody_seed.encode()
    if settings.chain_rpc_url:
        if not settings.chain_private_key:
            raise ValueError("CHAIN_PRIVATE_KEY is required with CHAIN_RPC_URL")
        return Web3Ledger(http_web3(settings.chain_rpc_url), settings.chain_private_key, seed)
    from providers.evm import DEV_DEPLOYER_KEY, in_process_web3

    return Web3Ledger(in_process_web3(), DEV_DEPLOYER_KEY, seed)


EMBEDDERS = ("local", "openai")


def embedder_spec(settings: Settings) -> EmbedderSpec:
    """The vector space the settings ask for: `ONE_EMBEDDER` (local | openai), `ONE_EMBEDDING_MODEL`
    (default per provider), `ONE_EMBEDDING_DIMENSIONS`, and for openai `OPENAI_BASE_URL`."""
    if settings.embedder == "local":
        from providers.local_embeddings import MODEL_ID

        spec = EmbedderSpec(provider="local", model=settings.embedding_model or MODEL_ID,
                            dimensions=settings.embedding_dimensions)
        _check_local(spec)
        return EmbedderSpec(provider="local", model=MODEL_ID)
    if settings.embedder == "openai":
        from providers.openai_embeddings import DEFAULT_MODEL

        return EmbedderSpec(provider="openai", model=settings.embedding_model or DEFAULT_MODEL,
                            base_url=settings.openai_base_url, dimensions=settings.embedding_dimensions)
    raise EmbedderMisconfigured(
        f"ONE_EMBEDDER={settings.embedder!r} is not an embedder; use one of {', '.join(EMBEDDERS)}")


def build_embedder(spec: EmbedderSpec, settings: Settings) -> Embedder:
    """The embedder for `spec` (e.g. one stored with an index); the API key comes from the settings."""
    if spec.provider == "local":
        _check_local(spec)
        from providers.local_embeddings import LocalMiniLM

        return LocalMiniLM()
    if spec.provider == "openai":
        from providers.openai_embeddings import OpenAIEmbedder

        return OpenAIEmbedder(spec.model, api_key=settings.openai_api_key, base_url=spec.base_url,
                              dimensions=spec.dimensions)
    raise EmbedderMisconfigured(
        f"embedder provider {spec.provider!r} is unknown; ONE_EMBEDDER takes one of {', '.join(EMBEDDERS)}")


def _check_local(spec: EmbedderSpec) -> None:
    from providers.local_embeddings import DIMENSION, MODEL_ID

    if spec.model != MODEL_ID:
        raise EmbedderMisconfigured(
            f"the local embedder only runs {MODEL_ID}, not {spec.model!r} (unset ONE_EMBEDDING_MODEL"
            " or use ONE_EMBEDDER=openai)")
    if spec.dimensions not in (None, DIMENSION):
        raise EmbedderMisconfigured(
            f"the local embedder's vectors have {DIMENSION} dimensions, not {spec.dimensions}"
            " (unset ONE_EMBEDDING_DIMENSIONS)")


def build_privy(settings: Settings) -> PrivyVerifier | None:
    """The Privy identity-token verifier, when `PRIVY_APP_ID` and `PRIVY_VERIFICATION_KEY` are set."""
    if not settings.privy_app_id and not settings.privy_verification_key:
        return None
    if not (settings.privy_app_id and settings.privy_verification_key):
        raise ValueError("Privy sign-in needs both PRIVY_APP_ID and PRIVY_VERIFICATION_KEY")
    return PrivyVerifier(settings.privy_app_id, settings.privy_verification_key)
