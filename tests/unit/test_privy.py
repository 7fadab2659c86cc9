"""Privy identity tokens: the real verification code against tokens signed with keys made here."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from providers.privy import PrivyTokenInvalid, PrivyVerifier, load_verification_key

APP_ID = "cl-test-app"
DID = "did:privy:cm0abcdefghij"


def _keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


PRIVATE, PUBLIC_PEM = _keypair()


def privy_token(private: Any = PRIVATE, algorithm: str = "ES256", **overrides: Any) -> str:
    """An identity token shaped like Privy's (claims per its docs)."""
    now = int(time.time())
    claims = {"sub": DID, "iss": "privy.io", "aud": APP_ID, "iat": now, "exp": now + 3600,
              "linked_accounts": json.dumps([
                  {"type": "email", "address": "ann@example.com"},
                  {"type": "wallet", "address": "0x" + "b" * 40, "chain_type": "ethereum",
                   "wallet_client_type": "privy"},
                  {"type": "wallet", "address": "0x" + "c" * 40, "chain_type": "ethereum",
                   "wallet_client_type": "metamask"},
              ])}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private, algorithm=algorithm)


@pytest.fixture
def verifier() -> PrivyVerifier:
    return PrivyVerifier(APP_ID, PUBLIC_PEM.replace("\n", "\\n"))  # as an environment variable


def test_a_valid_token_gives_the_did_email_wallets_and_method(verifier: PrivyVerifier) -> None:
    identity = verifier.verify(privy_token())
    assert identity.did == DID and identity.email == "ann@example.com"
    assert identity.app_wallet == "0x" + "b" * 40 and identity.ext_wallet == "0x" + "c" * 40
    assert identity.method == "email"


def test_the_sign_in_method_follows_the_linked_accounts(verifier: PrivyVerifier) -> None:
    social = json.dumps([{"type": "google_oauth", "email": "g@example.com", "subject": "1"}])
    wallet = json.dumps([{"type": "wallet", "address": "0x" + "d" * 40, "wallet_client_type": "rainbow"}])
    assert verifier.verify(privy_token(linked_accounts=social)).method == "social"
    assert verifier.verify(privy_token(linked_accounts=social)).email == "g@example.com"
    only_wallet = verifier.verify(privy_token(linked_accounts=wallet))
    assert only_wallet.method == "wallet" and only_wallet.email is None


def _hs256_with_the_public_key() -> str:
    """The classic algorithm-confusion token: HS256 keyed with the public key's PEM bytes
    (built by hand: PyJWT itself refuses to use a PEM as an HMAC secret)."""
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": DID, "iss": "privy.io", "aud": APP_ID, "iat": now,
                              "exp": now + 3600}).encode())
    signature = hmac.new(PUBLIC_PEM.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def _unsigned() -> str:
    now = int(time.time())
    return jwt.encode({"sub": DID, "iss": "privy.io", "aud": APP_ID, "iat": now, "exp": now + 60},
                      "", algorithm="none")


@pytest.mark.parametrize(("name", "token", "reason"), [
    ("expired", lambda: privy_token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "expired"),
    ("wrong audience", lambda: privy_token(aud="someone-else"), "audience"),
    ("wrong issuer", lambda: privy_token(iss="evil.example"), "issuer"),
    ("wrong signature", lambda: privy_token(private=_keypair()[0]), "Signature verification failed"),
    ("alg none", _unsigned, "alg"),
    ("HS256 with the public key", _hs256_with_the_public_key, "alg"),
    ("no expiry", lambda: privy_token(exp=None), "exp"),
    ("not a Privy DID", lambda: privy_token(sub="did:web:example.com"), "Privy DID"),
    ("garbage", lambda: "not.a.jwt", ""),
])
def test_untrusted_tokens_are_refused(verifier: PrivyVerifier, name: str, token: Any, reason: str) -> None:
    with pytest.raises(PrivyTokenInvalid) as refused:
        verifier.verify(token())
    assert reason.lower() in str(refused.value).lower(), name


def test_only_a_p256_public_key_is_accepted() -> None:
    rsa_free_curve = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValueError):
        load_verification_key(rsa_free_curve)
