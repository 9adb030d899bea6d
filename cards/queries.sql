-- name: org_insert
-- A new org under its parent; the path is set by a trigger.
INSERT INTO orgs (parent_id, kind, name, code) VALUES ($1, $2, $3, $4)
RETURNING id, parent_id, kind, name, code, path, created_at

-- name: org_list
-- The orgs of a subtree (or all), in tree order.
SELECT id, parent_id, kind, name, code, path, created_at
  FROM orgs WHERE ($1::text IS NULL OR path LIKE $1 || '%') ORDER BY path LIMIT $2

-- name: org_path
-- The path of one org.
SELECT path FROM orgs WHERE id = $1

-- name: member_insert
-- A member; the national ID is kept only as a keyed hash and its last four characters.
INSERT INTO members (org_id, name, national_id_hash, national_id_last4, phone, tags, joined_on)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, current_date))
RETURNING id, org_id, name, national_id_last4, phone, tags, joined_on, created_at

-- name: card_insert
-- A card for a member, active from now, with the first line of its history.
WITH card AS (
    INSERT INTO cards (member_id, number, tier, expires_on) VALUES ($1, $2, $3, $4)
    RETURNING id, member_id, number, status, status_since, tier, issued_on, expires_on
), history AS (
    INSERT INTO card_status_history (card_id, status, valid_from)
    SELECT id, status, status_since FROM card
)
SELECT id, member_id, number, status, status_since, tier, issued_on, expires_on FROM card

-- name: member_list
-- Members of a subtree with their cards, paged by member id.
SELECT m.id, m.org_id, m.name, m.national_id_last4, m.phone, m.tags, m.joined_on,
       c.id AS card_id, c.number AS card_number, c.status AS card_status, c.tier, c.expires_on
  FROM members m
  JOIN orgs o ON o.id = m.org_id
  LEFT JOIN cards c ON c.member_id = m.id
 WHERE ($1::text IS NULL OR o.path LIKE $1 || '%') AND m.id > $2
 ORDER BY m.id
 LIMIT $3

-- name: card_with_path
-- A card, its member's org path, for scope checks.
SELECT c.id, c.member_id, c.number, c.status, c.tier, c.expires_on, o.path AS org_path
  FROM cards c JOIN members m ON m.id = c.member_id JOIN orgs o ON o.id = m.org_id
 WHERE c.id = $1

-- name: card_by_number
-- A card by its number.
SELECT id FROM cards WHERE number = $1

-- name: card_set_status
-- Change a card's status and record it in the history, at one moment.
WITH changed AS (
    UPDATE cards SET status = $2, status_since = now() WHERE id = $1
    RETURNING id, member_id, number, status, status_since, tier, issued_on, expires_on
), history AS (
    INSERT INTO card_status_history (card_id, status, valid_from)
    SELECT id, status, status_since FROM changed
)
SELECT id, member_id, number, status, status_since, tier, issued_on, expires_on FROM changed

-- name: account_balance
-- An account's balance at a moment, from the postings.
SELECT ledger_balance($1, coalesce($2, 'infinity'::timestamptz))

-- name: ledger_unbalanced
-- Transactions whose postings do not sum to zero (must be none).
SELECT transaction_id, currency, total, legs FROM ledger_unbalanced LIMIT 100
