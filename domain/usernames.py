"""Username claims: one stream per (organization, username) makes usernames unique.

The claim's id is derived from the username, so two people claiming the same name race on the
same stream and the log lets only one win. The username itself stays in the person's sealed
personal data; a claim only names its holder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import OneAggregate
from domain.errors import AlreadyExists


def username_claim_id(org_id: str, username: str) -> UUID:
    """The claim stream of a (canonical, lowercase) username in an organization."""
    return uuid5(NAMESPACE_URL, f"one:username:{org_id}:{username}")


class UsernameClaim(OneAggregate):
    """Who holds a username; released on rename or erasure."""

    if TYPE_CHECKING:
        person_id: str | None

    class Claimed(OneAggregate.Created):
        """The username was taken."""

        TYPE = "username.claimed"
        person_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.person_id = self.person_id

    class Released(OneAggregate.Event):
        """The username is free again."""

        TYPE = "username.released"

        def apply(self, aggregate: Any) -> None:
            aggregate.person_id = None

    class Reclaimed(OneAggregate.Event):
        """A released username was taken again."""

        TYPE = "username.reclaimed"
        person_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.person_id = self.person_id

    @classmethod
    def claim(cls, *, org_id: str, actor_id: str, username: str, person_id: str) -> UsernameClaim:
        """Take a username nobody has claimed before."""
        return cls._create(cls.Claimed, id=username_claim_id(org_id, username), org_id=org_id,
                           actor_id=actor_id, person_id=person_id)

    def reclaim(self, actor_id: str, person_id: str) -> None:
        """Take a released username; a held one is refused (unless its holder asks again)."""
        if self.person_id == person_id:
            return
        if self.person_id is not None:
            raise AlreadyExists("username is taken", "username")
        self.trigger_event(self.Reclaimed, actor_id=actor_id, person_id=person_id)

    def release(self, actor_id: str) -> None:
        """Free the username."""
        if self.person_id is not None:
            self.trigger_event(self.Released, actor_id=actor_id)
