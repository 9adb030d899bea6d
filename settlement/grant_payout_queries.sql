-- Grant payouts: approved applications paid to members' bank accounts through the payout rail.

-- name: disbursement_lock
-- One disbursement or bank-file take at a time: what is live is decided after this lock.
SELECT pg_advisory_xact_lock(7304223, 1)

-- name: payouts_open
-- A payout for each approved application named ($1; NULL: every approved one) that has no live payout, posted
-- Dr member:<id>:grants_payable / Cr payouts:in_transit. $2 the application statuses taken, $3 the rail.
WITH chosen AS (
    SELECT a.id, a.member_id, a.approved_minor, a.currency, a.payee_name, a.payee_account, a.payee_bank
      FROM applications a
     WHERE a.status = ANY($2::text[]) AND ($1::bigint[] IS NULL OR a.id = ANY($1::bigint[]))
       AND a.approved_minor IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM grant_payouts p WHERE p.application_id = a.id AND p.status <> 'failed')
     ORDER BY a.id
       FOR UPDATE OF a
), opened AS (
    INSERT INTO grant_payouts (application_id, member_id, rail, amount_minor, currency, payee_name, payee_account,
                               payee_bank, created_by, created_at, updated_at)
    SELECT c.id, c.member_id, $3, c.approved_minor, c.currency, c.payee_name, c.payee_account, c.payee_bank,
           $4, $5, $5
      FROM chosen c
    RETURNING id, application_id, member_id, amount_minor, currency
), posted AS (
    SELECT o.id, o.application_id, o.amount_minor,
           ledger_post('grant_disbursed', NULL, NULL, NULL, $5, 'member:' || o.member_id || ':grants_payable',
                       'payouts:in_transit', o.amount_minor, o.currency) AS ledger_transaction_id
      FROM opened o
), logged AS (
    INSERT INTO grant_payout_events (payout_id, status, ledger_transaction_id, actor, created_at)
    SELECT p.id, 'approved', p.ledger_transaction_id, $4, $5 FROM posted p
)
SELECT p.id, p.application_id, p.amount_minor, p.ledger_transaction_id FROM posted p ORDER BY p.id

-- name: bank_file_insert
-- A bank file about to be taken.
INSERT INTO grant_bank_files (created_by, created_at) VALUES ($1, $2) RETURNING id

-- name: payouts_take
-- Put approved payouts, and any left submitting since before $4 (a take that never finished), in file $1.
WITH taken AS (
    UPDATE grant_payouts p
       SET status = 'submitting', bank_file_id = $1, updated_at = $3
      FROM grant_payouts q
     WHERE q.id = p.id AND (q.status = 'approved' OR (q.status = 'submitting' AND q.updated_at < $4))
    RETURNING p.id, q.status AS was, q.bank_file_id AS was_in
)
INSERT INTO grant_payout_events (payout_id, status, reason, actor, created_at)
SELECT t.id, 'submitting', CASE WHEN t.was = 'submitting' THEN 'taken again from bank file ' || t.was_in END,
       $2, $3
  FROM taken t
RETURNING payout_id

-- name: payouts_of_file
-- A bank file's payouts with their payees, by id.
SELECT p.id, p.application_id, p.member_id, p.amount_minor, p.currency, p.payee_name, p.payee_account,
       p.payee_bank, p.status, p.bank_file_id, p.rail_reference
  FROM grant_payouts p
 WHERE p.bank_file_id = $1
 ORDER BY p.id

-- name: payouts_approved
-- Payouts not yet in a bank file, with their payees.
SELECT p.id, p.application_id, p.member_id, p.amount_minor, p.currency, p.payee_name, p.payee_account,
       p.payee_bank, p.status, p.bank_file_id, p.rail_reference
  FROM grant_payouts p
 WHERE p.status = 'approved'
 ORDER BY p.id

-- name: payouts_move
-- Move payouts from one of the states $2 to $3 (no ledger effect), each with an event; with the posting made
-- when each was disbursed.
WITH moved AS (
    UPDATE grant_payouts p
       SET status = $3, updated_at = $5
     WHERE p.id = ANY($1::bigint[]) AND p.status = ANY($2::text[])
    RETURNING p.id, p.application_id
), logged AS (
    INSERT INTO grant_payout_events (payout_id, status, actor, created_at)
    SELECT m.id, $3, $4, $5 FROM moved m
)
SELECT m.id, m.application_id,
       (SELECT e.ledger_transaction_id FROM grant_payout_events e
         WHERE e.payout_id = m.id AND e.status = 'approved' ORDER BY e.id LIMIT 1) AS ledger_transaction_id
  FROM moved m
 ORDER BY m.id

