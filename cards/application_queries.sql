-- Grant applications: submission under the member's lock, review within the reviewer's subtree, the history.

-- name: member_lock
-- Serialize one member's submissions: caps are counted after this lock, so concurrent ones queue here.
SELECT m.id FROM members m WHERE m.id = $1 FOR NO KEY UPDATE

-- name: application_by_key
-- The application a member already submitted with this form key, and the hash of what was sent.
SELECT a.id, a.request_hash FROM applications a WHERE a.member_id = $1 AND a.idempotency_key = $2

-- name: cap_counts
-- A member's applications for a benefit that count against its caps (not rejected): ever, and in $3's year.
SELECT count(*) AS lifetime,
       count(*) FILTER (WHERE date_trunc('year', a.applied_on) = date_trunc('year', $3::date)) AS this_year
  FROM applications a
 WHERE a.member_id = $1 AND a.benefit_id = $2 AND a.status <> 'rejected'

-- name: application_insert
-- A submitted application and its first event; a claimed invoice breaks applications_invoice_key.
WITH submitted AS (
    INSERT INTO applications (member_id, benefit_id, applied_on, org_id, org_path, requested_minor, currency,
                              invoice_issuer, invoice_number, invoice_amount_minor, invoice_date, details,
                              payee_name, payee_account, payee_bank, idempotency_key, request_hash,
                              submitted_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16, $17, $18, $18)
    RETURNING id
)
INSERT INTO application_events (application_id, from_status, to_status, actor, created_at)
SELECT s.id, NULL, 'submitted', $19, $18 FROM submitted s
RETURNING application_id

-- name: application_get
-- One application with its benefit, member, card (the one in use) and reviewing org.
SELECT a.id, a.member_id, a.benefit_id, b.code AS benefit_code, b.kind AS benefit_kind,
       b.name_zh AS benefit_name_zh, b.name_en AS benefit_name_en, a.applied_on, a.org_id, a.org_path,
       o.name AS org_name, o.kind AS org_kind, a.requested_minor, a.approved_minor, a.currency,
       a.invoice_issuer, a.invoice_number, a.invoice_amount_minor, a.invoice_date, a.details::text AS details,
       a.payee_name, a.payee_account, a.payee_bank, a.status, a.decided_by, a.decision_note,
       a.submitted_at, a.decided_at, a.updated_at, m.name AS member_name, mo.name AS member_org_name,
       c.number AS card_number, c.tier AS card_tier
  FROM applications a
  JOIN benefits b ON b.id = a.benefit_id
  JOIN orgs o ON o.id = a.org_id
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
  LEFT JOIN LATERAL (
      SELECT cards.number, cards.tier FROM cards WHERE cards.member_id = m.id
       ORDER BY (cards.status = 'active') DESC, cards.id DESC LIMIT 1
  ) c ON true
 WHERE a.id = $1

-- name: application_events
-- An application's history, oldest first.
SELECT e.id, e.from_status, e.to_status, e.actor, e.note, e.ledger_transaction_id, e.created_at
  FROM application_events e
 WHERE e.application_id = $1
 ORDER BY e.id

-- name: applications_of_member
-- A member's applications, newest first.
SELECT a.id, b.code AS benefit_code, b.kind AS benefit_kind, b.name_zh AS benefit_name_zh,
       b.name_en AS benefit_name_en, a.applied_on, a.requested_minor, a.approved_minor, a.currency, a.status,
       a.submitted_at, a.updated_at
  FROM applications a
  JOIN benefits b ON b.id = a.benefit_id
 WHERE a.member_id = $1
 ORDER BY a.id DESC
 LIMIT $2

-- name: review_list
-- Applications routed into a subtree ($1 a path prefix; NULL: everywhere), of some statuses or all, after an id.
SELECT a.id, a.applied_on, a.status, a.requested_minor, a.approved_minor, a.currency, a.org_path,
       o.name AS org_name, b.code AS benefit_code, b.name_zh AS benefit_name_zh, b.name_en AS benefit_name_en,
       m.name AS member_name, mo.name AS member_org_name, a.invoice_number IS NOT NULL AS has_invoice,
       a.submitted_at
  FROM applications a
  JOIN benefits b ON b.id = a.benefit_id
  JOIN orgs o ON o.id = a.org_id
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
 WHERE ($1::text IS NULL OR a.org_path LIKE $1 || '%')
   AND ($2::text[] IS NULL OR a.status = ANY($2::text[]))
   AND a.id > $3
 ORDER BY a.id
 LIMIT $4

