-- The Stripe Connect rail: payees' connected accounts and the events Stripe sends.

-- name: payee_get
-- A merchant's payee details with its connected account, if any.
SELECT m.id AS merchant_id, m.name, m.payee_name, m.payee_account, m.payee_bank,
       a.account_id, coalesce(a.payouts_enabled, false) AS payouts_enabled,
       coalesce(a.details_submitted, false) AS details_submitted, a.updated_at
  FROM merchants m
  LEFT JOIN stripe_accounts a ON a.merchant_id = m.id
 WHERE m.id = $1

-- name: account_insert
-- Keep a merchant's connected account; a second one for the same merchant is not kept.
INSERT INTO stripe_accounts (merchant_id, account_id)
VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT stripe_accounts_pk DO NOTHING
RETURNING account_id

-- name: account_state_set
-- What account.updated says, unless a newer event was applied already.
UPDATE stripe_accounts a
   SET payouts_enabled = $2, details_submitted = $3, stated_at = $4, updated_at = now()
 WHERE a.account_id = $1 AND (a.stated_at IS NULL OR a.stated_at <= $4)
RETURNING a.merchant_id

-- name: account_known
-- The merchant of a connected account.
SELECT a.merchant_id
  FROM stripe_accounts a
 WHERE a.account_id = $1

-- name: event_insert
-- Store a verified event once; nothing comes back for an event id seen before.
INSERT INTO stripe_events (id, endpoint, type, account, payload)
VALUES ($1, $2, $3, $4, $5::jsonb)
    ON CONFLICT ON CONSTRAINT stripe_events_pk DO NOTHING
RETURNING id

-- name: event_outcome_set
-- What applying the event did.
UPDATE stripe_events e
   SET outcome = $2, detail = $3
 WHERE e.id = $1
RETURNING e.id

-- name: instruction_by_reference
-- The instruction a Stripe transfer was made for.
SELECT i.id
  FROM payout_instructions i
 WHERE i.rail = 'stripe_connect' AND i.rail_reference = $1

-- name: instruction_account
-- An instruction of the Stripe rail with its payee's connected account.
SELECT i.id, i.status, a.account_id
  FROM payout_instructions i
  LEFT JOIN stripe_accounts a ON a.merchant_id = i.merchant_id
 WHERE i.id = $1 AND i.rail = 'stripe_connect'

-- name: instruction_payout_failed
-- Keep why the connected account's payout failed on a transferred instruction; its status stays (the money waits
-- in the connected account's balance).
UPDATE payout_instructions i
   SET failure_reason = $2, updated_at = now()
 WHERE i.id = $1 AND i.rail = 'stripe_connect' AND i.status = 'transferred'
RETURNING i.id

-- name: audit_insert
-- An audit record of what a webhook did, under the webhook's own actor (it has no staff principal).
INSERT INTO audit_log (actor, action, subject, detail)
VALUES ($1, $2, $3, $4::jsonb)
