"""Privy identity tokens: ES256 JWTs whose claims name the user's DID and linked accounts.

Verification checks the signature against the app's verification key (`PRIVY_VERIFICATION_KEY`,
a PEM public key from the Privy dashboard), the algorithm (ES256 only: `none` and HMAC are
refused), the audience (`PRIVY_APP_ID`), the issuer (`privy.io`) and the expiry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

ISSUER = "privy.io"


class PrivyTokenInvalid(Exception):
    """The identity token is not one this app can trust (the message says why)."""


@dataclass(frozen=True)
class PrivyIdentity:
    """Who signed in: the DID and what their linked accounts tell."""

    did: str
    email: str | None
    ext_wallet: str | None
    app_wallet: str | None
    method: str


def load_verification_key(pem: str) -> EllipticCurvePublicKey:
    """The app's P-256 public key (a PEM; `\\n` escapes from an environment variable allowed)."""
    key = load_pem_public_key(pem.replace("\\n", "\n").strip().encode())
    if not isinstance(key, EllipticCurvePublicKey) or not isinstance(key.curve, SECP256R1):
        raise ValueError("PRIVY_VERIFICATION_KEY must be a P-256 (ES256) public key")
    return key


class PrivyVerifier:
    """Verifies identity tokens of one Privy app."""

    def __init__(self, app_id: str, verification_key: str) -> None:
        self.app_id = app_id
        self.key = load_verification_key(verification_key)

    def verify(self, token: str) -> PrivyIdentity:
        """The identity in a valid token; PrivyTokenInvalid otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=["ES256"], audience=self.app_id, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise PrivyTokenInvalid(str(error)) from error
        did = claims["sub"]
        if not isinstance(did, str) or not did.startswith("did:privy:"):
            raise PrivyTokenInvalid("the subject is not a Privy DID")
        return identity_of(did, _accounts(claims.get("linked_accounts")))


def _accounts(raw: object) -> list[dict[str, Any]]:
    """`linked_accounts` is a stringified JSON array (a list is accepted too)."""
    try:
        accounts = json.loads(raw) if isinstance(raw, str) else raw or []
    except ValueError as error:
        raise PrivyTokenInvalid("linked_accounts is not JSON") from error
    if not isinstance(accounts, list):
        raise PrivyTokenInvalid("linked_accounts is not a list")
    return [a for a in accounts if isinstance(a, dict)]


def identity_of(did: str, accounts: list[dict[str, Any]]) -> PrivyIdentity:
    """Email, wallets (Privy's embedded one is the app wallet) and the primary sign-in method."""
    email = next((str(a["address"]) for a in accounts if a.get("type") == "email" and a.get("address")),
                 None)
    social = [a for a in accounts if str(a.get("type", "")).endswith("_oauth")]
    email = email or next((str(a["email"]) for a in social if a.get("email")), None)
    wallets = [a for a in accounts
               if a.get("type") == "wallet" and a.get("chain_type", "ethereum") == "ethereum"]
    app = next((str(a["address"]) for a in wallets if a.get("wallet_client_type") == "privy"), None)
    ext = next((str(a["address"]) for a in wallets if a.get("wallet_client_type") != "privy"), None)
    if any(a.get("type") == "email" for a in accounts):
        method = "email"
    elif social:
        method = "social"
    elif wallets:
        method = "wallet"
    else:
        raise PrivyTokenInvalid("the token has no email, social or wallet account")
    return PrivyIdentity(did=did, email=email, ext_wallet=ext, app_wallet=app, method=method)
