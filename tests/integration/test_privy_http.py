"""Privy sign-in over real HTTP: the first sign-in of a DID creates the person once (retries and
races included), every sign-in records lastLoginAt and answers a session key."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.runtime import Runtime
from commands.identity import privy_person_id
from infra.database import ConnectionInfo
from tests.conftest import bearer, log_head, served, start_runtime
from tests.unit.test_privy import APP_ID, PUBLIC_PEM, privy_token


@pytest.fixture
def privy_runtime(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    rt = start_runtime(fresh_db, privy_app_id=APP_ID, privy_verification_key=PUBLIC_PEM,
                       session_ttl_s=600.0)
    yield rt
    rt.close()


@pytest.fixture
def http(privy_runtime: Runtime) -> Iterator[httpx.Client]:
    with served(privy_runtime) as client:
        yield client


def sign_in(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/v1/auth/privy", json={"identity_token": token}, headers={"Authorization": ""})


def test_first_sign_in_creates_the_person_and_later_ones_record_the_login(http: httpx.Client) -> None:
    did = f"did:privy:{uuid.uuid4().hex}"
    first = sign_in(http, privy_token(sub=did))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["person_id"] == str(privy_person_id(did))
    me = http.get("/v1/me", headers=bearer(body["key"]), params={"after": body["position"]}).json()
    person = me["person"]
    assert me["role"] == "customer" and me["key"]["kind"] == "session" and me["key"]["expires_at"]
    assert person["email"] == "ann@example.com" and person["privy_did"] == did
    assert person["app_wallet"] == "0x" + "b" * 40 and person["primary_auth_method"] == "email"
    assert person["account_status"] == "incomplete" and person["profile"]["visibility"] == "public"
    first_login = person["last_login_at"]

    again = sign_in(http, privy_token(sub=did))
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["person_id"] == body["person_id"] and again.json()["key"] != body["key"]
    later = http.get("/v1/me", headers=bearer(again.json()["key"]),
                     params={"after": again.json()["position"]}).json()["person"]
    assert later["last_login_at"] > first_login
    assert http.get("/v1/me", headers=bearer(body["key"])).status_code == 200  # both sessions work


def test_racing_first_sign_ins_create_one_person(http: httpx.Client, privy_runtime: Runtime) -> None:
    did = f"did:privy:{uuid.uuid4().hex}"
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def go() -> None:
        start.wait()
        answers.append(sign_in(http, privy_token(sub=did)))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert {a.json()["person_id"] for a in answers} == {str(privy_person_id(did))}
    created = privy_runtime.event_log.recorder.select_events(privy_person_id(did))
    assert [e.topic.rsplit(".", 1)[1] for e in created].count("Created") == 1
    assert len(created) == 1 + 8  # created once, signed in eight times


@pytest.mark.parametrize("claims", [
    {"aud": "another-app"}, {"iss": "evil.example"}, {"exp": 1, "iat": 0}, {"sub": "not-a-did"},
])
def test_untrusted_identity_tokens_are_401_and_append_nothing(
        http: httpx.Client, privy_runtime: Runtime, claims: dict[str, Any]) -> None:
    head = log_head(privy_runtime.db)
    refused = sign_in(http, privy_token(**claims))
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "unauthenticated" and refused.json()["field"] == "identity_token"
    assert log_head(privy_runtime.db) == head


def test_sign_in_is_off_until_configured(client: httpx.Client) -> None:
    off = sign_in(client, privy_token())
    assert off.status_code == 404 and off.json()["field"] == "identity_token"
