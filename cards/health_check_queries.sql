-- Health checks: the year's places, clinics, slots and bookings. A live booking is held (while its hold
-- lasts), booked or attended; every count below says so the same way.

-- name: hc_benefit
-- A health-check benefit by code, with its yearly quota; none: no row.
SELECT id, code, kind, name_zh, name_en, yearly_quota FROM benefits WHERE code = $1 AND kind = 'health_check'

-- name: hc_open_year
-- The year's row, created from the benefit's yearly_quota the first time the year is used.
INSERT INTO health_check_years (benefit_id, year, places)
SELECT id, $2, yearly_quota FROM benefits WHERE id = $1
ON CONFLICT ON CONSTRAINT health_check_years_pk DO NOTHING

-- name: hc_lock_year
-- Lock one: the year's row, taken first by every hold and confirmation of that benefit and year.
SELECT places FROM health_check_years WHERE benefit_id = $1 AND year = $2 FOR NO KEY UPDATE

-- name: hc_lock_town
-- Lock two: the town's share of the year, when the town has one; none: no row.
SELECT places FROM health_check_town_quotas WHERE benefit_id = $1 AND year = $2 AND town_id = $3 FOR NO KEY UPDATE

-- name: hc_lock_slot
-- Lock three: the slot.
SELECT capacity FROM health_check_slots WHERE id = $1 FOR NO KEY UPDATE

-- name: hc_sweep_year
-- Marks the year's holds that ran out by $3 expired (under the year's lock, so it waits for none but
-- single-row updates); the count in the status.
UPDATE health_check_bookings SET status = 'expired', closed_at = held_until
 WHERE benefit_id = $1 AND year = $2 AND status = 'held' AND held_until <= $3

-- name: hc_sweep
-- Marks every hold that ran out by $1 expired, skipping rows another transaction is changing.
UPDATE health_check_bookings SET status = 'expired', closed_at = held_until
 WHERE id IN (SELECT id FROM health_check_bookings WHERE status = 'held' AND held_until <= $1
              FOR UPDATE SKIP LOCKED)

-- name: hc_live_counts
-- Live bookings of a benefit's year at $5: all, of town $3, of slot $4.
SELECT count(*) AS year_live,
       count(*) FILTER (WHERE town_id = $3) AS town_live,
       count(*) FILTER (WHERE slot_id = $4) AS slot_live
  FROM health_check_bookings
 WHERE benefit_id = $1 AND year = $2 AND status IN ('held', 'booked', 'attended')
   AND (status <> 'held' OR held_until > $5)

-- name: hc_slot
-- A slot with its clinic and benefit; none: no row.
SELECT s.id, s.clinic_id, s.benefit_id, s.year, s.starts_at, s.ends_at, s.capacity,
       c.name AS clinic_name, c.status AS clinic_status, o.path AS clinic_org_path, b.code AS benefit_code
  FROM health_check_slots s
  JOIN health_check_clinics c ON c.id = s.clinic_id
  JOIN orgs o ON o.id = c.org_id
  JOIN benefits b ON b.id = s.benefit_id
 WHERE s.id = $1

-- name: hc_member_town
-- The member's town (their nearest ancestor-or-self of kind town); none: no row.
SELECT a.id, a.name, a.path
  FROM members m
  JOIN orgs o ON o.id = m.org_id
  JOIN orgs a ON o.path LIKE a.path || '%' AND a.kind = 'town'
 WHERE m.id = $1
 ORDER BY length(a.path) DESC
 LIMIT 1

-- name: hc_live_booking_of
-- The member's live booking of a benefit's year at $4; none: no row.
SELECT id, status FROM health_check_bookings
 WHERE member_id = $1 AND benefit_id = $2 AND year = $3 AND status IN ('held', 'booked', 'attended')
   AND (status <> 'held' OR held_until > $4)

