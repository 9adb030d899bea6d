"""The SQL the loader runs: COPY columns, derivations, proofs and counts."""

from __future__ import annotations

ORG_COLUMNS = ("id", "parent_id", "kind", "name", "code")
MEMBER_COLUMNS = ("id", "org_id", "name", "national_id_hash", "national_id_last4", "phone", "tags", "joined_on")
CARD_COLUMNS = ("id", "member_id", "number", "status", "status_since", "tier", "issued_on", "expires_on")
HISTORY_COLUMNS = ("card_id", "status", "valid_from")
MERCHANT_COLUMNS = (
    "id",
    "name",
    "category",
    "address",
    "latitude",
    "longitude",
    "org_id",
    "status",
    "payee_name",
    "payee_account",
    "payee_bank",
    "created_at",
)
CONTRACT_COLUMNS = (
    "id",
    "merchant_id",
    "version",
    "kind",
    "rate_bps",
    "amount_minor",
    "currency",
    "min_spend_minor",
    "discount_minor_max",
    "per_card_daily_sales_max",
    "per_card_monthly_sales_max",
    "valid_from",
    "days_of_week",
    "hours_start",
    "hours_end",
    "eligible_tiers",
    "eligible_org_ids",
    "union_share_bps",
    "monthly_budget_minor",
    "created_at",
)
TERMINAL_COLUMNS = ("id", "merchant_id", "name", "key_prefix", "key_hash", "status", "created_at", "revoked_at")
REDEMPTION_COLUMNS = (
    "id",
    "merchant_id",
    "terminal_id",
    "card_id",
    "contract_version_id",
    "amount_minor",
    "discount_minor",
    "union_funded_minor",
    "merchant_funded_minor",
    "currency",
    "receipt_ref",
    "occurred_at",
    "recorded_at",
)
REFUND_COLUMNS = (
    "id",
    "redemption_id",
    "merchant_id",
    "terminal_id",
    "amount_minor",
    "discount_minor",
    "union_funded_minor",
    "merchant_funded_minor",
    "currency",
    "created_at",
)

ANY_ROWS_SQL = """
SELECT EXISTS (SELECT 1 FROM orgs) OR EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM cards)
    OR EXISTS (SELECT 1 FROM merchants) OR EXISTS (SELECT 1 FROM staff_users)
    OR EXISTS (SELECT 1 FROM redemptions) OR EXISTS (SELECT 1 FROM ledger_transactions)
"""
# The aggregates below hash a few hundred thousand groups: let them do it in memory.
WORK_MEM_SQL = "SET LOCAL work_mem = '256MB'"
STAFF_SQL = """
INSERT INTO staff_users (email, display_name, password_hash, role, org_id, merchant_id)
SELECT email, display_name, password_hash, role, org_id, merchant_id
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
       AS s (email, display_name, password_hash, role, org_id, merchant_id)
RETURNING id, email
"""
TOKEN_SQL = "INSERT INTO api_tokens (token_hash, staff_user_id, label) VALUES ($1, $2, 'demo')"

