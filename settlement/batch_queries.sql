-- Settlement batches: payables per reconciled claim, approvals, clawbacks, payout instructions.

-- name: claim_for_batch
-- The claim a batch is made from, with its matched line numbers.
SELECT c.id, c.merchant_id, c.status, c.currency,
       coalesce(array_agg(l.line_no ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}') AS matched_lines
  FROM claims c
  LEFT JOIN claim_lines l ON l.claim_id = c.id AND l.class = 'matched'
 WHERE c.id = $1
 GROUP BY c.id

-- name: batch_insert
-- A draft batch for a claim.
INSERT INTO settlement_batches (claim_id, merchant_id, period, currency, created_by)
SELECT c.id, c.merchant_id, c.period, c.currency, $2
  FROM claims c
 WHERE c.id = $1
RETURNING id

-- name: batch_lines_insert
-- The claim's matched lines, each sale's union share net of its refunds so far; $2/$3 exclude lines with reasons.
INSERT INTO settlement_batch_lines (batch_id, line_no, redemption_id, union_funded_minor, excluded_reason)
SELECT b.id, l.line_no, l.resolved_redemption_id,
       r.union_funded_minor - coalesce((SELECT sum(f.union_funded_minor) FROM refunds f
                                         WHERE f.redemption_id = r.id), 0),
       x.reason
  FROM settlement_batches b
  JOIN claim_lines l ON l.claim_id = b.claim_id AND l.class = 'matched'
  JOIN redemptions r ON r.id = l.resolved_redemption_id
  LEFT JOIN unnest($2::integer[], $3::text[]) AS x(line_no, reason) ON x.line_no = l.line_no
 WHERE b.id = $1
RETURNING line_no

-- name: batch_gross_set
-- The draft's gross: the union share of the lines not excluded.
UPDATE settlement_batches b
   SET gross_minor = t.gross_minor, payable_minor = t.gross_minor - b.clawback_minor
  FROM (SELECT coalesce(sum(l.union_funded_minor), 0)::bigint AS gross_minor
          FROM settlement_batch_lines l
         WHERE l.batch_id = $1 AND l.excluded_reason IS NULL) AS t
 WHERE b.id = $1
RETURNING b.id

-- name: batch_get
-- One batch.
SELECT b.id, b.claim_id, b.merchant_id, to_char(b.period, 'YYYY-MM') AS period, b.currency, b.status,
       b.gross_minor, b.clawback_minor, b.payable_minor, b.created_by, b.created_at, b.approved_by, b.approved_at
  FROM settlement_batches b
 WHERE b.id = $1

-- name: batch_list
-- Batches after an id, of one merchant or all.
SELECT b.id, b.claim_id, b.merchant_id, to_char(b.period, 'YYYY-MM') AS period, b.currency, b.status,
       b.gross_minor, b.clawback_minor, b.payable_minor, b.created_at, b.approved_at
  FROM settlement_batches b
 WHERE ($1::bigint IS NULL OR b.merchant_id = $1) AND b.id > $2
 ORDER BY b.id
 LIMIT $3

-- name: batch_lock
-- The batch under a row lock, for approval and retry: concurrent approvers queue here.
SELECT b.id, b.merchant_id, b.status, b.currency
  FROM settlement_batches b
 WHERE b.id = $1
   FOR UPDATE

-- name: merchant_settlement_lock
-- One approval at a time per merchant: clawbacks are drawn from the merchant's pending refunds.
SELECT pg_advisory_xact_lock(7304221, $1::integer)

-- name: batch_lines
-- A batch's lines in line order.
SELECT l.line_no, l.redemption_id::text AS redemption_id, l.union_funded_minor, l.excluded_reason
  FROM settlement_batch_lines l
 WHERE l.batch_id = $1
 ORDER BY l.line_no

-- name: batch_clawbacks
-- The refunds of earlier-settled sales a batch clawed back.
SELECT s.refund_id::text AS refund_id, s.redemption_id::text AS redemption_id, s.union_funded_minor
  FROM settlement_refunds s
 WHERE s.batch_id = $1 AND s.kind = 'clawback'
 ORDER BY s.refund_id

-- name: clawback_pending
-- The union share of a merchant's refunds of settled sales not yet clawed back.
SELECT coalesce(sum(f.union_funded_minor), 0)::bigint AS union_funded_minor
  FROM refunds f
  JOIN settled_sales s ON s.redemption_id = f.redemption_id
 WHERE f.merchant_id = $1 AND f.currency = $2
   AND NOT EXISTS (SELECT 1 FROM settlement_refunds a WHERE a.refund_id = f.id)

-- name: settled_sales_insert
-- Claim the batch's included sales; a sale already settled elsewhere breaks settled_sales_pk.
INSERT INTO settled_sales (redemption_id, batch_id)
SELECT l.redemption_id, l.batch_id
  FROM settlement_batch_lines l
 WHERE l.batch_id = $1 AND l.excluded_reason IS NULL

-- name: refunds_net
-- Account the refunds so far of the batch's sales as netted in this batch.
INSERT INTO settlement_refunds (refund_id, batch_id, redemption_id, kind, union_funded_minor)
SELECT f.id, s.batch_id, f.redemption_id, 'netted', f.union_funded_minor
  FROM settled_sales s
  JOIN refunds f ON f.redemption_id = s.redemption_id
 WHERE s.batch_id = $1

-- name: batch_lines_net
-- Each line's union share net of the refunds netted for its sale in this batch.
UPDATE settlement_batch_lines l
   SET union_funded_minor = r.union_funded_minor - coalesce((
           SELECT sum(a.union_funded_minor) FROM settlement_refunds a
            WHERE a.batch_id = l.batch_id AND a.redemption_id = l.redemption_id AND a.kind = 'netted'), 0)
  FROM redemptions r
 WHERE l.batch_id = $1 AND r.id = l.redemption_id AND l.excluded_reason IS NULL

-- name: clawbacks_take
-- Claw back the merchant's pending refunds of settled sales, oldest first, as far as the batch's gross covers.
WITH batch AS (
    SELECT b.id, b.merchant_id, b.currency,
           (SELECT coalesce(sum(l.union_funded_minor), 0) FROM settlement_batch_lines l
             WHERE l.batch_id = b.id AND l.excluded_reason IS NULL) AS gross_minor
      FROM settlement_batches b
     WHERE b.id = $1
), pending AS (
    SELECT f.id, f.redemption_id, f.union_funded_minor,
           sum(f.union_funded_minor) OVER (ORDER BY f.created_at, f.id) AS running_minor
      FROM refunds f
      JOIN batch b ON f.merchant_id = b.merchant_id AND f.currency = b.currency
      JOIN settled_sales s ON s.redemption_id = f.redemption_id
     WHERE NOT EXISTS (SELECT 1 FROM settlement_refunds a WHERE a.refund_id = f.id)
)
INSERT INTO settlement_refunds (refund_id, batch_id, redemption_id, kind, union_funded_minor)
SELECT p.id, b.id, p.redemption_id, 'clawback', p.union_funded_minor
  FROM pending p, batch b
 WHERE p.running_minor <= b.gross_minor

-- name: batch_approve
-- Freeze the totals and approve the draft.
UPDATE settlement_batches b
   SET status = 'approved', approved_by = $2, approved_at = now(),
       gross_minor = t.gross_minor, clawback_minor = t.clawback_minor,
       payable_minor = t.gross_minor - t.clawback_minor
  FROM (SELECT (SELECT coalesce(sum(l.union_funded_minor), 0) FROM settlement_batch_lines l
                 WHERE l.batch_id = $1 AND l.excluded_reason IS NULL)::bigint AS gross_minor,
               (SELECT coalesce(sum(a.union_funded_minor), 0) FROM settlement_refunds a
                 WHERE a.batch_id = $1 AND a.kind = 'clawback')::bigint AS clawback_minor) AS t
 WHERE b.id = $1 AND b.status = 'draft'
RETURNING b.payable_minor

-- name: instruction_open
-- A payout instruction for the batch's payable, posted Dr merchant payable / Cr payouts:in_transit.
WITH opened AS (
    INSERT INTO payout_instructions (batch_id, merchant_id, rail, amount_minor, currency, retry_of)
    SELECT b.id, b.merchant_id, $2, b.payable_minor, b.currency, $3
      FROM settlement_batches b
     WHERE b.id = $1 AND b.status = 'approved' AND b.payable_minor > 0
    RETURNING id, merchant_id, amount_minor, currency
), posted AS (
    SELECT o.id, ledger_post('settlement_approved', o.merchant_id, NULL, NULL, now(),
                             'merchant:' || o.merchant_id || ':payable', 'payouts:in_transit',
                             o.amount_minor, o.currency) AS ledger_transaction_id
      FROM opened o
)
INSERT INTO payout_events (instruction_id, status, ledger_transaction_id, actor)
SELECT p.id, 'approved', p.ledger_transaction_id, $4
  FROM posted p
RETURNING instruction_id, ledger_transaction_id

-- name: instructions_of_batch
-- A batch's instructions with their payees (and the payee's Stripe account, if any), oldest first.
SELECT i.id, i.batch_id, i.rail, i.amount_minor, i.currency, i.status, i.retry_of, i.failure_reason,
       i.rail_reference, i.created_at, i.updated_at, m.id AS merchant_id, m.payee_name, m.payee_account,
       m.payee_bank, a.account_id AS rail_account, coalesce(a.payouts_enabled, false) AS rail_ready
  FROM payout_instructions i
  JOIN merchants m ON m.id = i.merchant_id
  LEFT JOIN stripe_accounts a ON a.merchant_id = i.merchant_id
 WHERE i.batch_id = $1
 ORDER BY i.id

