-- The loan interest subsidy: its fund, applications, decisions. Loaded by cards.loans.

-- name: loan_fund
-- The fund of the active loan-subsidy benefit (the first by sort order), with what remains of it.
SELECT f.benefit_id, b.code, b.name_zh, b.name_en, f.total_minor, f.drawn_minor,
       f.total_minor - f.drawn_minor AS remaining_minor, f.currency
  FROM loan_funds f
  JOIN benefits b ON b.id = f.benefit_id
 WHERE b.kind = 'loan_subsidy' AND b.status = 'active'
 ORDER BY b.sort_order, b.id
 LIMIT 1

-- name: loan_fund_create
-- A benefit's fund; $2 the total in fen. Nothing when the benefit has one already.
INSERT INTO loan_funds (benefit_id, total_minor, currency) VALUES ($1, $2, $3)
ON CONFLICT (benefit_id) DO NOTHING
RETURNING benefit_id, total_minor, drawn_minor, currency

-- name: loan_fund_of
-- One benefit's fund with what remains, after the admin set it up or changed it.
SELECT f.benefit_id, b.code, b.name_zh, b.name_en, f.total_minor, f.drawn_minor,
       f.total_minor - f.drawn_minor AS remaining_minor, f.currency
  FROM loan_funds f
  JOIN benefits b ON b.id = f.benefit_id
 WHERE f.benefit_id = $1

-- name: loan_fund_benefit
-- The catalog entry an admin names for a new fund: its kind and currency.
SELECT id, kind, currency FROM benefits WHERE code = $1

-- name: loan_fund_lock
-- A fund locked for a change of its total: approvals draw under the same row lock.
SELECT benefit_id, total_minor, drawn_minor FROM loan_funds WHERE benefit_id = $1 FOR UPDATE

-- name: loan_fund_set_total
-- A fund's new total; loan_funds_not_overdrawn is the last word on it.
UPDATE loan_funds SET total_minor = $2 WHERE benefit_id = $1

-- name: loan_fund_remaining
-- What a fund has left, read after an approval found too little.
SELECT total_minor - drawn_minor AS remaining_minor FROM loan_funds WHERE benefit_id = $1

-- name: loan_has_review_levels
-- Whether a benefit names the org level that reviews it (then the application is routed by date).
SELECT EXISTS (SELECT 1 FROM benefit_review_levels WHERE benefit_id = $1)

-- name: loan_member_lock
-- Serialises one member's applications, so the caps hold under concurrent submissions.
SELECT id FROM members WHERE id = $1 FOR NO KEY UPDATE

-- name: loan_member_counts
-- A member's applications for a benefit that were not rejected: in all, and submitted in year $3.
SELECT count(*) AS lifetime,
       count(*) FILTER (WHERE extract(year FROM submitted_on) = $3) AS this_year
  FROM loan_applications
 WHERE member_id = $1 AND benefit_id = $2 AND status <> 'rejected'

-- name: loan_application_by_key
-- The application a form's idempotency key made before, if any.
SELECT id, benefit_id, lender, principal_minor, rate_bps, months, loan_start_on
  FROM loan_applications
 WHERE member_id = $1 AND idempotency_key = $2

-- name: loan_application_insert
-- A new application, submitted.
INSERT INTO loan_applications (member_id, benefit_id, reviewing_org_id, lender, principal_minor, rate_bps, months,
                               loan_start_on, subsidy_yearly_minor, subsidy_total_minor, currency, submitted_on,
                               submitted_at, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id

-- name: loan_event_insert
-- One step of an application: who, when, why.
INSERT INTO loan_application_events (application_id, status, actor, note, occurred_at) VALUES ($1, $2, $3, $4, $5)

-- name: loan_application_for_decision
-- An application with the org path that scopes its reviewers (the reviewing org's, else the member's), locked
-- for the decision.
SELECT a.id, a.member_id, a.benefit_id, a.status, a.subsidy_total_minor, a.currency,
       coalesce(ro.path, mo.path) AS scope_path
  FROM loan_applications a
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
  LEFT JOIN orgs ro ON ro.id = a.reviewing_org_id
 WHERE a.id = $1
   FOR UPDATE OF a

-- name: loan_fund_draw
-- Draw $2 from the fund if that much remains; no row when it does not. The row lock orders concurrent
-- approvals, and each sees the amount drawn by those before it.
UPDATE loan_funds SET drawn_minor = drawn_minor + $2
 WHERE benefit_id = $1 AND drawn_minor + $2 <= total_minor
RETURNING total_minor, drawn_minor, total_minor - drawn_minor AS remaining_minor

-- name: loan_ledger_post
-- Approval's posting, balanced: Dr $2 (the fund) / Cr $3 (the member's subsidy payable).
SELECT ledger_post('loan_subsidy_approved', NULL, NULL, NULL, $1, $2, $3, $4, $5)

