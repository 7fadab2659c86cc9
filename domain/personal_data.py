"""Personal data: which fields of a person are personal, their validation, and their sealing.

A person's personal fields never enter the log in clear: they are sealed (AES-256-GCM, the person's
id as associated data) with a key of that person's that is kept outside the log. Destroying the
key erases the data everywhere the log goes (crypto-shredding); nothing in the log is rewritten.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain import ontology
from domain.errors import ValidationFailed

_SEAL_VERSION: Final = "v1."
KEY_BYTES: Final = 32

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{2,31}$")
_WALLET = re.compile(r"^0x[0-9a-fA-F]{40}$")
_URL = re.compile(r"^https?://[^\s]+$")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
_TELEGRAM = re.compile(r"^@?[A-Za-z0-9_]{5,32}$")
_DID = re.compile(r"^did:[a-z0-9]+:[A-Za-z0-9._:%-]{1,200}$")


def _text(max_length: int) -> Callable[[str, str], str]:
    def check(value: str, field: str) -> str:
        return ontology.validate_name(value, field, max_length)

    return check


def _pattern(pattern: re.Pattern[str], what: str, transform: Callable[[str], str] = str.strip,
             max_length: int = 2048) -> Callable[[str, str], str]:
    def check(value: str, field: str) -> str:
        text = transform(value.strip())
        if len(text) > max_length or not pattern.match(text):
            raise ValidationFailed(f"{field} must be {what}", field)
        return text

    return check


_VALIDATORS: Final[Mapping[str, Callable[[str, str], str]]] = {
    "name": _text(200),
    "email": _pattern(_EMAIL, "an email address", str.lower, 320),
    "username": _pattern(_USERNAME, "3-32 lowercase letters, digits, '_', '.' or '-'", str.lower),
    "bio": _text(2000),
    "avatar_url": _pattern(_URL, "an http(s) URL"),
    "ext_wallet": _pattern(_WALLET, "an EVM address (0x + 40 hex digits)"),
    "app_wallet": _pattern(_WALLET, "an EVM address (0x + 40 hex digits)"),
    "privy_did": _pattern(_DID, "a DID such as did:privy:…"),
    "city": _text(100),
    "country": _text(100),
    "country_code": _pattern(_COUNTRY_CODE, "an ISO 3166 alpha-2 code", str.upper),
    "github_url": _pattern(_URL, "an http(s) URL"),
    "twitter_url": _pattern(_URL, "an http(s) URL"),
    "linkedin_url": _pattern(_URL, "an http(s) URL"),
    "telegram_handle": _pattern(_TELEGRAM, "a Telegram handle"),
}

PERSONAL_FIELDS: Final[frozenset[str]] = frozenset(_VALIDATORS)
"""Everything that identifies a person: sealed in the log, erasable."""


def validate_personal(fields: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    """Canonical personal fields (emails and usernames lowercased, text stripped).

    A None value is kept (it removes the field in an update)."""
    clean: dict[str, str | None] = {}
    for name, value in fields.items():
        field = f"{prefix}{name}"
        if name not in _VALIDATORS:
            raise ValidationFailed(f"{name} is not a personal field", field)
        if value is None:
            clean[name] = None
            continue
        if not isinstance(value, str):
            raise ValidationFailed(f"{field} must be a string", field)
        clean[name] = _VALIDATORS[name](value, field)
    return clean


def new_key() -> bytes:
    """A fresh random 256-bit key for one person."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, person_id: str, fields: Mapping[str, Any]) -> str:
    """Encrypt personal fields for the log (a new random nonce each time)."""
    nonce = os.urandom(12)
    plain = json.dumps(dict(fields), separators=(",", ":"), sort_keys=True).encode()
    cipher = AESGCM(key).encrypt(nonce, plain, person_id.encode())
    return _SEAL_VERSION + base64.urlsafe_b64encode(nonce + cipher).decode()


def unseal(key: bytes | None, person_id: str, sealed: str) -> dict[str, Any] | None:
    """The personal fields sealed in `sealed`, or None once the person's key is destroyed."""
    if key is None:
        return None
    if not sealed.startswith(_SEAL_VERSION):
        raise ValueError("unknown sealed personal data format")
    raw = base64.urlsafe_b64decode(sealed[len(_SEAL_VERSION):])
    try:
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], person_id.encode())
    except InvalidTag as error:
        raise ValueError(f"personal data of {person_id} does not match its key") from error
    found: dict[str, Any] = json.loads(plain)
    return found
