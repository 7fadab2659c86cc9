"""Identity in the domain: key tokens, sealed personal data, people, username claims, the policy."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.api_keys import BOOTSTRAP_KEY_ID, ApiKey, hash_token, key_id_of, new_token, token_matches
from domain.errors import AccountSuspended, AlreadyExists, Forbidden, InvalidState, ValidationFailed
from domain.organizations import Person, validate_profile
from domain.permissions import (
    CLIENT_ROLES,
    POLICY,
    SYSTEM,
    Reach,
    reach,
    require_client_fact,
    require_grantable,
    require_manageable,
    sees_profile,
)
from domain.personal_data import new_key, seal, unseal, validate_personal
from domain.usernames import UsernameClaim, username_claim_id

ORG = str(uuid.uuid4())
ACTOR = str(uuid.uuid4())
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_a_token_embeds_its_key_id_and_only_its_hash_is_compared() -> None:
    key_id = uuid.uuid4()
    token = new_token(key_id)
    assert token.startswith(f"one_{key_id.hex}_") and len(token) == len("one_") + 32 + 1 + 43
    assert key_id_of(token) == key_id
    assert token_matches(token, hash_token(token))
    assert not token_matches(token + "x", hash_token(token))
    assert new_token(key_id) != token  # 32 fresh random bytes every time
    assert key_id_of("an operator's own bootstrap value") == BOOTSTRAP_KEY_ID


def test_keys_expire_in_the_future_and_are_revoked_once() -> None:
    def issue(expires: datetime | None) -> ApiKey:
        return ApiKey.issue(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, person_id=ACTOR, name="ci",
                            kind="api", secret_hash="h", expires_at=expires, now=NOW)

    with pytest.raises(ValidationFailed) as past:
        issue(NOW - timedelta(seconds=1))
    assert past.value.field == "expires_at"
    key = issue(NOW + timedelta(hours=1))
    assert not key.expired(NOW) and key.expired(NOW + timedelta(hours=2))
    key.revoke(ACTOR)
    with pytest.raises(InvalidState):
        key.revoke(ACTOR)
    assert [type(e).__name__ for e in key.collect_events()] == ["Issued", "Revoked"]


def test_sealed_personal_data_opens_only_with_its_key_and_for_its_person() -> None:
    key = new_key()
    person = str(uuid.uuid4())
    sealed = seal(key, person, {"email": "ann@example.com", "name": "Ann"})
    assert "ann@example.com" not in sealed and "Ann" not in sealed
    assert seal(key, person, {"name": "Ann"}) != seal(key, person, {"name": "Ann"})  # fresh nonce
    assert unseal(key, person, sealed) == {"email": "ann@example.com", "name": "Ann"}
    assert unseal(None, person, sealed) is None  # the key was destroyed: erased
    with pytest.raises(ValueError):
        unseal(new_key(), person, sealed)
    with pytest.raises(ValueError):
        unseal(key, str(uuid.uuid4()), sealed)  # bound to the person's id


def test_personal_fields_are_validated_and_canonical() -> None:
    clean = validate_personal({"email": "Ann@Example.COM", "username": "Ann_1", "name": " Ann ",
                               "country_code": "mx", "ext_wallet": "0x" + "a" * 40, "bio": None})
    assert clean == {"email": "ann@example.com", "username": "ann_1", "name": "Ann",
                     "country_code": "MX", "ext_wallet": "0x" + "a" * 40, "bio": None}
    for field, value in (("email", "nope"), ("email", " ann@example.com"), ("email", "a\x00@b.c"),
                         ("username", "a"), ("username", "ann\n"), ("ext_wallet", "0x12"),
                         ("avatar_url", "ftp://x"), ("telegram_handle", "@a b"), ("role", "x")):
        with pytest.raises(ValidationFailed) as refused:
            validate_personal({field: value}, prefix="p.")
        assert refused.value.field == f"p.{field}"


def test_profile_settings_are_validated() -> None:
    assert validate_profile({"learning_tracks": ["privacy", "ai", "ai"], "visibility": "members"}) == {
        "learning_tracks": ["ai", "privacy"], "visibility": "members"}
    for patch, field in (({"visibility": "everyone"}, "profile.visibility"),
                         ({"learning_tracks": ["cooking"]}, "profile.learning_tracks[0]"),
                         ({"stats": {"profile_views": -1}}, "profile.stats.profile_views"),
                         ({"mood": "happy"}, "profile.mood")):
        with pytest.raises(ValidationFailed) as refused:
            validate_profile(patch)
        assert refused.value.field == field


def test_a_person_signs_in_unless_suspended_and_is_erased_once() -> None:
    person = Person.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, role="customer",
                           personal=None, profile={"visibility": "private"})
    assert person.profile["visibility"] == "private" and person.profile["stats"]["profile_views"] == 0
    person.sign_in("email")
    person.change_status(ACTOR, "suspended")
    with pytest.raises(AccountSuspended):
        person.sign_in("email")
    person.erase(ACTOR)
    assert not person.live
    with pytest.raises(InvalidState):
        person.erase(ACTOR)
    with pytest.raises(InvalidState):
        person.update(ACTOR, None, {"visibility": "public"})


def test_version_1_person_events_read_as_today_with_their_clear_fields_unsealed() -> None:
    state = {"name": "Ann", "email": "ann@example.com", "role": "customer"}
    Person.Created.upcast_v1_v2(state)
    assert state == {"role": "customer", "unsealed": {"name": "Ann", "email": "ann@example.com"},
                     "account_status": "active", "auth_method": "email", "personal": None,
                     "profile": {}, "username_claim": None}
    json.dumps(state)


def test_a_username_is_held_by_one_person_until_released() -> None:
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    claim = UsernameClaim.claim(org_id=ORG, actor_id=ACTOR, username="ann", person_id=ann)
    assert claim.id == username_claim_id(ORG, "ann") != username_claim_id(str(uuid.uuid4()), "ann")
    claim.reclaim(ACTOR, ann)  # asking again is harmless
    with pytest.raises(AlreadyExists):
        claim.reclaim(ACTOR, bob)
    claim.release(ACTOR)
    claim.reclaim(ACTOR, bob)
    assert claim.person_id == bob


def test_the_policy_covers_every_role_and_refuses_what_is_not_granted() -> None:
    assert all(set(row) == set(CLIENT_ROLES) for row in POLICY.values())
    assert reach("org_user", "things.update") is Reach.OWN
    assert reach(SYSTEM, "organizations.create") is Reach.ANY
    with pytest.raises(Forbidden):
        reach("customer", "things.create")
    with pytest.raises(Forbidden):
        require_grantable("org_owner", "platform_owner")
    require_grantable("platform_owner", "platform_owner")
    with pytest.raises(Forbidden):
        require_manageable("org_owner", "platform_owner")
    with pytest.raises(Forbidden):
        require_client_fact("payment_processed", event=True)
    with pytest.raises(Forbidden):
        require_client_fact("holds_tokens", event=False)
    require_client_fact("content_viewed", event=True)


def test_profile_visibility() -> None:
    assert sees_profile("public", "customer", is_self=False)
    assert not sees_profile("members", "customer", is_self=False)
    assert sees_profile("members", "org_user", is_self=False)
    assert not sees_profile("private", "org_user", is_self=False)
    assert sees_profile("private", "org_owner", is_self=False)
    assert sees_profile("private", "customer", is_self=True)