-- name: loan_application_decide
-- Record the decision on a submitted application.
UPDATE loan_applications
   SET status = $2, decided_at = $3, decided_by = $4, decision_note = $5, ledger_transaction_id = $6
 WHERE id = $1 AND status = 'submitted'
RETURNING id, status

-- name: loan_application
-- One application as its member and reviewers see it.
SELECT a.id, a.member_id, m.name AS member_name, mo.name AS member_org_name, a.benefit_id, a.lender,
       a.principal_minor, a.rate_bps, a.months, a.loan_start_on, a.subsidy_yearly_minor, a.subsidy_total_minor,
       a.currency, a.status, a.submitted_on, a.submitted_at, a.decided_at, a.decision_note,
       ro.name AS reviewing_org_name, s.display_name AS decided_by_name
  FROM loan_applications a
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
  LEFT JOIN orgs ro ON ro.id = a.reviewing_org_id
  LEFT JOIN staff_users s ON s.id = a.decided_by
 WHERE a.id = $1

-- name: loan_member_applications
-- A member's applications, newest first.
SELECT a.id, a.lender, a.principal_minor, a.rate_bps, a.months, a.loan_start_on, a.subsidy_yearly_minor,
       a.subsidy_total_minor, a.currency, a.status, a.submitted_on, a.submitted_at, a.decided_at, a.decision_note,
       ro.name AS reviewing_org_name
  FROM loan_applications a
  LEFT JOIN orgs ro ON ro.id = a.reviewing_org_id
 WHERE a.member_id = $1
 ORDER BY a.submitted_at DESC, a.id DESC

-- name: loan_review_list
-- Applications a reviewer may decide: those whose scope path is in the subtree $1 (NULL: all), of status $2
-- (NULL: any), oldest waiting first; at most $3.
SELECT a.id, a.member_id, m.name AS member_name, mo.name AS member_org_name, a.lender, a.principal_minor,
       a.rate_bps, a.months, a.loan_start_on, a.subsidy_total_minor, a.currency, a.status, a.submitted_on,
       a.submitted_at, a.decided_at, a.decision_note, ro.name AS reviewing_org_name
  FROM loan_applications a
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
  LEFT JOIN orgs ro ON ro.id = a.reviewing_org_id
 WHERE ($1::text IS NULL OR coalesce(ro.path, mo.path) LIKE $1::text || '%')
   AND ($2::text IS NULL OR a.status = $2::text)
 ORDER BY (a.status = 'submitted') DESC, a.submitted_at, a.id
 LIMIT $3

-- name: loan_review_counts
-- How many applications of each status a reviewer's subtree $1 (NULL: all) holds, and the subsidy approved.
SELECT count(*) FILTER (WHERE a.status = 'submitted') AS submitted,
       count(*) FILTER (WHERE a.status = 'approved') AS approved,
       count(*) FILTER (WHERE a.status = 'rejected') AS rejected,
       coalesce(sum(a.subsidy_total_minor) FILTER (WHERE a.status = 'approved'), 0)::bigint AS approved_minor
  FROM loan_applications a
  JOIN members m ON m.id = a.member_id
  JOIN orgs mo ON mo.id = m.org_id
  LEFT JOIN orgs ro ON ro.id = a.reviewing_org_id
 WHERE ($1::text IS NULL OR coalesce(ro.path, mo.path) LIKE $1::text || '%')
