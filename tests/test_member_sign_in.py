"""Members sign in with card number + PIN; wrong PINs lock the card's sign-in, in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from cards import member_auth
from tests.factories import add_card, make_world
from unioncard.errors import DomainError

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


async def test_pin_signs_in_and_five_wrong_pins_lock_it(client, dsn, conn: asyncpg.Connection) -> None:
    world = await make_world(client, dsn)
    number = await add_card(client, world, "a", pin="246810")
    hashed = await conn.fetchval("SELECT pin_hash FROM cards WHERE number = $1", number)
    assert hashed.startswith("$argon2") and "246810" not in hashed

    token = await member_auth.sign_in(conn, number, "246810", NOW, 3600)
    member = await conn.fetchval("SELECT member_id FROM sessions WHERE expires_at > $1", NOW)
    assert token.startswith("ucs_") and member == world.member_ids["a"]

    for attempt in range(1, member_auth.FAILURES_MAX):
        with pytest.raises(DomainError) as wrong:
            await member_auth.sign_in(conn, number, "000000", NOW, 3600)
        assert wrong.value.code == "member_sign_in_failed"
        assert wrong.value.extra["attempts_left"] == member_auth.FAILURES_MAX - attempt
    with pytest.raises(DomainError) as locked:
        await member_auth.sign_in(conn, number, "000000", NOW, 3600)
    assert locked.value.code == "member_sign_in_locked"
    # Locked means locked: even the right PIN waits, and the wait is said.
    with pytest.raises(DomainError) as still:
        await member_auth.sign_in(conn, number, "246810", NOW + timedelta(minutes=5), 3600)
    assert still.value.code == "member_sign_in_locked" and 0 < still.value.extra["retry_after_s"] <= 600
    # Once the lock runs out the right PIN works, and one more mistake does not lock again at once.
    later = NOW + timedelta(seconds=member_auth.LOCK_S + 1)
    await member_auth.sign_in(conn, number, "246810", later, 3600)
    assert await conn.fetchval("SELECT pin_failures FROM cards WHERE number = $1", number) == 0


async def test_unknown_card_and_card_without_pin_fail_alike(client, dsn, conn: asyncpg.Connection) -> None:
    world = await make_world(client, dsn)
    no_pin = await add_card(client, world, "b")
    for number in (no_pin, "6217000000000000000"):
        with pytest.raises(DomainError) as failed:
            await member_auth.sign_in(conn, number, "123456", NOW, 3600)
        assert failed.value.code == "member_sign_in_failed" and "attempts_left" not in failed.value.extra


async def test_a_lost_card_ends_its_members_sessions(client, dsn) -> None:
    world = await make_world(client, dsn)
    number = await add_card(client, world, "c", pin="135790")
    signed_in = await client.post("/me/login", data={"card_number": number, "pin": "135790"}, follow_redirects=False)
    assert signed_in.status_code == 303
    assert (await client.get("/me/", follow_redirects=False)).status_code == 200
    lost = await client.post(
        f"/api/admin/v1/cards/{world.card_ids['c']}/status", json={"status": "lost"}, headers=world.admin
    )
    assert lost.status_code == 200, lost.text
    # whoever holds the lost card is signed out, and cannot sign in with it again
    assert (await client.get("/me/", follow_redirects=False)).headers["location"] == "/me/login"
    again = await client.post("/me/login", data={"card_number": number, "pin": "135790"}, follow_redirects=False)
    assert again.status_code == 401
