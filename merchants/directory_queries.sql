-- The member-facing merchant directory: shops whose offer in force a card may use, nearest first.
-- "In force" on a local day, as the till judges it (offer_in_force, which agrees with till_offer_at and
-- till_price_of): the merchant is active, its latest contract version starts on or before the day and has
-- not ended; the card's tier and org are among the version's eligible ones. Days of week and hours are shown
-- in words, not filtered.

-- name: directory_page
-- Shops whose offer in force on $1 a card of tier $2 in org path $3 may use, nearest to ($4, $5) first
-- (no place: by id); $6 a category or NULL; $7 rows from row $8. `total` counts every row that matched.
SELECT m.id, m.name, m.category, m.address, m.latitude, m.longitude,
       o.kind, o.rate_bps, o.amount_minor, o.currency, o.min_spend_minor, o.discount_minor_max,
       o.per_card_daily_sales_max, o.per_card_daily_discount_minor_max,
       o.per_card_monthly_sales_max, o.per_card_monthly_discount_minor_max,
       o.days_of_week, o.hours_start, o.hours_end, o.union_share_bps, o.valid_until,
       distance_m($4::float8, $5::float8, m.latitude, m.longitude) AS distance_m,
       count(*) OVER () AS total
  FROM merchants m
  CROSS JOIN LATERAL offer_in_force(m.id, $1::date) o
 WHERE m.status = 'active'
   AND ($6::text IS NULL OR m.category = $6::text)
   AND (o.eligible_tiers IS NULL OR $2::text = ANY (o.eligible_tiers))
   AND (o.eligible_org_ids IS NULL OR EXISTS (
        SELECT 1 FROM unnest(o.eligible_org_ids) AS e(org_id) WHERE $3::text LIKE '%/' || e.org_id || '/%'))
 ORDER BY distance_m NULLS LAST, m.id
 LIMIT $7 OFFSET $8

-- name: offer_counts
-- Per category, the shops whose offer in force on $1 a card of tier $2 in org path $3 may use.
SELECT m.category, count(*) AS merchants
  FROM merchants m
  CROSS JOIN LATERAL offer_in_force(m.id, $1::date) o
 WHERE m.status = 'active'
   AND (o.eligible_tiers IS NULL OR $2::text = ANY (o.eligible_tiers))
   AND (o.eligible_org_ids IS NULL OR EXISTS (
        SELECT 1 FROM unnest(o.eligible_org_ids) AS e(org_id) WHERE $3::text LIKE '%/' || e.org_id || '/%'))
 GROUP BY m.category
 ORDER BY count(*) DESC, m.category

-- name: places
-- Where the shops are: for each org with active shops that have coordinates, the shops' centre.
SELECT o.id, o.name, o.path, avg(m.latitude) AS latitude, avg(m.longitude) AS longitude, count(*) AS merchants
  FROM merchants m
  JOIN orgs o ON o.id = m.org_id
 WHERE m.status = 'active' AND m.latitude IS NOT NULL
 GROUP BY o.id, o.name, o.path
 ORDER BY o.path