-- name: payouts_known
-- The payouts among these ids, with their status and file.
SELECT p.id, p.status, p.bank_file_id FROM grant_payouts p WHERE p.id = ANY($1::bigint[])

-- name: payouts_settle
-- Outcomes (paid or failed) for payouts still in one of the states $4, forward only, with postings: paid
-- Dr payouts:in_transit / Cr union:cash; failed reverses the disbursement to the member's grants_payable.
WITH outcome AS (
    SELECT DISTINCT ON (e.id) e.id, e.status, e.reason
      FROM unnest($1::bigint[], $2::text[], $3::text[]) AS e(id, status, reason)
     ORDER BY e.id
), moved AS (
    UPDATE grant_payouts p
       SET status = o.status, failure_reason = o.reason, updated_at = $5
      FROM outcome o
     WHERE p.id = o.id AND p.status = ANY($4::text[]) AND o.status IN ('paid', 'failed')
    RETURNING p.id, p.application_id, p.member_id, p.status, p.amount_minor, p.currency, p.failure_reason
), posted AS (
    SELECT m.id, m.application_id, m.status, m.failure_reason,
           ledger_post('grant_' || m.status, NULL, NULL, NULL, $5, 'payouts:in_transit',
                       CASE m.status WHEN 'paid' THEN 'union:cash'
                                     ELSE 'member:' || m.member_id || ':grants_payable' END,
                       m.amount_minor, m.currency) AS ledger_transaction_id
      FROM moved m
), logged AS (
    INSERT INTO grant_payout_events (payout_id, status, reason, ledger_transaction_id, actor, created_at)
    SELECT p.id, p.status, p.failure_reason, p.ledger_transaction_id, $6, $5 FROM posted p
)
SELECT p.id, p.application_id, p.status, p.failure_reason, p.ledger_transaction_id FROM posted p ORDER BY p.id

-- name: payouts_list
-- Payouts by id, of a status ($1) and a bank file ($2) or all, with the member and the benefit.
SELECT p.id, p.application_id, p.member_id, m.name AS member_name, b.name_zh AS benefit_name_zh,
       b.name_en AS benefit_name_en, p.rail, p.amount_minor, p.currency, p.payee_bank, p.status, p.bank_file_id,
       p.failure_reason, p.created_at, p.updated_at
  FROM grant_payouts p
  JOIN members m ON m.id = p.member_id
  JOIN applications a ON a.id = p.application_id
  JOIN benefits b ON b.id = a.benefit_id
 WHERE ($1::text IS NULL OR p.status = $1) AND ($2::bigint IS NULL OR p.bank_file_id = $2) AND p.id > $3
 ORDER BY p.id
 LIMIT $4

-- name: awaiting_disbursement
-- Approved applications with no live payout, and failed ones (paid again only when named), oldest first.
SELECT a.id, a.status, a.applied_on, a.approved_minor, a.currency, m.name AS member_name,
       b.name_zh AS benefit_name_zh, b.name_en AS benefit_name_en, o.name AS org_name, a.payee_bank,
       (SELECT p.failure_reason FROM grant_payouts p WHERE p.application_id = a.id AND p.status = 'failed'
         ORDER BY p.id DESC LIMIT 1) AS failure_reason
  FROM applications a
  JOIN members m ON m.id = a.member_id
  JOIN benefits b ON b.id = a.benefit_id
  JOIN orgs o ON o.id = a.org_id
 WHERE a.status IN ('approved', 'failed')
   AND NOT EXISTS (SELECT 1 FROM grant_payouts p WHERE p.application_id = a.id AND p.status <> 'failed')
 ORDER BY a.id
 LIMIT $1

-- name: bank_files_list
-- The latest bank files with their payouts counted by status and totalled.
SELECT f.id, f.created_by, f.created_at, count(p.id) AS payouts, coalesce(sum(p.amount_minor), 0)::bigint AS total_minor,
       count(p.id) FILTER (WHERE p.status = 'transferred') AS transferred,
       count(p.id) FILTER (WHERE p.status = 'paid') AS paid,
       count(p.id) FILTER (WHERE p.status = 'failed') AS failed,
       count(p.id) FILTER (WHERE p.status = 'submitting') AS submitting
  FROM grant_bank_files f
  LEFT JOIN grant_payouts p ON p.bank_file_id = f.id
 GROUP BY f.id
 ORDER BY f.id DESC
 LIMIT $1

-- name: bank_file_get
-- One bank file.
SELECT f.id, f.created_by, f.created_at FROM grant_bank_files f WHERE f.id = $1
