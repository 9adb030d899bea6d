-- The merchant back office: a merchant's claims, batches and statement months.

-- name: claims_of
-- Merchant $1's claims newest first, before claim id $2, with their latest run's counts.
SELECT c.id, to_char(c.period, 'YYYY-MM') AS period, c.status, c.source, c.line_count, c.created_at,
       c.reconciled_at, r.counts, r.unclaimed_sales
  FROM claims c
  LEFT JOIN reconciliation_runs r ON r.id = c.run_id
 WHERE c.merchant_id = $1 AND c.id < $2
 ORDER BY c.id DESC
 LIMIT $3

-- name: batches_of
-- Merchant $1's latest settlement batches, with the status of each one's latest payout instruction.
SELECT b.id, b.claim_id, to_char(b.period, 'YYYY-MM') AS period, b.status, b.currency, b.gross_minor,
       b.clawback_minor, b.payable_minor, b.created_at, b.approved_at, p.status AS payout_status
  FROM settlement_batches b
  LEFT JOIN LATERAL (
      SELECT i.status FROM payout_instructions i WHERE i.batch_id = b.id ORDER BY i.id DESC LIMIT 1) p ON true
 WHERE b.merchant_id = $1
 ORDER BY b.id DESC
 LIMIT $2

-- name: statement_months
-- Every local month from merchant $1's first sale or claim to this month, newest first, with the month's
-- latest claim and latest batch.
WITH first AS (
    SELECT least((SELECT min(r.occurred_at) FROM redemptions r WHERE r.merchant_id = $1),
                 (SELECT min(c.period)::timestamp AT TIME ZONE till_local_tz() FROM claims c
                   WHERE c.merchant_id = $1)) AS at
), months AS (
    SELECT generate_series(date_trunc('month', f.at AT TIME ZONE till_local_tz()),
                           date_trunc('month', now() AT TIME ZONE till_local_tz()), interval '1 month')::date AS month
      FROM first f
     WHERE f.at IS NOT NULL
)
SELECT to_char(m.month, 'YYYY-MM') AS period, c.id AS claim_id, c.status AS claim_status, b.id AS batch_id,
       b.status AS batch_status, b.payable_minor, p.status AS payout_status
  FROM months m
  LEFT JOIN LATERAL (
      SELECT x.id, x.status FROM claims x
       WHERE x.merchant_id = $1 AND x.period = m.month ORDER BY x.id DESC LIMIT 1) c ON true
  LEFT JOIN LATERAL (
      SELECT y.id, y.status, y.payable_minor FROM settlement_batches y
       WHERE y.merchant_id = $1 AND y.period = m.month ORDER BY y.id DESC LIMIT 1) b ON true
  LEFT JOIN LATERAL (
      SELECT i.status FROM payout_instructions i WHERE i.batch_id = b.id ORDER BY i.id DESC LIMIT 1) p ON true
 ORDER BY m.month DESC

-- name: recorded_sales
-- What the till recorded for sales $2 of merchant $1: the amounts a claim line is compared with.
SELECT r.id::text AS id, r.amount_minor, r.union_funded_minor,
       r.union_funded_minor - coalesce((SELECT sum(x.union_funded_minor) FROM refunds x
                                         WHERE x.redemption_id = r.id), 0)::bigint AS union_funded_net_minor
  FROM redemptions r
 WHERE r.merchant_id = $1 AND r.id = ANY ($2::uuid[])
