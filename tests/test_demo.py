"""The demo district: loaded once at scale 0.01, then checked against the till's own rules."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from tests.conftest import DEMO_SCALE, DEMO_SECRET
from unioncard.demo import DemoError, load_demo
from unioncard.demo import load as demo_load
from unioncard.ids import card_number_valid, hash_secret, keyed_hash
from unioncard.passwords import verify_password

SCALE, SECRET = DEMO_SCALE, DEMO_SECRET
STATUSES = {"active", "frozen", "lost", "cancelled", "expired"}


async def count(db: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await db.fetchval(sql, *args))


# ---------------------------------------------------------------- sizes and shapes


async def test_counts_are_as_promised(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    counts = manifest["counts"]
    assert counts["cards"] == counts["members"] == round(225_159 * SCALE) == 2252
    assert counts["orgs"] == 1 + 3 + 6  # the district, three towns, six grassroots unions
    assert counts["merchants"] == 10
    assert 2500 <= counts["redemptions"] <= 3500
    assert 0 < counts["refunds"] < counts["redemptions"] * 0.06
    assert counts["staff_users"] < 30 and counts["api_tokens"] == 1
    for table, expected in counts.items():
        assert await count(db, f"SELECT count(*) FROM {table}") == expected, table  # names from our own dict


async def test_the_tree_has_a_district_towns_and_grassroots(db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT kind, count(*) AS n FROM orgs GROUP BY kind")
    kinds = {r["kind"]: r["n"] for r in rows}
    assert kinds["district"] == 1 and kinds["town"] == 3
    assert kinds.get("village", 0) >= 1 and kinds["village"] + kinds.get("enterprise", 0) == 6
    assert (
        await count(
            db, "SELECT count(*) FROM orgs c JOIN orgs p ON p.id = c.parent_id WHERE c.path <> p.path || c.id || '/'"
        )
        == 0
    )
    assert (
        await count(
            db,
            "SELECT count(*) FROM members m JOIN orgs o ON o.id = m.org_id "
            "WHERE o.kind NOT IN ('village', 'enterprise')",
        )
        == 0
    )


async def test_card_numbers_are_valid_and_statuses_realistic(db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT number, status, tier FROM cards")
    assert all(card_number_valid(r["number"]) and r["number"].startswith("6217") for r in rows)
    assert all(16 <= len(r["number"]) <= 19 for r in rows)
    statuses = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    assert all(statuses.values()), statuses
    assert 0.88 < statuses["active"] / len(rows) < 0.96
    tiers = {r["tier"] for r in rows}
    assert {"普通职工", "优秀职工", "困难职工"} <= tiers


async def test_members_keep_only_a_keyed_hash_of_their_national_id(db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT name, national_id_hash, national_id_last4 FROM members")
    assert all(len(r["national_id_hash"]) == 32 and len(r["national_id_last4"]) == 4 for r in rows)
    assert all(2 <= len(r["name"]) <= 3 and "\u4e00" <= r["name"][0] <= "\u9fff" for r in rows)
    assert keyed_hash(SECRET, "x") != keyed_hash("other", "x")  # the hash is keyed by the secret


async def test_status_history_agrees_with_the_cards(db: asyncpg.Connection) -> None:
    disagreeing = await count(
        db,
        """
        SELECT count(*) FROM cards c
         CROSS JOIN LATERAL (SELECT status, valid_from FROM card_status_history h
                              WHERE h.card_id = c.id ORDER BY valid_from DESC LIMIT 1) latest
         WHERE latest.status <> c.status OR latest.valid_from <> c.status_since""",
    )
    assert disagreeing == 0
    assert (
        await count(
            db,
            """
        SELECT count(*) FROM cards c WHERE NOT EXISTS (
            SELECT 1 FROM card_status_history h WHERE h.card_id = c.id AND h.status = 'active'
               AND h.valid_from = (SELECT min(valid_from) FROM card_status_history WHERE card_id = c.id))""",
        )
        == 0
    )
    assert await count(db, "SELECT count(*) FROM cards WHERE status = 'expired' AND expires_on >= current_date") == 0
    assert await count(db, "SELECT count(*) FROM cards WHERE status = 'active' AND expires_on < current_date") == 0


async def test_merchants_cover_the_categories(db: asyncpg.Connection) -> None:
    assert await count(db, "SELECT count(DISTINCT category) FROM merchants") >= 8
    assert (
        await count(
            db,
            "SELECT count(*) FROM merchants WHERE payee_account IS NULL "
            "OR latitude NOT BETWEEN 30.2 AND 30.4 OR longitude NOT BETWEEN 120.0 AND 120.3",
        )
        == 0
    )
    assert (
        await count(
            db,
            "SELECT count(*) FROM merchants m WHERE NOT EXISTS "
            "(SELECT 1 FROM contract_versions v WHERE v.merchant_id = m.id AND v.version = 1)",
        )
        == 0
    )


async def test_even_the_small_district_has_every_kind_of_term(db: asyncpg.Connection) -> None:
    terms = await db.fetchrow("""
        SELECT count(*) FILTER (WHERE kind = 'percent') AS percent, count(*) FILTER (WHERE kind = 'fixed') AS fixed,
               count(*) FILTER (WHERE hours_start IS NOT NULL) AS hours,
               count(*) FILTER (WHERE days_of_week IS NOT NULL) AS days,
               count(*) FILTER (WHERE eligible_tiers IS NOT NULL) AS tiers,
               count(*) FILTER (WHERE eligible_org_ids IS NOT NULL) AS orgs,
               count(*) FILTER (WHERE monthly_budget_minor IS NOT NULL) AS budgets,
               count(*) FILTER (WHERE per_card_daily_sales_max IS NOT NULL) AS daily,
               count(*) FILTER (WHERE version = 2) AS second_versions
          FROM contract_versions""")
    assert all(terms.values()), dict(terms)
    # Some merchant sold under both versions: its terms changed inside the month.
    assert (
        await count(
            db,
            """SELECT count(*) FROM (SELECT merchant_id FROM redemptions GROUP BY merchant_id
                                                   HAVING count(DISTINCT contract_version_id) > 1) x""",
        )
        >= 1
    )


async def test_identity_sequences_continue_after_the_load(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    for table in ("orgs", "members", "cards", "merchants", "contract_versions", "terminals"):
        last = await db.fetchval("SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id'))", table)
        assert last == manifest["counts"][table], table  # the demo's ids run 1..n
    transaction = db.transaction()
    await transaction.start()
    try:
        new_id = await db.fetchval("INSERT INTO orgs (parent_id, kind, name) VALUES (1, 'village', 'x') RETURNING id")
        assert new_id == manifest["counts"]["orgs"] + 1
    finally:
        await transaction.rollback()


# ---------------------------------------------------------------- the manifest


async def test_manifest_has_its_keys(manifest: dict[str, Any]) -> None:
    assert {"admin_token", "staff", "terminals", "revoked_terminals", "cards", "counts"} <= manifest.keys()
    assert set(manifest["cards"]) == STATUSES
    assert all(0 < len(numbers) <= 2000 for numbers in manifest["cards"].values())
    roles = {s["role"] for s in manifest["staff"]}
    assert roles == {"federation_admin", "finance_officer", "org_reviewer", "merchant_admin"}
    assert sum(s["role"] == "org_reviewer" for s in manifest["staff"]) >= 3
    assert sum(s["role"] == "merchant_admin" for s in manifest["staff"]) == 5
    assert manifest["revoked_terminals"]


async def test_admin_token_and_staff_passwords_work(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    role = await db.fetchval(
        "SELECT s.role FROM api_tokens t JOIN staff_users s ON s.id = t.staff_user_id "
        "WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        hash_secret(manifest["admin_token"]),
    )
    assert role == "federation_admin"
    checked_roles = set()
    for staff in manifest["staff"]:
        row = await db.fetchrow(
            "SELECT role, org_id, merchant_id, password_hash FROM staff_users WHERE email = $1", staff["email"]
        )
        assert row["role"] == staff["role"]
        assert row["org_id"] == staff.get("org_id") and row["merchant_id"] == staff.get("merchant_id")
        if staff["role"] not in checked_roles:  # argon2 is slow: one account of each role
            assert verify_password(row["password_hash"], staff["password"])
            checked_roles.add(staff["role"])


async def test_terminal_keys_authenticate_with_the_current_terms(
    db: asyncpg.Connection, manifest: dict[str, Any]
) -> None:
    assert manifest["terminals"]
    for entry in manifest["terminals"]:
        row = await db.fetchrow(
            "SELECT t.id, t.merchant_id, t.status, m.status AS merchant_status, t.key_prefix FROM terminals t "
            "JOIN merchants m ON m.id = t.merchant_id WHERE t.key_hash = $1",
            hash_secret(entry["terminal_key"]),
        )
        assert (row["id"], row["merchant_id"]) == (entry["terminal_id"], entry["merchant_id"])
        assert row["status"] == "active" and row["merchant_status"] == "active"
        assert entry["terminal_key"].startswith("uct_") and row["key_prefix"] == entry["terminal_key"][:8]
        offer = await db.fetchrow("SELECT * FROM till_offer_at($1, now())", entry["merchant_id"])
        terms = entry["contract"]
        assert terms["id"] == offer["id"]
        for name in (
            "kind",
            "rate_bps",
            "amount_minor",
            "min_spend_minor",
            "discount_minor_max",
            "union_share_bps",
            "per_card_daily_sales_max",
            "per_card_monthly_sales_max",
            "monthly_budget_minor",
        ):
            assert terms[name] == offer[name], name
        assert (terms["rate_bps"] is None) == (terms["kind"] == "fixed")


async def test_revoked_keys_do_not_open_a_till(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    for entry in manifest["revoked_terminals"]:
        row = await db.fetchrow(
            "SELECT t.id, t.status, t.revoked_at, m.status AS merchant_status FROM terminals t "
            "JOIN merchants m ON m.id = t.merchant_id WHERE t.key_hash = $1",
            hash_secret(entry["terminal_key"]),
        )
        assert row["status"] == "revoked" and row["revoked_at"] is not None or row["merchant_status"] == "suspended"
        with pytest.raises(asyncpg.PostgresError):
            await db.fetchval("SELECT till_terminal($1)", row["id"])


async def test_manifest_cards_have_their_status(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    for status, numbers in manifest["cards"].items():
        found = await db.fetch("SELECT DISTINCT status FROM cards WHERE number = ANY($1::text[])", numbers)
        assert [r["status"] for r in found] == [status]


async def test_till_quote_works_for_a_manifest_card(db: asyncpg.Connection, manifest: dict[str, Any]) -> None:
    terminal = manifest["terminals"][0]["terminal_id"]
    quote = json.loads(
        await db.fetchval("SELECT till_quote($1, $2, NULL, 10000, 'CNY')", terminal, manifest["cards"]["active"][0])
    )
    assert quote["amount"] == 10000 and quote["card"].startswith("6217")
    assert quote["discount"] + quote["pay_amount"] == 10000
    with pytest.raises(asyncpg.PostgresError, match="card_inactive"):
        await db.fetchval("SELECT till_quote($1, $2, NULL, 10000, 'CNY')", terminal, manifest["cards"]["lost"][0])


# ---------------------------------------------------------------- the month of traffic


async def test_every_sale_is_priced_as_the_till_prices_it(db: asyncpg.Connection) -> None:
    """till_price_of with the card's tier and org, on the version in force that local day."""
    wrong = await db.fetch("""
        SELECT r.id, p.*
          FROM redemptions r
          JOIN cards c ON c.id = r.card_id
          JOIN members mb ON mb.id = c.member_id
          JOIN orgs o ON o.id = mb.org_id
          JOIN contract_versions v ON v.id = r.contract_version_id
         CROSS JOIN LATERAL till_price_of(v, (c.id, c.tier, o.path, '', '')::till_card, r.amount_minor,
                                          r.occurred_at, 0, 0, 0, 0, 0) p
         WHERE v.id <> (till_offer_at(r.merchant_id, r.occurred_at)).id
            OR p.discount_minor <> r.discount_minor OR p.union_funded_minor <> r.union_funded_minor
            OR p.merchant_funded_minor <> r.merchant_funded_minor OR cardinality(p.reasons) > 0
         LIMIT 5""")
    assert wrong == []


