-- Where each claim stands, said once: the finance inbox lists claims by it and counts them by it.
-- stage: received → reconciled → batched → approved → in_payment → paid | failed | canceled (the live
-- instruction's state); exceptions: lines not matched plus the period's unclaimed sales, once reconciled.
CREATE VIEW claim_stages AS
SELECT c.id AS claim_id, c.period,
       coalesce((r.counts -> 'matched' ->> 'lines')::bigint, 0) AS matched_lines,
       coalesce((r.counts -> 'matched' ->> 'union_funded_minor')::bigint, 0) AS matched_union_funded_minor,
       CASE WHEN r.id IS NOT NULL
            THEN c.line_count - coalesce((r.counts -> 'matched' ->> 'lines')::bigint, 0) + r.unclaimed_sales
       END AS exceptions,
       b.id AS batch_id, b.status AS batch_status, b.payable_minor, i.status AS payout_status,
       CASE WHEN c.status = 'received' THEN 'received'
            WHEN b.id IS NULL THEN 'reconciled'
            WHEN b.status = 'draft' THEN 'batched'
            WHEN i.status IN ('submitting', 'transferred') THEN 'in_payment'
            WHEN i.status IN ('paid', 'failed', 'canceled') THEN i.status
            ELSE 'approved'
       END AS stage
  FROM claims c
  LEFT JOIN reconciliation_runs r ON r.id = c.run_id
  LEFT JOIN settlement_batches b ON b.claim_id = c.id
  LEFT JOIN LATERAL (SELECT p.status FROM payout_instructions p
                      WHERE p.batch_id = b.id ORDER BY p.id DESC LIMIT 1) i ON true;