# Counters and budgets as till_redeem and till_refund would have left them; $1 is the till's time zone.
USAGE_DAYS_SQL = """
INSERT INTO card_usage_days (card_id, merchant_id, day, sales_count, discount_minor)
SELECT card_id, merchant_id, (occurred_at AT TIME ZONE $1)::date, count(*), sum(discount_minor)
  FROM redemptions
 GROUP BY 1, 2, 3
"""
USAGE_MONTHS_SQL = """
INSERT INTO card_usage_months (card_id, merchant_id, month, sales_count, discount_minor)
SELECT card_id, merchant_id, date_trunc('month', day)::date, sum(sales_count), sum(discount_minor)
  FROM card_usage_days
 GROUP BY 1, 2, 3
"""
BUDGET_MONTHS_SQL = """
INSERT INTO merchant_budget_months (merchant_id, month, used_minor)
SELECT r.merchant_id, date_trunc('month', r.occurred_at AT TIME ZONE $1)::date,
       sum(r.union_funded_minor - coalesce(f.union_funded_minor, 0))
  FROM redemptions r
  LEFT JOIN (SELECT redemption_id, sum(union_funded_minor) AS union_funded_minor
               FROM refunds GROUP BY redemption_id) f ON f.redemption_id = r.id
 GROUP BY 1, 2
"""
# One ledger transaction per sale or refund the union funded, numbered in time order, as ledger_post
# would have written them; the legs are joined back by redemption_id and refund_id.
LEDGER_TRANSACTIONS_SQL = """
INSERT INTO ledger_transactions (kind, merchant_id, redemption_id, refund_id, occurred_at, recorded_at)
SELECT kind, merchant_id, redemption_id, refund_id, occurred_at, recorded_at
  FROM (SELECT 'sale' AS kind, merchant_id, id AS redemption_id, NULL::uuid AS refund_id,
               occurred_at, recorded_at
          FROM redemptions WHERE union_funded_minor > 0
        UNION ALL
        SELECT 'refund', merchant_id, redemption_id, id, created_at, created_at
          FROM refunds WHERE union_funded_minor > 0) AS events
 ORDER BY recorded_at, occurred_at
"""
SALE_POSTINGS_SQL = """
INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
SELECT t.id, leg.account, leg.amount_minor, r.currency, t.recorded_at
  FROM ledger_transactions t
  JOIN redemptions r ON r.id = t.redemption_id
 CROSS JOIN LATERAL (VALUES ('union:subsidy_expense', r.union_funded_minor),
                            ('merchant:' || r.merchant_id || ':payable', -r.union_funded_minor))
       AS leg (account, amount_minor)
 WHERE t.kind = 'sale'
 ORDER BY t.id
"""
REFUND_POSTINGS_SQL = """
INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
SELECT t.id, leg.account, leg.amount_minor, f.currency, t.recorded_at
  FROM ledger_transactions t
  JOIN refunds f ON f.id = t.refund_id
 CROSS JOIN LATERAL (VALUES ('merchant:' || f.merchant_id || ':payable', f.union_funded_minor),
                            ('union:subsidy_expense', -f.union_funded_minor))
       AS leg (account, amount_minor)
 WHERE t.kind = 'refund'
 ORDER BY t.id
"""
# Row triggers would check every foreign key of 1.5 million rows one by one, and the ledger's
# deferred balance trigger 600,000 postings at commit: replica mode skips triggers until ORIGIN_SQL,
# and FOREIGN_KEYS_SQL and LEDGER_CHECK_SQL prove the same things afterwards, one pass each.
# Only a superuser may; anyone else loads with the triggers on, in an order the keys allow, slower.
SUPERUSER_SQL = "SELECT current_setting('is_superuser') = 'on'"
REPLICA_SQL = "SET LOCAL session_replication_role = replica"
ORIGIN_SQL = "SET LOCAL session_replication_role = origin"
FOREIGN_KEYS_SQL = """
SELECT (SELECT count(*) FROM members x WHERE NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
           AS members_org,
       (SELECT count(*) FROM cards x WHERE NOT EXISTS (SELECT FROM members y WHERE y.id = x.member_id))
           AS cards_member,
       (SELECT count(*) FROM card_status_history x
         WHERE NOT EXISTS (SELECT FROM cards y WHERE y.id = x.card_id)) AS history_card,
       (SELECT count(*) FROM merchants x
         WHERE x.org_id IS NOT NULL AND NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
           AS merchants_org,
       (SELECT count(*) FROM contract_versions x
         WHERE NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id)) AS contracts_merchant,
       (SELECT count(*) FROM terminals x
         WHERE NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id)) AS terminals_merchant,
       (SELECT count(*) FROM staff_users x
         WHERE (x.org_id IS NOT NULL AND NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
            OR (x.merchant_id IS NOT NULL
                AND NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id))) AS staff_scope,
       (SELECT count(*) FROM api_tokens x
         WHERE NOT EXISTS (SELECT FROM staff_users y WHERE y.id = x.staff_user_id)) AS tokens_staff,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (
           SELECT FROM terminals y WHERE y.id = x.terminal_id AND y.merchant_id = x.merchant_id))
           AS redemptions_terminal,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (SELECT FROM cards y WHERE y.id = x.card_id))
           AS redemptions_card,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (
           SELECT FROM contract_versions y
            WHERE y.id = x.contract_version_id AND y.merchant_id = x.merchant_id)) AS redemptions_contract,
       (SELECT count(*) FROM refunds x WHERE NOT EXISTS (
           SELECT FROM redemptions y WHERE y.id = x.redemption_id AND y.merchant_id = x.merchant_id))
           AS refunds_redemption,
       (SELECT count(*) FROM refunds x WHERE NOT EXISTS (
           SELECT FROM terminals y WHERE y.id = x.terminal_id AND y.merchant_id = x.merchant_id))
           AS refunds_terminal,
       (SELECT count(*) FROM ledger_postings x
         WHERE NOT EXISTS (SELECT FROM ledger_transactions y WHERE y.id = x.transaction_id))
           AS postings_transaction
"""
LEDGER_CHECK_SQL = """
SELECT (SELECT count(*) FROM ledger_unbalanced) AS unbalanced,
       ledger_balance('union:subsidy_expense') AS expense,
       (SELECT coalesce(sum(union_funded_minor), 0) FROM redemptions)
     - (SELECT coalesce(sum(union_funded_minor), 0) FROM refunds) AS union_net
"""
# Explicit ids bypassed the identity sequences; later inserts must start above them.
SEQUENCES_SQL = """
SELECT setval(pg_get_serial_sequence('orgs', 'id'), (SELECT max(id) FROM orgs)),
       setval(pg_get_serial_sequence('members', 'id'), (SELECT max(id) FROM members)),
       setval(pg_get_serial_sequence('cards', 'id'), (SELECT max(id) FROM cards)),
       setval(pg_get_serial_sequence('merchants', 'id'), (SELECT max(id) FROM merchants)),
       setval(pg_get_serial_sequence('contract_versions', 'id'), (SELECT max(id) FROM contract_versions)),
       setval(pg_get_serial_sequence('terminals', 'id'), (SELECT max(id) FROM terminals))
"""
COUNTS_SQL = """
SELECT (SELECT count(*) FROM orgs) AS orgs, (SELECT count(*) FROM members) AS members,
       (SELECT count(*) FROM cards) AS cards,
       (SELECT count(*) FROM card_status_history) AS card_status_history,
       (SELECT count(*) FROM merchants) AS merchants,
       (SELECT count(*) FROM contract_versions) AS contract_versions,
       (SELECT count(*) FROM terminals) AS terminals, (SELECT count(*) FROM staff_users) AS staff_users,
       (SELECT count(*) FROM api_tokens) AS api_tokens, (SELECT count(*) FROM redemptions) AS redemptions,
       (SELECT count(*) FROM refunds) AS refunds, (SELECT count(*) FROM card_usage_days) AS card_usage_days,
       (SELECT count(*) FROM card_usage_months) AS card_usage_months,
       (SELECT count(*) FROM merchant_budget_months) AS merchant_budget_months,
       (SELECT count(*) FROM ledger_transactions) AS ledger_transactions,
       (SELECT count(*) FROM ledger_postings) AS ledger_postings
"""
ANALYZE_SQL = """
ANALYZE orgs, members, cards, card_status_history, merchants, contract_versions, terminals, redemptions,
        refunds, card_usage_days, card_usage_months, merchant_budget_months, ledger_transactions,
        ledger_postings
"""