async def test_sales_use_active_cards_and_open_tills_in_the_window(
    db: asyncpg.Connection, manifest: dict[str, Any]
) -> None:
    assert (
        await count(
            db,
            """
        SELECT count(*) FROM redemptions r
          JOIN cards c ON c.id = r.card_id JOIN terminals t ON t.id = r.terminal_id
          JOIN merchants m ON m.id = r.merchant_id
         WHERE c.status <> 'active' OR c.status_since > r.occurred_at OR t.status <> 'active'
            OR m.status <> 'active' OR r.currency <> 'CNY' OR r.recorded_at < r.occurred_at""",
        )
        == 0
    )
    window = await db.fetchrow("""
        SELECT min((occurred_at AT TIME ZONE till_local_tz())::date) AS first,
               max((occurred_at AT TIME ZONE till_local_tz())::date) AS last FROM redemptions""")
    assert (window["last"] - window["first"]).days == 29
    assert window["last"].isoformat() < manifest["today"]
    assert await count(db, "SELECT count(DISTINCT contract_version_id) FROM redemptions") >= 5


async def test_per_card_limits_hold(db: asyncpg.Connection) -> None:
    over = await count(
        db,
        """
        SELECT count(*) FROM (
            SELECT r.card_id, r.merchant_id, (r.occurred_at AT TIME ZONE till_local_tz())::date AS day,
                   count(*) AS sales, max(v.per_card_daily_sales_max) AS daily
              FROM redemptions r JOIN contract_versions v ON v.id = r.contract_version_id
             GROUP BY 1, 2, 3) d
         WHERE d.sales > d.daily""",
    )
    assert over == 0
    month_over = await count(
        db,
        """
        SELECT count(*) FROM card_usage_months u
         WHERE u.sales_count > (SELECT min(v.per_card_monthly_sales_max) FROM redemptions r
                                  JOIN contract_versions v ON v.id = r.contract_version_id
                                 WHERE r.card_id = u.card_id AND r.merchant_id = u.merchant_id
                                   AND date_trunc('month', r.occurred_at AT TIME ZONE till_local_tz())::date
                                       = u.month)""",
    )
    assert month_over == 0
    assert await count(db, "SELECT count(*) FROM card_usage_days WHERE sales_count > 5") == 0


