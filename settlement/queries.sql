-- Settlement: claims, their lines, reconciliation runs.

-- name: claim_insert
-- A new claim of a merchant for a period (the first of a month).
INSERT INTO claims (merchant_id, period, currency, source)
VALUES ($1, $2, $3, $4)
RETURNING id

-- name: claim_seal
-- Count the claim's loaded lines and digest them in line order: the input of every run.
UPDATE claims c
   SET line_count = d.line_count, lines_digest = d.lines_digest
  FROM (SELECT count(*)::integer AS line_count,
               encode(sha256(convert_to(coalesce(string_agg(
                   concat_ws('|', l.line_no, l.redemption_id, l.receipt_ref,
                             extract(epoch FROM l.occurred_at), l.amount_minor, l.union_funded_minor),
                   E'\n' ORDER BY l.line_no), ''), 'UTF8')), 'hex') AS lines_digest
          FROM claim_lines l
         WHERE l.claim_id = $1) AS d
 WHERE c.id = $1
RETURNING c.id

-- name: claim_classify
-- Resolve every line of a claim to a sale of its merchant and classify it, in one statement.
WITH claim AS (
    SELECT c.id, c.merchant_id, c.currency,
           (c.period::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           ((c.period + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
      FROM claims c
     WHERE c.id = $1
), by_id AS (
    SELECT l.line_no, r.id AS redemption_id
      FROM claim_lines l
      JOIN claim c ON c.id = l.claim_id
      JOIN redemptions r ON r.id = l.redemption_id AND r.merchant_id = c.merchant_id
     WHERE l.claim_id = $1 AND l.redemption_id IS NOT NULL
), by_receipt AS (
    -- A receipt number a merchant reused names the sale nearest in time to the line.
    SELECT DISTINCT ON (l.line_no) l.line_no, r.id AS redemption_id
      FROM claim_lines l
      JOIN claim c ON c.id = l.claim_id
      JOIN redemptions r ON r.merchant_id = c.merchant_id AND r.receipt_ref = l.receipt_ref
     WHERE l.claim_id = $1 AND l.redemption_id IS NULL AND l.receipt_ref <> ''
     ORDER BY l.line_no, abs(extract(epoch FROM r.occurred_at - l.occurred_at)), r.id
), resolved AS (
    SELECT line_no, redemption_id FROM by_id
    UNION ALL
    SELECT line_no, redemption_id FROM by_receipt
), refunded AS (
    SELECT f.redemption_id, sum(f.amount_minor) AS amount_minor, sum(f.union_funded_minor) AS union_funded_minor
      FROM refunds f
      JOIN claim c ON c.merchant_id = f.merchant_id
     WHERE f.redemption_id IN (SELECT redemption_id FROM resolved)
     GROUP BY f.redemption_id
), earlier AS (
    SELECT DISTINCT o.resolved_redemption_id AS redemption_id
      FROM claim_lines o
      JOIN claim c ON c.merchant_id = o.merchant_id
     WHERE o.class = 'matched' AND o.claim_id < c.id
       AND o.resolved_redemption_id IN (SELECT redemption_id FROM resolved)
), classified AS (
    SELECT l.line_no, s.redemption_id,
           CASE
             WHEN s.redemption_id IS NULL THEN 'not_found'
             WHEN row_number() OVER (PARTITION BY s.redemption_id ORDER BY l.line_no) > 1 THEN 'duplicate_line'
             WHEN e.redemption_id IS NOT NULL THEN 'already_claimed'
             WHEN r.occurred_at < c.starts_at OR r.occurred_at >= c.ends_at THEN 'out_of_period'
             WHEN coalesce(f.amount_minor, 0) >= r.amount_minor THEN 'reversed'
             WHEN l.amount_minor <> r.amount_minor OR r.currency <> c.currency
                  OR abs(l.union_funded_minor - (r.union_funded_minor - coalesce(f.union_funded_minor, 0))) > $2
               THEN 'amount_mismatch'
             ELSE 'matched'
           END AS class
      FROM claim_lines l
      JOIN claim c ON c.id = l.claim_id
      LEFT JOIN resolved s ON s.line_no = l.line_no
      LEFT JOIN redemptions r ON r.id = s.redemption_id
      LEFT JOIN refunded f ON f.redemption_id = s.redemption_id
      LEFT JOIN earlier e ON e.redemption_id = s.redemption_id
     WHERE l.claim_id = $1
)
UPDATE claim_lines t
   SET class = k.class, resolved_redemption_id = k.redemption_id
  FROM classified k
 WHERE t.claim_id = $1 AND t.line_no = k.line_no

-- name: run_insert
-- Record a run: its inputs, the digest of the ordered (line_no, class) pairs, counts per class.
WITH per_class AS (
    SELECT l.class, count(*) AS lines, sum(l.amount_minor) AS amount_minor,
           sum(l.union_funded_minor) AS union_funded_minor
      FROM claim_lines l
     WHERE l.claim_id = $1
     GROUP BY l.class
), result AS (
    SELECT encode(sha256(convert_to(coalesce(
               string_agg(l.line_no || ':' || l.class, E'\n' ORDER BY l.line_no), ''), 'UTF8')), 'hex') AS digest
      FROM claim_lines l
     WHERE l.claim_id = $1
), counts AS (
    SELECT coalesce(jsonb_object_agg(p.class, jsonb_build_object(
               'lines', p.lines, 'amount_minor', p.amount_minor, 'union_funded_minor', p.union_funded_minor)),
           '{}'::jsonb) AS counts
      FROM per_class p
), claim AS (
    UPDATE claims SET status = 'reconciled', reconciled_at = now()
     WHERE id = $1
    RETURNING id, lines_digest
)
INSERT INTO reconciliation_runs (claim_id, tolerance_minor, input_digest, result_digest, counts)
SELECT c.id, $2,
       encode(sha256(convert_to(concat_ws('|', c.id, $2::bigint, c.lines_digest), 'UTF8')), 'hex'),
       r.digest, k.counts
  FROM claim c, result r, counts k
RETURNING id, claim_id, tolerance_minor, input_digest, result_digest, created_at

-- name: claim_get
-- One claim with its latest run.
SELECT c.id, c.merchant_id, to_char(c.period, 'YYYY-MM') AS period, c.currency, c.status, c.source,
       c.line_count, c.lines_digest, c.created_at, c.reconciled_at,
       r.id AS run_id, r.tolerance_minor, r.input_digest, r.result_digest
  FROM claims c
  LEFT JOIN LATERAL (
      SELECT x.id, x.tolerance_minor, x.input_digest, x.result_digest
        FROM reconciliation_runs x
       WHERE x.claim_id = c.id
       ORDER BY x.id DESC
       LIMIT 1) r ON true
 WHERE c.id = $1

-- name: claim_class_totals
-- Lines, claimed amount and claimed union share per class of a claim.
SELECT l.class, count(*) AS lines, sum(l.amount_minor)::bigint AS amount_minor,
       sum(l.union_funded_minor)::bigint AS union_funded_minor
  FROM claim_lines l
 WHERE l.claim_id = $1
 GROUP BY l.class

-- name: claim_lines_page
-- A page of a claim's lines in line order, of one class or of all.
SELECT l.line_no, l.redemption_id::text AS redemption_id, l.receipt_ref, l.occurred_at,
       l.amount_minor, l.union_funded_minor, l.class, l.resolved_redemption_id::text AS resolved_redemption_id
  FROM claim_lines l
 WHERE l.claim_id = $1 AND l.line_no > $2 AND ($3::text IS NULL OR l.class = $3)
 ORDER BY l.line_no
 LIMIT $4

-- name: claim_unclaimed
-- The period's sales of the claim's merchant that no line of the claim names, by id, after $2.
WITH claim AS (
    SELECT c.id, c.merchant_id,
           (c.period::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           ((c.period + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
      FROM claims c
     WHERE c.id = $1
), sales AS (
    SELECT r.id, r.receipt_ref, r.occurred_at, r.amount_minor, r.union_funded_minor, r.currency
      FROM redemptions r
      JOIN claim c ON r.merchant_id = c.merchant_id AND r.occurred_at >= c.starts_at AND r.occurred_at < c.ends_at
     WHERE r.id > $2
       AND NOT EXISTS (SELECT 1 FROM claim_lines l
                        WHERE l.claim_id = c.id AND l.resolved_redemption_id = r.id)
), refunded AS (
    SELECT f.redemption_id, sum(f.amount_minor) AS amount_minor, sum(f.union_funded_minor) AS union_funded_minor
      FROM refunds f
     WHERE f.redemption_id IN (SELECT id FROM sales)
     GROUP BY f.redemption_id
)
SELECT s.id::text AS redemption_id, s.receipt_ref, s.occurred_at, s.amount_minor, s.union_funded_minor,
       coalesce(f.amount_minor, 0)::bigint AS refunded_minor,
       (s.union_funded_minor - coalesce(f.union_funded_minor, 0))::bigint AS union_funded_net_minor, s.currency
  FROM sales s
  LEFT JOIN refunded f ON f.redemption_id = s.id
 ORDER BY s.id
 LIMIT $3

-- name: claim_unclaimed_totals
-- How many of the period's sales no line of the claim names, and their union share.
WITH claim AS (
    SELECT c.id, c.merchant_id,
           (c.period::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           ((c.period + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
      FROM claims c
     WHERE c.id = $1
)
SELECT count(*) AS sales, coalesce(sum(r.union_funded_minor), 0)::bigint AS union_funded_minor
  FROM redemptions r
  JOIN claim c ON r.merchant_id = c.merchant_id AND r.occurred_at >= c.starts_at AND r.occurred_at < c.ends_at
 WHERE NOT EXISTS (SELECT 1 FROM claim_lines l WHERE l.claim_id = c.id AND l.resolved_redemption_id = r.id)