-- name: hc_insert_hold
-- A new hold of a slot until $7.
INSERT INTO health_check_bookings (member_id, benefit_id, year, slot_id, town_id, status, held_at, held_until)
VALUES ($1, $2, $3, $4, $5, 'held', $6, $7)
RETURNING id

-- name: hc_booking
-- One booking with its slot, clinic and member, as the member and the staff see it; none: no row.
SELECT k.id, k.member_id, k.benefit_id, k.year, k.slot_id, k.town_id, k.status, k.held_at, k.held_until,
       k.booked_at, k.closed_at, k.marked_by,
       s.starts_at, s.ends_at, s.clinic_id, c.name AS clinic_name, c.address AS clinic_address,
       o.path AS clinic_org_path, b.code AS benefit_code, b.name_zh AS benefit_name_zh,
       b.name_en AS benefit_name_en, m.name AS member_name
  FROM health_check_bookings k
  JOIN health_check_slots s ON s.id = k.slot_id
  JOIN health_check_clinics c ON c.id = s.clinic_id
  JOIN orgs o ON o.id = c.org_id
  JOIN benefits b ON b.id = k.benefit_id
  JOIN members m ON m.id = k.member_id
 WHERE k.id = $1

-- name: hc_lock_booking
-- The booking's row, locked, with its slot's start; none: no row.
SELECT k.id, k.member_id, k.benefit_id, k.year, k.status, k.held_until, s.starts_at
  FROM health_check_bookings k JOIN health_check_slots s ON s.id = k.slot_id
 WHERE k.id = $1
   FOR UPDATE OF k

-- name: hc_set_status
-- Moves a booking on: $2 the new status at $3, by staff $4 (attendance) or nobody.
UPDATE health_check_bookings
   SET status = $2,
       booked_at = CASE WHEN $2 = 'booked' THEN $3 ELSE booked_at END,
       closed_at = CASE WHEN $2 IN ('attended', 'no_show', 'cancelled', 'expired') THEN $3 END,
       marked_by = coalesce($4, marked_by)
 WHERE id = $1

-- name: hc_member_bookings
-- A member's bookings of a year, the newest first.
SELECT k.id, k.status, k.held_until, k.booked_at, k.closed_at, s.starts_at, s.ends_at, k.slot_id,
       c.id AS clinic_id, c.name AS clinic_name, c.address AS clinic_address, b.code AS benefit_code
  FROM health_check_bookings k
  JOIN health_check_slots s ON s.id = k.slot_id
  JOIN health_check_clinics c ON c.id = s.clinic_id
  JOIN benefits b ON b.id = k.benefit_id
 WHERE k.member_id = $1 AND k.benefit_id = $2 AND k.year = $3
 ORDER BY k.held_at DESC, k.id DESC

-- name: hc_places
-- Places of a benefit's year at $4 (the benefit's yearly_quota until the year opens) and, when town $3
-- has a share, the town's, each with its live count.
SELECT CASE WHEN y.benefit_id IS NULL THEN b.yearly_quota ELSE y.places END AS year_places,
       (SELECT count(*) FROM health_check_bookings k
         WHERE k.benefit_id = $1 AND k.year = $2 AND k.status IN ('held', 'booked', 'attended')
           AND (k.status <> 'held' OR k.held_until > $4)) AS year_live,
       t.places AS town_places,
       (SELECT count(*) FROM health_check_bookings k
         WHERE k.benefit_id = $1 AND k.year = $2 AND k.town_id = $3 AND k.status IN ('held', 'booked', 'attended')
           AND (k.status <> 'held' OR k.held_until > $4)) AS town_live
  FROM benefits b
  LEFT JOIN health_check_years y ON y.benefit_id = b.id AND y.year = $2
  LEFT JOIN health_check_town_quotas t ON t.benefit_id = b.id AND t.year = $2 AND t.town_id = $3
 WHERE b.id = $1