async def test_counters_match_the_sales(db: asyncpg.Connection) -> None:
    assert (
        await count(
            db,
            """
        SELECT count(*) FROM card_usage_days u FULL JOIN (
            SELECT card_id, merchant_id, (occurred_at AT TIME ZONE till_local_tz())::date AS day,
                   count(*) AS sales, sum(discount_minor) AS discount
              FROM redemptions GROUP BY 1, 2, 3) r USING (card_id, merchant_id, day)
         WHERE u.sales_count IS DISTINCT FROM r.sales::int OR u.discount_minor IS DISTINCT FROM r.discount""",
        )
        == 0
    )


async def test_budgets_hold_and_match_the_sales(db: asyncpg.Connection) -> None:
    rows = await db.fetch("""
        SELECT b.merchant_id, b.month, b.used_minor, s.net, last_offer.monthly_budget_minor AS budget
          FROM merchant_budget_months b
          JOIN LATERAL (
              SELECT sum(r.union_funded_minor - coalesce((SELECT sum(f.union_funded_minor) FROM refunds f
                                                           WHERE f.redemption_id = r.id), 0)) AS net
                FROM redemptions r
               WHERE r.merchant_id = b.merchant_id
                 AND date_trunc('month', r.occurred_at AT TIME ZONE till_local_tz())::date = b.month) s ON true
          JOIN LATERAL (
              SELECT v.monthly_budget_minor FROM redemptions r JOIN contract_versions v ON v.id = r.contract_version_id
               WHERE r.merchant_id = b.merchant_id
                 AND date_trunc('month', r.occurred_at AT TIME ZONE till_local_tz())::date = b.month
               ORDER BY r.occurred_at DESC LIMIT 1) last_offer ON true""")
    assert rows
    for row in rows:
        assert row["used_minor"] == row["net"]
        assert row["budget"] is None or row["used_minor"] <= row["budget"]
    # Some budget is nearly used up, or this test would hold without any budget check at all.
    assert any(row["budget"] and row["used_minor"] > 0.8 * row["budget"] for row in rows)


