"""Domain errors: each carries a stable code, an HTTP-neutral kind and the field at fault."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by a domain rule. `code` is stable; clients may match on it."""

    code = "domain_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    """Input breaks an ontology or invariant rule."""

    code = "validation_error"


class NotFound(DomainError):
    """A referenced stream does not exist."""

    code = "not_found"


class VersionConflict(DomainError):
    """The expected version (If-Match) is not the current one, or a concurrent write won."""

    code = "version_conflict"


class AlreadyExists(DomainError):
    """The stream (or an active relationship with the same identity) already exists."""

    code = "already_exists"


class InvalidState(DomainError):
    """The aggregate is in a state that forbids the command (e.g. editing a deleted thing)."""

    code = "invalid_state"


class Gone(DomainError):
    """The resource existed but no longer serves (e.g. an expired invitation)."""

    code = "gone"


class Forbidden(DomainError):
    """The caller is known but their role or relation to the resource does not permit this."""

    code = "forbidden"


class AccountSuspended(Forbidden):
    """The caller's account is suspended or banned."""

    code = "account_suspended"