-- name: instruction_lock
-- One instruction under a row lock.
SELECT i.id, i.batch_id, i.status
  FROM payout_instructions i
 WHERE i.id = $1
   FOR UPDATE

-- name: instructions_move
-- Move instructions forward from one of the states $2 to $3, recording an event each; no ledger effect.
WITH moved AS (
    UPDATE payout_instructions i
       SET status = $3, updated_at = now()
     WHERE i.id = ANY($1::bigint[]) AND i.status = ANY($2::text[])
    RETURNING i.id
)
INSERT INTO payout_events (instruction_id, status, actor)
SELECT m.id, $3, $4
  FROM moved m
RETURNING instruction_id

-- name: instructions_settle
-- Apply outcomes (paid, failed or canceled) to instructions still in one of the states $4, forward only, with postings:
-- paid Dr payouts:in_transit / Cr union:cash; failed or canceled reverse the approval to the merchant's payable.
WITH outcome AS (
    SELECT DISTINCT ON (e.id) e.id, e.status, e.reason
      FROM unnest($1::bigint[], $2::text[], $3::text[]) AS e(id, status, reason)
     ORDER BY e.id
), moved AS (
    UPDATE payout_instructions i
       SET status = o.status, failure_reason = o.reason, updated_at = now()
      FROM outcome o
     WHERE i.id = o.id AND i.status = ANY($4::text[]) AND o.status IN ('paid', 'failed', 'canceled')
    RETURNING i.id, i.batch_id, i.merchant_id, i.status, i.amount_minor, i.currency, i.failure_reason
), posted AS (
    SELECT m.id, m.batch_id, m.status, m.failure_reason,
           ledger_post(CASE m.status WHEN 'paid' THEN 'payout_paid' ELSE 'payout_' || m.status END,
                       m.merchant_id, NULL, NULL, now(), 'payouts:in_transit',
                       CASE m.status WHEN 'paid' THEN 'union:cash' ELSE 'merchant:' || m.merchant_id || ':payable' END,
                       m.amount_minor, m.currency) AS ledger_transaction_id
      FROM moved m
), logged AS (
    INSERT INTO payout_events (instruction_id, status, reason, ledger_transaction_id, actor)
    SELECT p.id, p.status, p.failure_reason, p.ledger_transaction_id, $5
      FROM posted p
)
SELECT p.id, p.batch_id, p.status, p.ledger_transaction_id
  FROM posted p
 ORDER BY p.id

