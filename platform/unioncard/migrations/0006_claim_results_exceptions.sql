-- A run stores a result row only for a line that is not simply matched to the sale it names: every
-- line of another class, and a matched line resolved by its receipt number. The rest are matched to
-- their own redemption_id: a million-line claim writes a fraction of the rows (rows written before
-- this change, one per line, read the same). claim_lines shows every line of a reconciled claim with
-- its class and resolved sale; class is NULL while the claim has no run.
COMMENT ON TABLE claim_line_results IS
    'Per run, the lines not matched to the sale they name by redemption_id; the others are matched to it';

CREATE OR REPLACE VIEW claim_lines AS
SELECT l.claim_id, l.line_no, l.merchant_id, l.redemption_id, l.receipt_ref, l.occurred_at, l.amount_minor,
       l.union_funded_minor,
       CASE WHEN x.run_id IS NOT NULL THEN x.class WHEN c.run_id IS NOT NULL THEN 'matched' END AS class,
       CASE WHEN x.run_id IS NOT NULL THEN x.resolved_redemption_id WHEN c.run_id IS NOT NULL THEN l.redemption_id
       END AS resolved_redemption_id
  FROM claim_line_inputs l
  JOIN claims c ON c.id = l.claim_id
  LEFT JOIN claim_line_results x ON x.run_id = c.run_id AND x.line_no = l.line_no;
