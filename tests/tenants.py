"""Organizations with people of every role, each with their own API key, set up over HTTP by the
platform owner (tests of permissions and tenant isolation)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import bearer

Json = dict[str, Any]


def ok(resp: httpx.Response, status: int | tuple[int, ...] = (200, 201, 202)) -> Json:
    """The JSON body of an expected answer."""
    wanted = (status,) if isinstance(status, int) else status
    assert resp.status_code in wanted, f"{resp.request.method} {resp.request.url}: {resp.text}"
    body: Json = resp.json()
    return body


@dataclass
class Member:
    """A person of an organization and the headers of their key."""

    id: str
    role: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        """Their Authorization header."""
        return bearer(self.key)


@dataclass
class Tenant:
    """An organization (made by the platform owner's `client`) and its people."""

    client: httpx.Client
    name: str
    id: str = ""
    position: int = 0
    members: dict[str, Member] = field(default_factory=dict)

    @classmethod
    def found(cls, client: httpx.Client, name: str) -> Tenant:
        """A new organization with an org owner, an org user and a customer."""
        tenant = cls(client, name)
        slug = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
        created = ok(client.post("/v1/organizations", json={"name": name, "slug": slug}))
        tenant.id, tenant.position = created["id"], created["position"]
        for role in ("org_owner", "org_user", "customer"):
            tenant.members[role] = tenant.person(role, name=f"{name} {role}",
                                                 email=f"{role}@{slug}.example")
        return tenant

    @property
    def as_platform_owner(self) -> dict[str, str]:
        """The platform owner acting in this organization."""
        return {"X-Org-Id": self.id}

    def person(self, role: str, **fields: Any) -> Member:
        """A new person of the organization with a key of theirs."""
        body = {"name": f"{role} {uuid.uuid4().hex[:4]}", "role": role, **fields}
        person = ok(self.client.post("/v1/people", headers=self.as_platform_owner, json=body))
        key = ok(self.client.post("/v1/keys", headers=self.as_platform_owner,
                                  json={"name": f"{role} key", "person_id": person["id"]}))
        self.position = max(self.position, key["position"])
        return Member(person["id"], role, key["key"], key["id"])

    @property
    def owner(self) -> Member:
        """The org owner."""
        return self.members["org_owner"]

    @property
    def user(self) -> Member:
        """The org user."""
        return self.members["org_user"]

    @property
    def customer(self) -> Member:
        """The customer."""
        return self.members["customer"]

    def act(self, who: Member, method: str, url: str, status: int | tuple[int, ...] = (200, 201, 202),
            **kwargs: Any) -> Json:
        """A request as `who` that must succeed; the position it reached is remembered."""
        body = ok(self.client.request(method, url, headers={**who.headers, **kwargs.pop("headers", {})},
                                      **kwargs), status)
        if isinstance(body.get("position"), int):
            self.position = max(self.position, body["position"])
        return body

    def read(self, who: Member, url: str, **params: Any) -> Json:
        """A query as `who`, after everything this tenant wrote."""
        return ok(self.client.get(url, headers=who.headers, params={"after": self.position, **params}), 200)
