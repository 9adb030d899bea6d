-- The merchant back office: a merchant's sales, filtered, paged and totalled.

-- name: custom_plans
-- For this transaction: plan each filtered query for its own arguments, so an absent filter costs nothing.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true)

-- name: sales_page
-- Merchant $1's sales newest first, before the cursor ($8 time, $9 id), filtered by time [$2, $3), terminal $4,
-- card's last 4 digits $5, receipt $6 and status $7; card numbers masked to their last 4 digits.
WITH sales AS (
    SELECT r.id, r.occurred_at, r.terminal_id, r.card_id, r.receipt_ref, r.amount_minor, r.discount_minor,
           r.union_funded_minor, r.merchant_funded_minor, r.currency,
           coalesce(f.amount_minor, 0) AS refunded_minor,
           r.union_funded_minor - coalesce(f.union_funded_minor, 0) AS union_funded_net_minor,
           CASE WHEN f.amount_minor IS NULL THEN 'recorded'
                WHEN f.amount_minor >= r.amount_minor THEN 'refunded'
                ELSE 'partially_refunded' END AS status
      FROM redemptions r
      -- a page reads few sales: look up each one's refunds rather than total the merchant's
      LEFT JOIN LATERAL (
          SELECT sum(x.amount_minor)::bigint AS amount_minor, sum(x.union_funded_minor)::bigint AS union_funded_minor
            FROM refunds x
           WHERE x.redemption_id = r.id) f ON true
     WHERE r.merchant_id = $1
       AND r.occurred_at >= coalesce($2::timestamptz, '-infinity') AND r.occurred_at < coalesce($3::timestamptz, 'infinity')
       AND r.occurred_at <= coalesce($8::timestamptz, 'infinity')
       AND ($4::bigint IS NULL OR r.terminal_id = $4)
       AND ($6::text IS NULL OR r.receipt_ref = $6)
       AND ($5::text IS NULL OR r.card_id IN (SELECT c.id FROM cards c WHERE right(c.number, 4) = $5))
)
SELECT s.id::text AS id, s.occurred_at, s.terminal_id, t.name AS terminal_name, s.receipt_ref, s.amount_minor,
       s.discount_minor, s.union_funded_minor, s.merchant_funded_minor, s.currency, s.refunded_minor,
       s.union_funded_net_minor, s.status, '**** ' || right(c.number, 4) AS card
  FROM sales s
  JOIN cards c ON c.id = s.card_id
  JOIN terminals t ON t.id = s.terminal_id
 WHERE ($7::text IS NULL OR s.status = $7)
   AND ($8::timestamptz IS NULL OR (s.occurred_at, s.id) < ($8, $9::uuid))
 ORDER BY s.occurred_at DESC, s.id DESC
 LIMIT $10

-- name: sales_totals
-- Count and sums of merchant $1's sales under the filters of sales_page ($2..$7).
WITH refunded AS (
    SELECT x.redemption_id, sum(x.amount_minor)::bigint AS amount_minor,
           sum(x.union_funded_minor)::bigint AS union_funded_minor
      FROM refunds x
     WHERE x.merchant_id = $1 AND x.created_at >= coalesce($2::timestamptz - interval '1 day', '-infinity')
     GROUP BY x.redemption_id
), sales AS (
    SELECT r.amount_minor, r.discount_minor, r.union_funded_minor,
           coalesce(f.amount_minor, 0) AS refunded_minor, coalesce(f.union_funded_minor, 0) AS refunded_union_minor,
           CASE WHEN coalesce(f.amount_minor, 0) = 0 THEN 'recorded'
                WHEN f.amount_minor >= r.amount_minor THEN 'refunded'
                ELSE 'partially_refunded' END AS status
      FROM redemptions r
      LEFT JOIN refunded f ON f.redemption_id = r.id
     WHERE r.merchant_id = $1
       AND r.occurred_at >= coalesce($2::timestamptz, '-infinity') AND r.occurred_at < coalesce($3::timestamptz, 'infinity')
       AND ($4::bigint IS NULL OR r.terminal_id = $4)
       AND ($6::text IS NULL OR r.receipt_ref = $6)
       AND ($5::text IS NULL OR r.card_id IN (SELECT c.id FROM cards c WHERE right(c.number, 4) = $5))
)
SELECT count(*) AS sales, coalesce(sum(s.amount_minor), 0)::bigint AS amount_minor,
       coalesce(sum(s.discount_minor), 0)::bigint AS discount_minor,
       coalesce(sum(s.union_funded_minor), 0)::bigint AS union_funded_minor,
       coalesce(sum(s.refunded_minor), 0)::bigint AS refunded_minor,
       coalesce(sum(s.union_funded_minor - s.refunded_union_minor), 0)::bigint AS union_funded_net_minor
  FROM sales s
 WHERE ($7::text IS NULL OR s.status = $7)

-- name: sale_get
-- One sale of merchant $2 with its refunds, as the till shows it, but the card masked to its last 4 digits.
SELECT till_redemption_json(r.id)
       || jsonb_build_object('card', '**** ' || right(c.number, 4), 'terminal_name', t.name)
  FROM redemptions r
  JOIN cards c ON c.id = r.card_id
  JOIN terminals t ON t.id = r.terminal_id
 WHERE r.id = $1 AND r.merchant_id = $2

-- name: terminals_of
-- The merchant's terminals, for the filter, revoked ones too: their sales stay.
SELECT t.id, t.name, t.status
  FROM terminals t
 WHERE t.merchant_id = $1
 ORDER BY t.id
