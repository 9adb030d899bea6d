-- The member-facing merchant directory: shops whose offer in force a card may use, nearest first.
-- "In force" on a local day, as the till judges it (till_offer_at, till_price_of): the merchant is active,
-- its latest contract version starts on or before the day and has not ended; the card's tier and org
-- are among the version's eligible ones. Days of week and hours are shown in words, not filtered.

-- name: directory_page
-- Shops whose offer in force on $1 a card of tier $2 in org path $3 may use, nearest to ($4, $5) first
-- (no place: by id); $6 a category or NULL; $7 rows from row $8. `total` counts every row that matched.
SELECT m.id, m.name, m.category, m.address, m.latitude, m.longitude,
       o.kind, o.rate_bps, o.amount_minor, o.currency, o.min_spend_minor, o.discount_minor_max,
       o.per_card_daily_sales_max, o.per_card_daily_discount_minor_max,
       o.per_card_monthly_sales_max, o.per_card_monthly_discount_minor_max,
       o.days_of_week, o.hours_start, o.hours_end, o.union_share_bps, o.valid_until,
       CASE WHEN $4::float8 IS NULL OR $5::float8 IS NULL OR m.latitude IS NULL THEN NULL
            ELSE 12742017.6 * asin(least(1.0, sqrt(
                     power(sin(radians(m.latitude - $4::float8) / 2), 2)
                     + cos(radians($4::float8)) * cos(radians(m.latitude))
                       * power(sin(radians(m.longitude - $5::float8) / 2), 2))))
       END AS distance_m,
       count(*) OVER () AS total
  FROM merchants m
  CROSS JOIN LATERAL (
      SELECT cv.kind, cv.rate_bps, cv.amount_minor, cv.currency, cv.min_spend_minor, cv.discount_minor_max,
             cv.per_card_daily_sales_max, cv.per_card_daily_discount_minor_max,
             cv.per_card_monthly_sales_max, cv.per_card_monthly_discount_minor_max,
             cv.days_of_week, cv.hours_start, cv.hours_end, cv.union_share_bps, cv.valid_until,
             cv.eligible_tiers, cv.eligible_org_ids
        FROM contract_versions cv
       WHERE cv.merchant_id = m.id AND cv.valid_from <= $1::date
       ORDER BY cv.version DESC
       LIMIT 1
  ) o
 WHERE m.status = 'active'
   AND ($6::text IS NULL OR m.category = $6::text)
   AND (o.valid_until IS NULL OR o.valid_until >= $1::date)
   AND (o.eligible_tiers IS NULL OR $2::text = ANY (o.eligible_tiers))
   AND (o.eligible_org_ids IS NULL OR EXISTS (
        SELECT 1 FROM unnest(o.eligible_org_ids) AS e(org_id) WHERE $3::text LIKE '%/' || e.org_id || '/%'))
 ORDER BY distance_m NULLS LAST, m.id
 LIMIT $7 OFFSET $8

-- name: offer_counts
-- Per category, the shops whose offer in force on $1 a card of tier $2 in org path $3 may use.
SELECT m.category, count(*) AS merchants
  FROM merchants m
  CROSS JOIN LATERAL (
      SELECT cv.valid_until, cv.eligible_tiers, cv.eligible_org_ids
        FROM contract_versions cv
       WHERE cv.merchant_id = m.id AND cv.valid_from <= $1::date
       ORDER BY cv.version DESC
       LIMIT 1
  ) o
 WHERE m.status = 'active'
   AND (o.valid_until IS NULL OR o.valid_until >= $1::date)
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