async def test_refunds_never_exceed_their_sale(db: asyncpg.Connection) -> None:
    rows = await db.fetch("""
        SELECT r.amount_minor, r.union_funded_minor, r.merchant_funded_minor, r.occurred_at,
               sum(f.amount_minor) AS amount, sum(f.union_funded_minor) AS union_back,
               sum(f.merchant_funded_minor) AS merchant_back, min(f.created_at) AS first_at,
               bool_and(f.merchant_id = r.merchant_id) AS same_merchant
          FROM refunds f JOIN redemptions r ON r.id = f.redemption_id
         GROUP BY r.id""")
    assert rows and any(r["amount"] < r["amount_minor"] for r in rows)  # some are partial
    for row in rows:
        assert row["amount"] <= row["amount_minor"] and row["same_merchant"]
        assert row["union_back"] <= row["union_funded_minor"] and row["merchant_back"] <= row["merchant_funded_minor"]
        assert row["first_at"] > row["occurred_at"]
        if row["amount"] == row["amount_minor"]:
            assert (row["union_back"], row["merchant_back"]) == (
                row["union_funded_minor"],
                row["merchant_funded_minor"],
            )


async def test_the_ledger_balances_and_matches_the_sales(db: asyncpg.Connection) -> None:
    assert await db.fetch("SELECT transaction_id FROM ledger_unbalanced") == []
    expense = await db.fetchval("SELECT ledger_balance('union:subsidy_expense')")
    net = await db.fetchval(
        "SELECT (SELECT sum(union_funded_minor) FROM redemptions)"
        " - (SELECT coalesce(sum(union_funded_minor), 0) FROM refunds)"
    )
    assert expense == net > 0
    # what the union owes each merchant: its sales' union share, less refunds, less what finance approved to pay
    payable = await db.fetch("""
        SELECT m.id, ledger_balance('merchant:' || m.id || ':payable') AS balance,
               coalesce((SELECT sum(union_funded_minor) FROM redemptions WHERE merchant_id = m.id), 0)
             - coalesce((SELECT sum(union_funded_minor) FROM refunds WHERE merchant_id = m.id), 0)
             - coalesce((SELECT sum(amount_minor) FROM payout_instructions
                          WHERE merchant_id = m.id AND status NOT IN ('failed', 'retried', 'canceled')), 0) AS owed
          FROM merchants m""")
    assert all(row["balance"] == -row["owed"] for row in payable)
    assert (
        await count(
            db,
            """
        SELECT count(*) FROM redemptions r
         WHERE r.union_funded_minor > 0 AND (SELECT count(*) FROM ledger_transactions t
                                              WHERE t.redemption_id = r.id AND t.kind = 'sale') <> 1""",
        )
        == 0
    )