-- name: hc_open_slots
-- The next $4 slots with a free place of each active clinic, from $2 to $3 within year $5, with the clinic.
SELECT x.id, x.clinic_id, x.starts_at, x.ends_at, x.capacity, x.free, c.name AS clinic_name,
       c.address AS clinic_address, c.latitude, c.longitude, c.org_id AS clinic_org_id, o.path AS clinic_org_path
  FROM (
      SELECT s.id, s.clinic_id, s.starts_at, s.ends_at, s.capacity, s.capacity - l.live AS free,
             row_number() OVER (PARTITION BY s.clinic_id ORDER BY s.starts_at, s.id) AS rank
        FROM health_check_slots s
        CROSS JOIN LATERAL (
            SELECT count(*) AS live FROM health_check_bookings k
             WHERE k.slot_id = s.id AND k.status IN ('held', 'booked', 'attended')
               AND (k.status <> 'held' OR k.held_until > $2)
        ) l
       WHERE s.benefit_id = $1 AND s.year = $5 AND s.starts_at > $2 AND s.starts_at < $3 AND s.capacity > l.live
  ) x
  JOIN health_check_clinics c ON c.id = x.clinic_id AND c.status = 'active'
  JOIN orgs o ON o.id = c.org_id
 WHERE x.rank <= $4
 ORDER BY c.name, c.id, x.starts_at

-- name: hc_year_figures
-- A benefit's year at $3: its places, and the bookings by status (running holds apart from run-out ones) of
-- the members whose org lies under path $4 ('' all); none: the year has not opened.
SELECT y.places,
       count(k.id) FILTER (WHERE k.status = 'held' AND k.held_until > $3) AS held,
       count(k.id) FILTER (WHERE k.status = 'booked') AS booked,
       count(k.id) FILTER (WHERE k.status = 'attended') AS attended,
       count(k.id) FILTER (WHERE k.status = 'no_show') AS no_show,
       count(k.id) FILTER (WHERE k.status = 'cancelled') AS cancelled,
       count(k.id) FILTER (WHERE k.status = 'expired' OR (k.status = 'held' AND k.held_until <= $3)) AS expired
  FROM health_check_years y
  LEFT JOIN (health_check_bookings k
             JOIN members m ON m.id = k.member_id
             JOIN orgs o ON o.id = m.org_id AND o.path LIKE $4 || '%')
         ON k.benefit_id = y.benefit_id AND k.year = y.year
 WHERE y.benefit_id = $1 AND y.year = $2
 GROUP BY y.places

-- name: hc_town_figures
-- The shares of a benefit's year of the towns under org path $4 ('' all), each with the live bookings at $3
-- and the attended ones counted against it.
SELECT t.town_id, o.name AS town_name, o.path AS town_path, t.places,
       count(k.id) FILTER (WHERE k.status IN ('booked', 'attended') OR (k.status = 'held' AND k.held_until > $3))
           AS live,
       count(k.id) FILTER (WHERE k.status = 'attended') AS attended
  FROM health_check_town_quotas t
  JOIN orgs o ON o.id = t.town_id
  LEFT JOIN health_check_bookings k ON k.benefit_id = t.benefit_id AND k.year = t.year AND k.town_id = t.town_id
 WHERE t.benefit_id = $1 AND t.year = $2 AND o.path LIKE $4 || '%'
 GROUP BY t.town_id, o.name, o.path, t.places
 ORDER BY o.path

-- name: hc_clinics_in
-- Clinics whose org is in the subtree of path $1 ('' all), with their org's name.
SELECT c.id, c.name, c.address, c.latitude, c.longitude, c.status, c.org_id, o.name AS org_name, o.path AS org_path
  FROM health_check_clinics c JOIN orgs o ON o.id = c.org_id
 WHERE o.path LIKE $1 || '%'
 ORDER BY o.path, c.name, c.id

