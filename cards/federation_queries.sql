-- name: grants_by_benefit
-- Grants approved this year by benefit ($1 first day of the year, $2 first day of the next): applications,
-- members and amounts approved and paid.
SELECT b.code, b.name_zh, b.name_en, count(*) AS applications, count(DISTINCT a.member_id) AS members,
       sum(a.approved_minor)::bigint AS approved_minor,
       coalesce(sum(a.approved_minor) FILTER (WHERE a.status = 'paid'), 0)::bigint AS paid_minor
  FROM applications a JOIN benefits b ON b.id = a.benefit_id
 WHERE a.approved_minor IS NOT NULL AND a.applied_on >= $1 AND a.applied_on < $2
 GROUP BY b.id, b.code, b.name_zh, b.name_en, b.sort_order
 ORDER BY approved_minor DESC, b.sort_order

-- name: grant_members
-- Members with a grant approved this year, however many grants each had.
SELECT count(DISTINCT member_id) FROM applications
 WHERE approved_minor IS NOT NULL AND applied_on >= $1 AND applied_on < $2

-- name: grants_by_month
-- Grants approved this year by the month they were applied for: amount and count.
SELECT date_trunc('month', applied_on)::date AS month, sum(approved_minor)::bigint AS approved_minor,
       count(*) AS applications
  FROM applications
 WHERE approved_minor IS NOT NULL AND applied_on >= $1 AND applied_on < $2
 GROUP BY 1 ORDER BY 1

-- name: grants_waiting
-- Applications waiting for a decision, by the org that reviews them.
SELECT o.name, o.kind, count(*) AS applications, min(a.submitted_at) AS oldest_at
  FROM applications a JOIN orgs o ON o.id = a.org_id
 WHERE a.status IN ('submitted', 'under_review')
 GROUP BY o.id, o.name, o.kind ORDER BY applications DESC, o.name

-- name: health_checks_by_town
-- This year's health checks ($1 the year): places, done (attended), booked ahead and held, by town.
SELECT o.name AS town_name, q.places,
       count(*) FILTER (WHERE k.status = 'attended') AS attended,
       count(*) FILTER (WHERE k.status IN ('booked', 'held')) AS booked
  FROM health_check_town_quotas q
  JOIN orgs o ON o.id = q.town_id
  LEFT JOIN health_check_bookings k ON k.benefit_id = q.benefit_id AND k.year = q.year AND k.town_id = q.town_id
 WHERE q.year = $1
 GROUP BY o.id, o.name, q.places ORDER BY attended DESC, o.name

-- name: health_checks_total
-- This year's quota across the district and what became of its bookings.
SELECT coalesce(sum(y.places), 0)::bigint AS places,
       (SELECT count(*) FROM health_check_bookings k WHERE k.year = $1 AND k.status = 'attended') AS attended,
       (SELECT count(*) FROM health_check_bookings k WHERE k.year = $1 AND k.status IN ('booked', 'held')) AS booked,
       (SELECT count(*) FROM health_check_bookings k WHERE k.year = $1 AND k.status = 'no_show') AS no_show
  FROM health_check_years y WHERE y.year = $1

-- name: loan_fund
-- The loan subsidy fund, what approved subsidies drew from it, and the loans behind them.
SELECT f.total_minor, f.drawn_minor, f.currency,
       count(a.id) FILTER (WHERE a.status = 'approved') AS approved,
       count(a.id) FILTER (WHERE a.status = 'submitted') AS waiting,
       coalesce(sum(a.principal_minor) FILTER (WHERE a.status = 'approved'), 0)::bigint AS principal_minor
  FROM loan_funds f LEFT JOIN loan_applications a ON a.benefit_id = f.benefit_id
 GROUP BY f.benefit_id, f.total_minor, f.drawn_minor, f.currency

-- name: centre_bookings
-- Room bookings this year by service centre ($1, $2 the year's bounds as timestamps): bookings and hours.
SELECT c.name_zh, c.name_en, count(b.id) AS bookings,
       coalesce(sum(extract(epoch FROM upper(b.during) - lower(b.during)) / 3600), 0)::bigint AS hours
  FROM service_centres c
  JOIN service_rooms r ON r.centre_id = c.id
  LEFT JOIN room_bookings b ON b.room_id = r.id AND b.status = 'booked'
                           AND lower(b.during) >= $1 AND lower(b.during) < $2
 GROUP BY c.id, c.name_zh, c.name_en ORDER BY bookings DESC, c.id
