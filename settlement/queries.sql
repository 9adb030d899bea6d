-- Settlement: claims, their lines, reconciliation runs.

-- name: claim_insert
-- A new claim of a merchant for a period (the first of a month), with its line count and the SHA-256 of the
-- document as received: the input of every run.
INSERT INTO claims (merchant_id, period, currency, source, line_count, lines_digest)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id

-- name: reconcile_settings
-- For this transaction: memory to hash a merchant's month of sales; no JIT (it costs more than it saves); a plan
-- for this claim's size, never the cached generic one (made for small claims, it loops over a big one's lines).
-- Merge joins would sort a million lines by sale id; hash joins keep them in line order.
SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true),
       set_config('plan_cache_mode', 'force_custom_plan', true), set_config('enable_mergejoin', 'off', true)

-- name: run_next_id
-- The id of the run about to be recorded: its results are written first.
SELECT nextval(pg_get_serial_sequence('reconciliation_runs', 'id'))

-- name: claim_classify
-- Resolve every line of claim $1 to a sale of its merchant and class it into run $3's results, in one statement.
-- The merchant's sales of the period are hashed once; only lines naming no such sale probe the index.
WITH claim AS (
    SELECT c.id, c.merchant_id, c.currency,
           (c.period::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           ((c.period + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
      FROM claims c
     WHERE c.id = $1
), sales AS MATERIALIZED (
    SELECT r.id, r.receipt_ref, r.occurred_at, r.amount_minor, r.union_funded_minor, r.currency
      FROM claim c
      JOIN redemptions r ON r.merchant_id = c.merchant_id AND r.occurred_at >= c.starts_at
                        AND r.occurred_at < c.ends_at
), nearest AS (
    -- A receipt number a merchant reused names the sale nearest in time to the line.
    SELECT DISTINCT ON (l.line_no) l.line_no, s.id, s.amount_minor, s.union_funded_minor, s.currency
      FROM claim_line_inputs l
      JOIN sales s ON s.receipt_ref = l.receipt_ref
     WHERE l.claim_id = $1 AND l.redemption_id IS NULL AND l.receipt_ref <> ''
     ORDER BY l.line_no, abs(extract(epoch FROM s.occurred_at - l.occurred_at)), s.id
), found AS MATERIALIZED (
    SELECT l.line_no, l.amount_minor, l.union_funded_minor, l.redemption_id AS named_id,
           coalesce(s.id, n.id) IS NOT NULL AS in_period,
           coalesce(s.amount_minor, n.amount_minor) AS sale_amount_minor,
           coalesce(s.union_funded_minor, n.union_funded_minor) AS sale_union_funded_minor,
           coalesce(s.currency, n.currency) AS sale_currency,
           coalesce(s.id, n.id, CASE
               WHEN l.redemption_id IS NOT NULL THEN (
                   SELECT x.id FROM redemptions x, claim c
                    WHERE x.id = l.redemption_id AND x.merchant_id = c.merchant_id)
               ELSE (
                   SELECT x.id FROM redemptions x, claim c
                    WHERE x.merchant_id = c.merchant_id AND x.receipt_ref = l.receipt_ref
                    ORDER BY abs(extract(epoch FROM x.occurred_at - l.occurred_at)), x.id
                    LIMIT 1)
           END) AS redemption_id
      FROM claim_line_inputs l
      LEFT JOIN sales s ON s.id = l.redemption_id
      LEFT JOIN nearest n ON n.line_no = l.line_no
     WHERE l.claim_id = $1
), firsts AS (
    -- Sales named by more than one line, with the line that claims them first.
    SELECT k.redemption_id, min(k.line_no) AS line_no
      FROM found k
     WHERE k.redemption_id IS NOT NULL
     GROUP BY k.redemption_id
    HAVING count(*) > 1
), refunded AS (
    SELECT f.redemption_id, sum(f.amount_minor) AS amount_minor, sum(f.union_funded_minor) AS union_funded_minor
      FROM claim c
      JOIN refunds f ON f.merchant_id = c.merchant_id
                    -- a refund is recorded after its sale; a day covers a terminal's clock running ahead
                    AND f.created_at >= c.starts_at - interval '1 day'
     GROUP BY f.redemption_id
), earlier AS (
    -- Sales another claim of the merchant holds: a line of its settlement batch (draft or approved) that finance
    -- did not exclude. A claim no batch has taken holds nothing (a merchant may correct a claim and send it
    -- again), nor does an excluded line (it may be claimed again); approval's settled_sales key is the last guard.
    SELECT DISTINCT l.redemption_id
      FROM claim c
      JOIN settlement_batches b ON b.merchant_id = c.merchant_id AND b.claim_id <> c.id
      JOIN settlement_batch_lines l ON l.batch_id = b.id AND l.excluded_reason IS NULL
)
, classified AS MATERIALIZED (
    SELECT k.line_no, k.redemption_id, k.named_id, k.amount_minor, k.union_funded_minor,
           CASE
             WHEN k.redemption_id IS NULL THEN 'not_found'
             WHEN d.line_no <> k.line_no THEN 'duplicate_line'
             WHEN e.redemption_id IS NOT NULL THEN 'already_claimed'
             WHEN NOT k.in_period THEN 'out_of_period'
             WHEN coalesce(f.amount_minor, 0) >= k.sale_amount_minor THEN 'reversed'
             WHEN k.amount_minor <> k.sale_amount_minor OR k.sale_currency <> c.currency
                  OR abs(k.union_funded_minor - (k.sale_union_funded_minor - coalesce(f.union_funded_minor, 0))) > $2
               THEN 'amount_mismatch'
             ELSE 'matched'
           END AS class
      FROM found k
     CROSS JOIN claim c
      LEFT JOIN firsts d ON d.redemption_id = k.redemption_id
      LEFT JOIN refunded f ON f.redemption_id = k.redemption_id
      LEFT JOIN earlier e ON e.redemption_id = k.redemption_id
     ORDER BY k.line_no  -- the results' primary key is then appended to, not filled at random
), stored AS (
    -- A line matched to the sale it names needs no row (see the view claim_lines).
    INSERT INTO claim_line_results (run_id, line_no, class, resolved_redemption_id)
    SELECT $3, k.line_no, k.class, k.redemption_id
      FROM classified k
     WHERE k.class <> 'matched' OR k.named_id IS DISTINCT FROM k.redemption_id
), per_class AS (
    SELECT k.class, count(*) AS lines, sum(k.amount_minor) AS amount_minor,
           sum(k.union_funded_minor) AS union_funded_minor
      FROM classified k
     GROUP BY k.class
), unclaimed AS (
    -- The period's sales no line resolved to, whatever the line's class.
    SELECT count(*) AS sales, coalesce(sum(s.union_funded_minor), 0)::bigint AS union_funded_minor
      FROM sales s
     WHERE NOT EXISTS (SELECT 1 FROM found k WHERE k.redemption_id = s.id)
)
-- The digest lists the line count and every line that is not matched: the others are.
SELECT (SELECT encode(sha256(convert_to(concat_ws(E'\n', count(*),
            string_agg(k.line_no || ':' || k.class, E'\n' ORDER BY k.line_no) FILTER (WHERE k.class <> 'matched')),
            'UTF8')), 'hex')
          FROM classified k) AS result_digest,
       (SELECT coalesce(jsonb_object_agg(p.class, jsonb_build_object(
            'lines', p.lines, 'amount_minor', p.amount_minor, 'union_funded_minor', p.union_funded_minor)),
            '{}'::jsonb)
          FROM per_class p) AS counts,
       u.sales AS unclaimed_sales, u.union_funded_minor AS unclaimed_union_funded_minor
  FROM unclaimed u

-- name: run_insert
-- Record run $3 of claim $1 at tolerance $2: its input digest, and what claim_classify returned ($4..$7).
WITH claim AS (
    UPDATE claims SET status = 'reconciled', reconciled_at = now(), run_id = $3
     WHERE id = $1
    RETURNING id, lines_digest
)
INSERT INTO reconciliation_runs (id, claim_id, tolerance_minor, input_digest, result_digest, counts, unclaimed_sales,
                                 unclaimed_union_funded_minor)
SELECT $3, c.id, $2,
       encode(sha256(convert_to(concat_ws('|', c.id, $2::bigint, c.lines_digest), 'UTF8')), 'hex'),
       $4, $5, $6, $7
  FROM claim c
RETURNING id, claim_id, tolerance_minor, input_digest, result_digest, created_at

-- name: claim_get
-- One claim with its latest run.
SELECT c.id, c.merchant_id, to_char(c.period, 'YYYY-MM') AS period, c.currency, c.status, c.source,
       c.line_count, c.lines_digest, c.created_at, c.reconciled_at,
       r.id AS run_id, r.tolerance_minor, r.input_digest, r.result_digest, r.unclaimed_sales,
       r.unclaimed_union_funded_minor
  FROM claims c
  LEFT JOIN reconciliation_runs r ON r.id = c.run_id
 WHERE c.id = $1

-- name: claim_class_totals
-- Lines, claimed amount and claimed union share per class of a claim, as its latest run counted them.
SELECT k.key AS class, (k.value ->> 'lines')::bigint AS lines, (k.value ->> 'amount_minor')::bigint AS amount_minor,
       (k.value ->> 'union_funded_minor')::bigint AS union_funded_minor
  FROM claims c
  JOIN reconciliation_runs r ON r.id = c.run_id
 CROSS JOIN LATERAL jsonb_each(r.counts) k
 WHERE c.id = $1

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
    SELECT c.id, c.merchant_id, c.run_id,
           (c.period::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           ((c.period + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
      FROM claims c
     WHERE c.id = $1
), sales AS (
    SELECT r.id, r.receipt_ref, r.occurred_at, r.amount_minor, r.union_funded_minor, r.currency
      FROM redemptions r
      JOIN claim c ON r.merchant_id = c.merchant_id AND r.occurred_at >= c.starts_at AND r.occurred_at < c.ends_at
     WHERE r.id > $2
       AND NOT EXISTS (SELECT 1 FROM claim_lines x
                        WHERE x.claim_id = c.id AND x.resolved_redemption_id = r.id)
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