-- name: hc_clinic
-- One clinic with its org's path; none: no row.
SELECT c.id, c.name, c.address, c.latitude, c.longitude, c.status, c.org_id, o.name AS org_name, o.path AS org_path
  FROM health_check_clinics c JOIN orgs o ON o.id = c.org_id
 WHERE c.id = $1

-- name: hc_clinic_day
-- A clinic's slots of a benefit on local day $3 and their bookings that took or take a place at $4 (not
-- run-out holds, not cancellations), for the staff marking who came; an empty slot has one row of NULLs.
SELECT s.id AS slot_id, s.starts_at, s.ends_at, s.capacity, k.id AS booking_id, k.status, k.held_until,
       m.name AS member_name, m.national_id_last4,
       (SELECT right(c.number, 4) FROM cards c WHERE c.member_id = m.id
         ORDER BY (c.status = 'active') DESC, c.id DESC LIMIT 1) AS card_last4
  FROM health_check_slots s
  LEFT JOIN health_check_bookings k ON k.slot_id = s.id AND k.status IN ('held', 'booked', 'attended', 'no_show')
        AND (k.status <> 'held' OR k.held_until > $4)
  LEFT JOIN members m ON m.id = k.member_id
 WHERE s.clinic_id = $1 AND s.benefit_id = $2
   AND s.starts_at >= $3::date::timestamp AT TIME ZONE till_local_tz()
   AND s.starts_at < ($3::date + 1)::timestamp AT TIME ZONE till_local_tz()
 ORDER BY s.starts_at, s.id, m.name, k.id

-- name: hc_insert_clinic
-- A new clinic; its id.
INSERT INTO health_check_clinics (name, address, latitude, longitude, org_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING id

-- name: hc_set_year_places
-- Sets a year's places (creating the year's row).
INSERT INTO health_check_years (benefit_id, year, places) VALUES ($1, $2, $3)
ON CONFLICT ON CONSTRAINT health_check_years_pk DO UPDATE SET places = EXCLUDED.places

-- name: hc_set_town_places
-- Sets a town's share of a year's places.
INSERT INTO health_check_town_quotas (benefit_id, year, town_id, places) VALUES ($1, $2, $3, $4)
ON CONFLICT ON CONSTRAINT health_check_town_quotas_pk DO UPDATE SET places = EXCLUDED.places

-- name: hc_org_kind
-- An org's kind; none: no row.
SELECT kind FROM orgs WHERE id = $1

-- name: hc_live_by_town
-- The live bookings of a benefit's year at $3 by the town they count against (NULL: none).
SELECT town_id, count(*) AS live
  FROM health_check_bookings
 WHERE benefit_id = $1 AND year = $2 AND status IN ('held', 'booked', 'attended')
   AND (status <> 'held' OR held_until > $3)
 GROUP BY town_id

-- name: hc_town_shares
-- The towns' shares of a benefit's year.
SELECT town_id, places FROM health_check_town_quotas WHERE benefit_id = $1 AND year = $2

-- name: hc_insert_slots
-- Slots of clinic $1 for benefit $2 on each local day from $3 to $4 whose ISO weekday is in $5, one starting
-- at each local hour of $6, $7 minutes long, with $8 places; a slot already there at that start is kept.
INSERT INTO health_check_slots (clinic_id, benefit_id, year, starts_at, ends_at, capacity)
SELECT $1, $2, extract(year FROM d)::integer, (d + make_interval(hours => h)) AT TIME ZONE till_local_tz(),
       (d + make_interval(hours => h, mins => $7)) AT TIME ZONE till_local_tz(), $8
  FROM generate_series($3::date::timestamp, $4::date::timestamp, interval '1 day') AS d
 CROSS JOIN unnest($6::integer[]) AS h
 WHERE extract(isodow FROM d)::integer = ANY ($5::integer[])
 ORDER BY d, h
ON CONFLICT ON CONSTRAINT health_check_slots_clinic_start_key DO NOTHING
RETURNING id
