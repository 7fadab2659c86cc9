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
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain import ontology
from domain.errors import ValidationFailed

_SEAL_VERSION: Final = "v1."
KEY_BYTES: Final = 32

_SPACE = ontology.SPACE_CLASS
EMAIL_PATTERN: Final = f"^[^@{_SPACE}\\x00]+@[^@{_SPACE}\\x00]+\\.[^@{_SPACE}\\x00]+$"
WALLET_PATTERN: Final = r"^0x[0-9a-fA-F]{40}$"
URL_PATTERN: Final = f"^https?://[^{_SPACE}\\x00]+$"


@dataclass(frozen=True)
class TextRule:
    """Free text: not blank, at most `max_length` characters (stored stripped)."""

    max_length: int

    def check(self, value: str, field: str) -> str:
        """The stored form of `value`, or ValidationFailed."""
        return ontology.validate_name(value, field, self.max_length)

    def json_schema(self) -> dict[str, Any]:
        """The same rule as JSON Schema."""
        return {"type": "string", "maxLength": self.max_length, "pattern": ontology.NOT_BLANK}


@dataclass(frozen=True)
class PatternRule:
    """A value matching `pattern` whole (no surrounding whitespace), stored as `canonical` of it."""

    pattern: str
    what: str
    canonical: Callable[[str], str] = str
    max_length: int = 2048

    def check(self, value: str, field: str) -> str:
        """The stored form of `value`, or ValidationFailed."""
        if len(value) > self.max_length or not re.fullmatch(self.pattern, value):
            raise ValidationFailed(f"{field} must be {self.what}", field)
        return self.canonical(value)

    def json_schema(self) -> dict[str, Any]:
        """The same rule as JSON Schema."""
        return {"type": "string", "maxLength": self.max_length, "pattern": self.pattern,
                "description": self.what}


_WALLET = PatternRule(WALLET_PATTERN, "an EVM address (0x + 40 hex digits)")
_LINK = PatternRule(URL_PATTERN, "an http(s) URL")
RULES: Final[Mapping[str, TextRule | PatternRule]] = {
    "name": TextRule(200),
    "email": PatternRule(EMAIL_PATTERN, "an email address", str.lower, 320),
    "username": PatternRule(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{2,31}$",
                            "3-32 letters, digits, '_', '.' or '-' (stored lowercase)", str.lower),
    "bio": TextRule(2000),
    "avatar_url": _LINK,
    "ext_wallet": _WALLET,
    "app_wallet": _WALLET,
    "privy_did": PatternRule(r"^did:[a-z0-9]+:[A-Za-z0-9._:%-]{1,200}$", "a DID such as did:privy:…"),
    "city": TextRule(100),
    "country": TextRule(100),
    "country_code": PatternRule(r"^[A-Za-z]{2}$", "an ISO 3166 alpha-2 code", str.upper),
    "github_url": _LINK,
    "twitter_url": _LINK,
    "linkedin_url": _LINK,
    "telegram_handle": PatternRule(r"^@?[A-Za-z0-9_]{5,32}$", "a Telegram handle"),
}
"""How each personal field is checked and stored."""

PERSONAL_FIELDS: Final[frozenset[str]] = frozenset(RULES)
"""Everything that identifies a person: sealed in the log, erasable."""


def validate_personal(fields: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    """Canonical personal fields (emails and usernames lowercased, text stripped).

    A None value is kept (it removes the field in an update)."""
    clean: dict[str, str | None] = {}
    for name, value in fields.items():
        field = f"{prefix}{name}"
        if name not in RULES:
            raise ValidationFailed(f"{name} is not a personal field", field)
        if value is None:
            clean[name] = None
            continue
        if not isinstance(value, str):
            raise ValidationFailed(f"{field} must be a string", field)
        clean[name] = RULES[name].check(value, field)
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