async def test_the_month_is_claimed_reconciled_and_partly_paid(
    db: asyncpg.Connection, manifest: dict[str, Any]
) -> None:
    made = manifest["settlement"]
    logins = {member["merchant_id"] for member in manifest["staff"] if member.get("merchant_id")}
    claims = await db.fetch("SELECT merchant_id, status, to_char(period, 'YYYY-MM') AS period FROM claims")
    assert len(claims) == made["claims"] >= 5  # the active merchants that sold in the period
    assert {row["status"] for row in claims} == {"reconciled"} and {row["period"] for row in claims} == {made["period"]}
    sold = await db.fetch(
        "SELECT DISTINCT r.merchant_id FROM redemptions r JOIN merchants m ON m.id = r.merchant_id"
        " WHERE m.status = 'active' AND to_char(r.occurred_at AT TIME ZONE till_local_tz(), 'YYYY-MM') = $1",
        made["period"],
    )
    claimants = logins & {row["merchant_id"] for row in sold}
    assert claimants and claimants <= {row["merchant_id"] for row in claims}  # a merchant signing in finds its claim
    classes = await db.fetch("SELECT DISTINCT class FROM claim_lines")
    assert {"matched", "duplicate_line", "not_found"} <= {row["class"] for row in classes}
    statuses = dict(await db.fetch("SELECT status, count(*) FROM payout_instructions GROUP BY status"))
    assert statuses.get("paid", 0) == made["batches_paid"] > 0
    assert statuses.get("failed", 0) == made["batches_failed"]
    assert (
        await count(db, "SELECT count(*) FROM settlement_batches WHERE status = 'approved'") == made["batches_approved"]
    )
    assert await db.fetch("SELECT transaction_id FROM ledger_unbalanced") == []


# ---------------------------------------------------------------- refusing


async def test_a_database_that_is_not_empty_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO orgs (kind, name) VALUES ('district', '已有数据')")
    with pytest.raises(DemoError, match="empty database"):
        await load_demo(conn, scale=SCALE, secret_key=SECRET, progress=lambda _: None)
    assert await count(conn, "SELECT count(*) FROM orgs") == 1


async def test_without_superuser_rights_the_triggers_stay_on(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica mode needs a superuser; anyone else loads with every key and the ledger checked per row."""
    monkeypatch.setattr(demo_load, "SUPERUSER_SQL", "SELECT false")
    lines: list[str] = []
    manifest = await load_demo(conn, scale=0.002, secret_key=SECRET, progress=lines.append)
    assert any("not a superuser" in line for line in lines)
    assert manifest["counts"]["redemptions"] > 0 and manifest["counts"]["ledger_postings"] > 0
    assert await conn.fetch("SELECT transaction_id FROM ledger_unbalanced") == []
