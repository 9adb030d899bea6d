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
    INSERT INTO cards (member_id, number, tier, expires_on, pin_hash) VALUES ($1, $2, $3, $4, $5)
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

-- name: member_profile
-- What eligibility needs to know of a member: their org, tags, membership date and the card they use
-- (the active one, else the newest).
SELECT m.id, m.name, m.org_id, o.path AS org_path, o.name AS org_name, m.tags, m.joined_on,
       c.id AS card_id, c.number AS card_number, c.tier, c.status AS card_status, c.expires_on
  FROM members m
  JOIN orgs o ON o.id = m.org_id
  LEFT JOIN LATERAL (
      SELECT * FROM cards WHERE member_id = m.id ORDER BY (status = 'active') DESC, id DESC LIMIT 1
  ) c ON true
 WHERE m.id = $1

-- name: catalog_rows
-- The active catalog ($1 one code, or NULL for all) with the paths of its eligible subtrees, for the
-- eligibility rule (cards/eligibility.py).
SELECT b.id, b.code, b.kind, b.name_zh, b.name_en, b.summary_zh, b.summary_en, b.details_zh, b.details_en,
       b.amount_minor, b.amount_max_minor, b.currency, b.eligible_tiers, b.eligible_tags, b.eligible_org_ids,
       CASE WHEN b.eligible_org_ids IS NOT NULL THEN coalesce(
           (SELECT array_agg(o.path ORDER BY o.path) FROM orgs o WHERE o.id = ANY (b.eligible_org_ids)), '{}')
       END AS eligible_org_paths,
       b.membership_months_min, b.per_year_max, b.per_lifetime_max, b.yearly_quota, b.needs_invoice,
       b.valid_from, b.valid_until
  FROM benefits b
 WHERE b.status = 'active' AND ($1::text IS NULL OR b.code = $1)
 ORDER BY b.sort_order, b.id

-- name: benefit_reviewing_org
-- The org that reviews this member's application for a benefit dated $3, with its path; none: no row.
SELECT o.id, o.path, o.name, o.kind FROM orgs o WHERE o.id = benefit_reviewing_org($1, $2, $3)

-- name: benefit_insert
-- A catalog entry.
INSERT INTO benefits (code, kind, name_zh, name_en, summary_zh, summary_en, details_zh, details_en,
                      amount_minor, amount_max_minor, currency, eligible_tiers, eligible_tags, eligible_org_ids,
                      membership_months_min, per_year_max, per_lifetime_max, yearly_quota, needs_invoice,
                      valid_from, valid_until, sort_order)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
RETURNING id

-- name: benefit_review_level_insert
-- The level that reviews a benefit from a date.
INSERT INTO benefit_review_levels (benefit_id, effective_from, org_kind) VALUES ($1, $2, $3)

-- name: benefit_list
-- The whole catalog with its review levels, for the admin API.
SELECT b.id, b.code, b.kind, b.name_zh, b.name_en, b.summary_zh, b.summary_en, b.amount_minor,
       b.amount_max_minor, b.currency, b.eligible_tiers, b.eligible_tags, b.eligible_org_ids,
       b.membership_months_min, b.per_year_max, b.per_lifetime_max, b.yearly_quota, b.needs_invoice,
       b.valid_from, b.valid_until, b.status, b.sort_order,
       coalesce((SELECT jsonb_agg(jsonb_build_object('effective_from', r.effective_from, 'org_kind', r.org_kind)
                                  ORDER BY r.effective_from)
                   FROM benefit_review_levels r WHERE r.benefit_id = b.id), '[]'::jsonb)::text AS review_levels
  FROM benefits b
 WHERE ($1::text IS NULL OR b.code = $1)
 ORDER BY b.sort_order, b.id

-- name: member_sessions_end
-- Sign a member out everywhere (their card was lost, cancelled or expired).
DELETE FROM sessions WHERE member_id = $1
