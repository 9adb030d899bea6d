-- The member's own pages: what their cards saved at the till. A sale's saving is its discount less what
-- its refunds took back, counted on the day of the sale.

-- name: savings_totals
-- What member $1's cards saved on sales since $2 (this month), since $3 (this year) and ever.
WITH sales AS (
    SELECT r.occurred_at,
           r.discount_minor - coalesce((SELECT sum(f.discount_minor) FROM refunds f WHERE f.redemption_id = r.id), 0)
               AS saved_minor
      FROM cards c
      JOIN redemptions r ON r.card_id = c.id
     WHERE c.member_id = $1
)
SELECT coalesce(sum(saved_minor) FILTER (WHERE occurred_at >= $2::timestamptz), 0)::bigint AS month_minor,
       coalesce(sum(saved_minor) FILTER (WHERE occurred_at >= $3::timestamptz), 0)::bigint AS year_minor,
       coalesce(sum(saved_minor), 0)::bigint AS total_minor,
       count(*) AS sales
  FROM sales

-- name: savings_by_month
-- Member $1's sales and savings per local month (time zone $2), newest first, at most $3 months.
SELECT date_trunc('month', r.occurred_at AT TIME ZONE $2::text)::date AS month,
       count(*) AS sales,
       sum(r.amount_minor - coalesce(f.amount_minor, 0))::bigint AS spent_minor,
       sum(r.discount_minor - coalesce(f.discount_minor, 0))::bigint AS saved_minor
  FROM cards c
  JOIN redemptions r ON r.card_id = c.id
  LEFT JOIN LATERAL (
      SELECT sum(x.amount_minor) AS amount_minor, sum(x.discount_minor) AS discount_minor
        FROM refunds x WHERE x.redemption_id = r.id
  ) f ON true
 WHERE c.member_id = $1
 GROUP BY 1
 ORDER BY 1 DESC
 LIMIT $3

-- name: savings_sales
-- Member $1's sales, newest first, with the shop, the amount, the discount and what refunds took back; $2 rows
-- from row $3.
SELECT r.id, r.occurred_at, m.name AS merchant_name, m.category, r.amount_minor, r.discount_minor,
       coalesce(f.amount_minor, 0)::bigint AS refunded_minor,
       coalesce(f.discount_minor, 0)::bigint AS refunded_discount_minor
  FROM cards c
  JOIN redemptions r ON r.card_id = c.id
  JOIN merchants m ON m.id = r.merchant_id
  LEFT JOIN LATERAL (
      SELECT sum(x.amount_minor) AS amount_minor, sum(x.discount_minor) AS discount_minor
        FROM refunds x WHERE x.redemption_id = r.id
  ) f ON true
 WHERE c.member_id = $1
 ORDER BY r.occurred_at DESC, r.id DESC
 LIMIT $2 OFFSET $3

-- name: org_names
-- The names of some orgs, for "who may have it".
SELECT id, name FROM orgs WHERE id = ANY ($1::bigint[]) ORDER BY path
