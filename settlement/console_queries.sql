-- The finance console: the claims inbox of a period, page context, and the figures behind the overview charts.

-- name: inbox
-- Claims of period $1 with their stage (received … paid), filtered by stage $2 and exceptions $3, after id $4.
SELECT c.id, c.merchant_id, m.name AS merchant_name, c.status, c.currency, c.line_count, c.created_at,
       s.matched_lines, s.matched_union_funded_minor, s.exceptions, s.batch_id, s.batch_status, s.payable_minor,
       s.payout_status, s.stage
  FROM claim_stages s
  JOIN claims c ON c.id = s.claim_id
  JOIN merchants m ON m.id = c.merchant_id
 WHERE s.period = $1 AND ($2::text IS NULL OR s.stage = $2) AND (NOT $3::boolean OR s.exceptions > 0)
   AND c.id > $4
 ORDER BY c.id
 LIMIT $5

-- name: inbox_stages
-- How many claims of period $1 are at each stage, and how many of those have exceptions.
SELECT stage, count(*) AS claims, count(*) FILTER (WHERE exceptions > 0) AS with_exceptions
  FROM claim_stages
 WHERE period = $1
 GROUP BY stage

-- name: claim_context
-- The merchant of claim $1 and the claim's batch, if any.
SELECT c.id, c.merchant_id, m.name AS merchant_name, m.category, b.id AS batch_id, b.status AS batch_status
  FROM claims c
  JOIN merchants m ON m.id = c.merchant_id
  LEFT JOIN settlement_batches b ON b.claim_id = c.id
 WHERE c.id = $1

-- name: batch_context
-- The merchant and payee of batch $1.
SELECT b.id, b.merchant_id, m.name AS merchant_name, m.payee_name, m.payee_bank, m.payee_account
  FROM settlement_batches b
  JOIN merchants m ON m.id = b.merchant_id
 WHERE b.id = $1

-- name: subsidy_by_merchant
-- The union share of period $1's sales in currency $2, net of their refunds, per merchant: with its category and
-- its town (the org under the district), for the town and category charts.
WITH bounds AS (
    SELECT ($1::date::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           (($1::date + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
), moves AS (
    SELECT r.merchant_id, r.union_funded_minor
      FROM redemptions r, bounds w
     WHERE r.occurred_at >= w.starts_at AND r.occurred_at < w.ends_at AND r.currency = $2
    UNION ALL
    SELECT r.merchant_id, -f.union_funded_minor
      FROM refunds f
      JOIN redemptions r ON r.id = f.redemption_id, bounds w
     WHERE r.occurred_at >= w.starts_at AND r.occurred_at < w.ends_at AND r.currency = $2
), per_merchant AS (
    SELECT merchant_id, sum(union_funded_minor)::bigint AS union_funded_minor FROM moves GROUP BY merchant_id
)
SELECT p.merchant_id, m.category, t.id AS town_id, t.name AS town_name, p.union_funded_minor
  FROM per_merchant p
  JOIN merchants m ON m.id = p.merchant_id
  LEFT JOIN orgs o ON o.id = m.org_id
  LEFT JOIN LATERAL (
      SELECT a.id, a.name
        FROM orgs a
        JOIN orgs d ON d.id = a.parent_id AND d.kind = 'district'
       WHERE a.id = ANY (string_to_array(trim(BOTH '/' FROM o.path), '/')::bigint[])
       LIMIT 1) t ON true

-- name: budget_use
-- Per merchant whose offer in force in period $1 (currency $2) has a monthly budget: the budget and what is used.
WITH offer AS (
    SELECT DISTINCT ON (cv.merchant_id) cv.merchant_id, cv.version, cv.valid_until, cv.monthly_budget_minor
      FROM contract_versions cv
     WHERE cv.valid_from < $1::date + interval '1 month' AND cv.currency = $2
     ORDER BY cv.merchant_id, cv.version DESC
)
SELECT o.merchant_id, m.name AS merchant_name, o.version, o.monthly_budget_minor AS budget_minor,
       coalesce(u.used_minor, 0)::bigint AS used_minor
  FROM offer o
  JOIN merchants m ON m.id = o.merchant_id
  LEFT JOIN merchant_budget_months u ON u.merchant_id = o.merchant_id AND u.month = $1::date
 WHERE o.monthly_budget_minor IS NOT NULL AND (o.valid_until IS NULL OR o.valid_until >= $1::date)
 ORDER BY coalesce(u.used_minor, 0)::numeric / greatest(o.monthly_budget_minor, 1) DESC, m.name, o.merchant_id

-- name: daily_sales
-- Per local day of period $1 up to today: the union share of the day's sales in currency $2 net of their refunds,
-- and their count. The zone is read once: per row, till_local_tz() cost more than the sums.
WITH bounds AS (
    SELECT z.tz, ($1::date::timestamp AT TIME ZONE z.tz) AS starts_at,
           (($1::date + interval '1 month')::timestamp AT TIME ZONE z.tz) AS ends_at,
           least($1::date + interval '1 month' - interval '1 day', (now() AT TIME ZONE z.tz)::date) AS last_day
      FROM (SELECT till_local_tz() AS tz) z
), moves AS (
    SELECT (r.occurred_at AT TIME ZONE w.tz)::date AS day, r.union_funded_minor, 1 AS sales
      FROM redemptions r, bounds w
     WHERE r.occurred_at >= w.starts_at AND r.occurred_at < w.ends_at AND r.currency = $2
    UNION ALL
    SELECT (r.occurred_at AT TIME ZONE w.tz)::date, -f.union_funded_minor, 0
      FROM refunds f
      JOIN redemptions r ON r.id = f.redemption_id, bounds w
     WHERE r.occurred_at >= w.starts_at AND r.occurred_at < w.ends_at AND r.currency = $2
), per_day AS (
    SELECT x.day, sum(x.union_funded_minor) AS union_funded_minor, sum(x.sales) AS sales FROM moves x GROUP BY x.day
)
SELECT d.day::date AS day, coalesce(p.union_funded_minor, 0)::bigint AS union_funded_minor,
       coalesce(p.sales, 0)::bigint AS sales
  FROM bounds w
 CROSS JOIN generate_series($1::date, w.last_day, interval '1 day') AS d(day)
  LEFT JOIN per_day p ON p.day = d.day::date
 ORDER BY d.day

-- name: latest_claim_period
-- The most recent period any claim is for: where the inbox opens.
SELECT max(period) FROM claims
