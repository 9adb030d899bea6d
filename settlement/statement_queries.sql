-- Merchant statements: balances and movements from the ledger, the sales behind them, the batches of the period.
-- Balances and movements take $1 merchant id, $2 its payable account ('merchant:<id>:payable'), $3 currency and the
-- period as [$4, $5) in recorded time; the other blocks name their own parameters.

-- name: statement_merchant
-- The merchant a statement is for.
SELECT m.id, m.name, m.payee_name, m.payee_bank
  FROM merchants m
 WHERE m.id = $1

-- name: statement_balances
-- The merchant's payable and its payouts in transit before the period and at its end, summed from the postings.
WITH postings AS (
    SELECT p.amount_minor, p.recorded_at, true AS payable
      FROM ledger_postings p
     WHERE p.account = $2 AND p.currency = $3 AND p.recorded_at < $5
    UNION ALL
    SELECT p.amount_minor, p.recorded_at, false
      FROM ledger_postings p
      JOIN ledger_transactions t ON t.id = p.transaction_id
     WHERE p.account = 'payouts:in_transit' AND t.merchant_id = $1 AND p.currency = $3 AND p.recorded_at < $5
)
SELECT coalesce(sum(amount_minor) FILTER (WHERE payable AND recorded_at < $4), 0)::bigint AS opening_payable_minor,
       coalesce(sum(amount_minor) FILTER (WHERE NOT payable AND recorded_at < $4), 0)::bigint
           AS opening_in_transit_minor,
       coalesce(sum(amount_minor) FILTER (WHERE payable), 0)::bigint AS closing_payable_minor,
       coalesce(sum(amount_minor) FILTER (WHERE NOT payable), 0)::bigint AS closing_in_transit_minor
  FROM postings

-- name: statement_movements
-- The period's postings on those two accounts by kind; a refund of a sale already settled and not netted is a clawback.
WITH postings AS (
    SELECT p.transaction_id, p.amount_minor, true AS payable
      FROM ledger_postings p
     WHERE p.account = $2 AND p.currency = $3 AND p.recorded_at >= $4 AND p.recorded_at < $5
    UNION ALL
    SELECT p.transaction_id, p.amount_minor, false
      FROM ledger_postings p
      JOIN ledger_transactions t ON t.id = p.transaction_id
     WHERE p.account = 'payouts:in_transit' AND t.merchant_id = $1 AND p.currency = $3
       AND p.recorded_at >= $4 AND p.recorded_at < $5
), classed AS (
    SELECT x.transaction_id, x.amount_minor, x.payable, i.batch_id,
           CASE WHEN t.kind = 'refund'
                 AND EXISTS (SELECT 1 FROM settled_sales s WHERE s.redemption_id = t.redemption_id)
                 AND NOT EXISTS (SELECT 1 FROM settlement_refunds a
                                  WHERE a.refund_id = t.refund_id AND a.kind = 'netted')
                THEN 'clawback' ELSE t.kind END AS kind
      FROM postings x
      JOIN ledger_transactions t ON t.id = x.transaction_id
      LEFT JOIN payout_events e ON e.ledger_transaction_id = t.id  -- one event posted each payout transaction
      LEFT JOIN payout_instructions i ON i.id = e.instruction_id
)
SELECT kind, count(DISTINCT transaction_id) AS transactions,
       coalesce(sum(amount_minor) FILTER (WHERE payable), 0)::bigint AS payable_minor,
       coalesce(sum(amount_minor) FILTER (WHERE NOT payable), 0)::bigint AS in_transit_minor,
       coalesce(array_agg(DISTINCT batch_id ORDER BY batch_id) FILTER (WHERE batch_id IS NOT NULL), '{}')
           AS batch_ids
  FROM classed
 GROUP BY kind

-- name: statement_days
-- Sales and refunds booked in the period, per local booking day ($1 merchant, $2 currency, [$3, $4), $5 the time zone); refunds split like the ledger.
WITH sold AS (
    SELECT (r.recorded_at AT TIME ZONE $5)::date AS day, count(*) AS sales, sum(r.amount_minor) AS amount_minor,
           sum(r.discount_minor) AS discount_minor, sum(r.union_funded_minor) AS union_funded_minor,
           sum(r.merchant_funded_minor) AS merchant_funded_minor
      FROM redemptions r
     WHERE r.merchant_id = $1 AND r.currency = $2 AND r.recorded_at >= $3 AND r.recorded_at < $4
     GROUP BY 1
), refunded AS (
    SELECT (f.created_at AT TIME ZONE $5)::date AS day, count(*) AS refunds, sum(f.amount_minor) AS amount_minor,
           sum(f.union_funded_minor) AS union_funded_minor,
           sum(f.union_funded_minor) FILTER (
               WHERE EXISTS (SELECT 1 FROM settled_sales s WHERE s.redemption_id = f.redemption_id)
                 AND NOT EXISTS (SELECT 1 FROM settlement_refunds a WHERE a.refund_id = f.id AND a.kind = 'netted')
           ) AS clawback_union_funded_minor
      FROM refunds f
     WHERE f.merchant_id = $1 AND f.currency = $2 AND f.created_at >= $3 AND f.created_at < $4
     GROUP BY 1
)
SELECT to_char(coalesce(s.day, f.day), 'YYYY-MM-DD') AS day,
       coalesce(s.sales, 0)::bigint AS sales,
       coalesce(s.amount_minor, 0)::bigint AS amount_minor,
       coalesce(s.discount_minor, 0)::bigint AS discount_minor,
       coalesce(s.union_funded_minor, 0)::bigint AS union_funded_minor,
       coalesce(s.merchant_funded_minor, 0)::bigint AS merchant_funded_minor,
       coalesce(f.refunds, 0)::bigint AS refunds,
       coalesce(f.amount_minor, 0)::bigint AS refund_amount_minor,
       coalesce(f.union_funded_minor, 0)::bigint AS refund_union_funded_minor,
       coalesce(f.clawback_union_funded_minor, 0)::bigint AS clawback_union_funded_minor
  FROM sold s
  FULL JOIN refunded f ON f.day = s.day
 ORDER BY 1

-- name: statement_batches
-- The merchant's batches of this claim period ($4 its first day) or with a payout event in [$2, $3).
SELECT b.id, b.claim_id, to_char(b.period, 'YYYY-MM') AS period, b.currency, b.status,
       b.gross_minor, b.clawback_minor, b.payable_minor, b.approved_at
  FROM settlement_batches b
 WHERE b.merchant_id = $1
   AND (b.period = $4
        OR EXISTS (SELECT 1 FROM payout_instructions i JOIN payout_events e ON e.instruction_id = i.id
                    WHERE i.batch_id = b.id AND e.created_at >= $2 AND e.created_at < $3))
 ORDER BY b.id

-- name: statement_instructions
-- The payout instructions of those batches, with their status now.
SELECT i.id, i.batch_id, i.rail, i.amount_minor, i.currency, i.status, i.retry_of, i.failure_reason,
       i.created_at, i.updated_at
  FROM payout_instructions i
 WHERE i.batch_id = ANY($1::bigint[])
 ORDER BY i.batch_id, i.id