-- name: review_counts
-- How many applications of each status are routed into a subtree ($1 a path prefix; NULL: everywhere).
SELECT a.status, count(*) AS applications
  FROM applications a
 WHERE ($1::text IS NULL OR a.org_path LIKE $1 || '%')
 GROUP BY a.status

-- name: application_lock
-- An application under a row lock, for a reviewer's step: a second reviewer waits here.
SELECT a.id, a.member_id, a.status, a.org_path, a.requested_minor, a.currency
  FROM applications a
 WHERE a.id = $1
   FOR UPDATE

-- name: application_review_open
-- A submitted application goes under review.
WITH moved AS (
    UPDATE applications a SET status = 'under_review', updated_at = $2
     WHERE a.id = $1 AND a.status = 'submitted'
    RETURNING a.id
)
INSERT INTO application_events (application_id, from_status, to_status, actor, created_at)
SELECT m.id, 'submitted', 'under_review', $3, $2 FROM moved m
RETURNING application_id

-- name: application_approve
-- Approve an amount: post Dr union:benefit_expense / Cr member:<id>:grants_payable and record the step.
WITH before AS (
    SELECT a.id, a.status FROM applications a WHERE a.id = $1 AND a.status IN ('submitted', 'under_review')
), moved AS (
    UPDATE applications a
       SET status = 'approved', approved_minor = $2, decided_by = $4, decision_note = $5, decided_at = $3,
           updated_at = $3
      FROM before b
     WHERE a.id = b.id
    RETURNING a.id, a.member_id, a.approved_minor, a.currency
), posted AS (
    SELECT m.id, ledger_post('grant_approved', NULL, NULL, NULL, $3, 'union:benefit_expense',
                             'member:' || m.member_id || ':grants_payable', m.approved_minor, m.currency)
               AS ledger_transaction_id
      FROM moved m
)
INSERT INTO application_events (application_id, from_status, to_status, actor, note, ledger_transaction_id,
                                created_at)
SELECT p.id, b.status, 'approved', $4, $5, p.ledger_transaction_id, $3
  FROM posted p JOIN before b ON b.id = p.id
RETURNING application_id, ledger_transaction_id

-- name: application_reject
-- Reject with a reason; the invoice it named may be claimed again.
WITH before AS (
    SELECT a.id, a.status FROM applications a WHERE a.id = $1 AND a.status IN ('submitted', 'under_review')
), moved AS (
    UPDATE applications a
       SET status = 'rejected', decided_by = $3, decision_note = $4, decided_at = $2, updated_at = $2
      FROM before b
     WHERE a.id = b.id
    RETURNING a.id
)
INSERT INTO application_events (application_id, from_status, to_status, actor, note, created_at)
SELECT m.id, b.status, 'rejected', $3, $4, $2
  FROM moved m JOIN before b ON b.id = m.id
RETURNING application_id

-- name: applications_follow
-- Applications follow their payouts (disbursed, paid, failed), each step recorded with the posting behind it.
-- $1 ids, $2 statuses, $3 notes, $4 ledger transactions, $5 when, $6 who.
WITH follow AS (
    SELECT DISTINCT ON (f.id) f.id, f.status, f.note, f.ledger_transaction_id
      FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS f(id, status, note, ledger_transaction_id)
     ORDER BY f.id
), moved AS (
    UPDATE applications a
       SET status = f.status, updated_at = $5
      FROM follow f
      JOIN applications b ON b.id = f.id
     WHERE a.id = f.id
    RETURNING a.id, b.status AS from_status, a.status AS to_status, f.note, f.ledger_transaction_id
)
INSERT INTO application_events (application_id, from_status, to_status, actor, note, ledger_transaction_id,
                                created_at)
SELECT m.id, m.from_status, m.to_status, $6, m.note, m.ledger_transaction_id, $5 FROM moved m
RETURNING application_id