-- name: instruction_reference_set
-- The rail's id for an instruction (a Stripe transfer), kept once known; not on one canceled meanwhile.
UPDATE payout_instructions i
   SET rail_reference = $2, updated_at = now()
 WHERE i.id = $1 AND i.rail_reference IS NULL AND i.status IN ('submitting', 'transferred')
RETURNING i.id

-- name: instruction_retire
-- A failed or canceled instruction becomes retried, once, before its successor opens.
WITH moved AS (
    UPDATE payout_instructions i
       SET status = 'retried', updated_at = now()
     WHERE i.id = $1 AND i.status IN ('failed', 'canceled')
    RETURNING i.id
)
INSERT INTO payout_events (instruction_id, status, actor)
SELECT m.id, 'retried', $2
  FROM moved m
RETURNING instruction_id

-- name: instruction_batches
-- The batch and rail of each instruction id that exists.
SELECT i.id, i.batch_id, i.merchant_id, i.rail
  FROM payout_instructions i
 WHERE i.id = ANY($1::bigint[])

-- name: batch_discard
-- A draft batch and its lines gone (nothing was posted or paid for it): its claim may be batched again.
WITH lines AS (
    DELETE FROM settlement_batch_lines l
     USING settlement_batches b
     WHERE l.batch_id = b.id AND b.id = $1 AND b.status = 'draft'
)
DELETE FROM settlement_batches b
 WHERE b.id = $1 AND b.status = 'draft'
RETURNING b.id, b.claim_id, b.merchant_id
