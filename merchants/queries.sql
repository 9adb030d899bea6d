-- name: till_quote
-- The quote decision; no writes, no locks.
SELECT till_quote($1, $2, $3, $4, $5, $6)::text

-- name: till_redeem
-- Record a sale with its ledger postings, or replay the one recorded under this key.
SELECT body::text, replayed FROM till_redeem($1, $2, $3, $4, $5, $6, $7, $8, $9)

-- name: till_refund
-- Refund part or all of a sale, or replay the refund recorded under this key.
SELECT body::text, replayed FROM till_refund($1, $2, $3, $4, $5)

-- name: till_redemption
-- One sale of the terminal's own merchant, with its refunds.
SELECT till_redemption_json(r.id)::text
  FROM redemptions r
 WHERE r.id = $2 AND r.merchant_id = till_terminal($1)

-- name: recent_redemptions
-- The merchant's latest sales, newest first, with what is left to refund.
SELECT r.id, r.occurred_at, r.amount_minor, r.discount_minor, r.union_funded_minor,
       r.currency, r.receipt_ref, r.terminal_id,
       left(c.number, 4) || ' **** **** ' || right(c.number, 4) AS card,
       r.amount_minor - coalesce((SELECT sum(f.amount_minor) FROM refunds f
                                   WHERE f.redemption_id = r.id), 0)::bigint AS remaining_minor
  FROM redemptions r JOIN cards c ON c.id = r.card_id
 WHERE r.merchant_id = $1
 ORDER BY r.occurred_at DESC, r.id
 LIMIT $2

-- name: merchant_insert
-- A new merchant.
INSERT INTO merchants (name, category, address, latitude, longitude, org_id,
                       payee_name, payee_account, payee_bank)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, name, category, address, latitude, longitude, org_id, status, created_at

-- name: merchant_list
-- Merchants, optionally one, optionally by category, paged by id.
SELECT id, name, category, address, latitude, longitude, org_id, status, created_at
  FROM merchants
 WHERE ($1::bigint IS NULL OR id = $1)
   AND ($2::text IS NULL OR category = $2)
   AND id > $3
 ORDER BY id
 LIMIT $4

-- name: merchant_set_status
-- Suspend or reactivate a merchant.
UPDATE merchants SET status = $2 WHERE id = $1
RETURNING id, name, category, address, latitude, longitude, org_id, status, created_at

-- name: contract_insert
-- The next immutable version of a merchant's contract.
INSERT INTO contract_versions (
    merchant_id, version, kind, rate_bps, amount_minor, currency, min_spend_minor,
    discount_minor_max, per_card_daily_sales_max, per_card_daily_discount_minor_max,
    per_card_monthly_sales_max, per_card_monthly_discount_minor_max, valid_from, valid_until,
    days_of_week, hours_start, hours_end, eligible_tiers, eligible_org_ids, union_share_bps,
    monthly_budget_minor)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
       $14, $15, $16, $17, $18, $19, $20
  FROM contract_versions WHERE merchant_id = $1
RETURNING id, merchant_id, version, kind, rate_bps, amount_minor, currency, min_spend_minor,
    discount_minor_max, per_card_daily_sales_max, per_card_daily_discount_minor_max,
    per_card_monthly_sales_max, per_card_monthly_discount_minor_max, valid_from, valid_until,
    days_of_week, hours_start, hours_end, eligible_tiers, eligible_org_ids, union_share_bps,
    monthly_budget_minor, created_at

-- name: contract_list
-- Every version of a merchant's contract, newest first.
SELECT id, merchant_id, version, kind, rate_bps, amount_minor, currency, min_spend_minor,
    discount_minor_max, per_card_daily_sales_max, per_card_daily_discount_minor_max,
    per_card_monthly_sales_max, per_card_monthly_discount_minor_max, valid_from, valid_until,
    days_of_week, hours_start, hours_end, eligible_tiers, eligible_org_ids, union_share_bps,
    monthly_budget_minor, created_at
  FROM contract_versions WHERE merchant_id = $1 ORDER BY version DESC

-- name: lock_merchant
-- Serialise new contract versions of one merchant.
SELECT id FROM merchants WHERE id = $1 FOR UPDATE

-- name: terminal_insert
-- A new terminal; only the key's hash is kept.
INSERT INTO terminals (merchant_id, name, key_prefix, key_hash)
VALUES ($1, $2, $3, $4)
RETURNING id, merchant_id, name, key_prefix, status, created_at, revoked_at

-- name: terminal_list
-- A merchant's terminals.
SELECT id, merchant_id, name, key_prefix, status, created_at, revoked_at
  FROM terminals WHERE merchant_id = $1 ORDER BY id

-- name: terminal_revoke
-- Revoke a terminal's key for good.
UPDATE terminals SET status = 'revoked', revoked_at = coalesce(revoked_at, now())
 WHERE id = $1
RETURNING id, merchant_id, name, key_prefix, status, created_at, revoked_at

-- name: terminal_sign_in
-- A web-till session for a terminal key.
INSERT INTO sessions (token_hash, terminal_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))

-- name: session_delete
-- Sign out: the session ends now, whoever it belonged to.
DELETE FROM sessions WHERE token_hash = $1

-- name: till_replay
-- The sale already recorded under this key and request, if any (a retry after the member code expired).
SELECT till_redemption_json(k.resource_id)::text
  FROM idempotency_keys k
 WHERE k.merchant_id = till_terminal($1) AND k.key = $2 AND k.request_hash = $3
   AND k.resource_kind = 'redemption'
