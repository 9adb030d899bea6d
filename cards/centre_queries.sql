-- Worker service centres: their rooms and bookings. Loaded by cards.centres.

-- name: centre_benefit
-- The catalog's service-centre benefit a member must be eligible for to book (the first active one).
SELECT code FROM benefits WHERE kind = 'service_centre' AND status = 'active' ORDER BY sort_order, id LIMIT 1

-- name: centre_member_place
-- Where a member is, roughly: the middle of the centres in their town (else their own org's subtree), else of
-- its merchants; no row when neither has coordinates.
WITH member_org AS (
    SELECT o.path FROM members m JOIN orgs o ON o.id = m.org_id WHERE m.id = $1
), scope AS (
    SELECT coalesce(
        (SELECT a.path FROM orgs a, member_org x
          WHERE x.path LIKE a.path || '%' AND a.kind = 'town' ORDER BY length(a.path) DESC LIMIT 1),
        (SELECT path FROM member_org)) AS path
), places AS (
    SELECT 1 AS rank, avg(c.latitude) AS latitude, avg(c.longitude) AS longitude
      FROM service_centres c JOIN orgs o ON o.id = c.org_id, scope
     WHERE o.path LIKE scope.path || '%' AND c.latitude IS NOT NULL AND c.status = 'open'
    UNION ALL
    SELECT 2, avg(x.latitude), avg(x.longitude)
      FROM merchants x JOIN orgs o ON o.id = x.org_id, scope
     WHERE o.path LIKE scope.path || '%' AND x.latitude IS NOT NULL
)
SELECT latitude, longitude FROM places WHERE latitude IS NOT NULL ORDER BY rank LIMIT 1

-- name: centres_near
-- The open centres, nearest to ($1 latitude, $2 longitude) first, with the distance in km (NULL without a
-- place); then by id.
SELECT c.id, c.org_id, o.name AS org_name, c.name_zh, c.name_en, c.address_zh, c.address_en, c.latitude,
       c.longitude, c.opens_at, c.closes_at,
       (SELECT count(*) FROM service_rooms r WHERE r.centre_id = c.id AND r.status = 'open') AS rooms,
       distance_m($1::float8, $2::float8, c.latitude, c.longitude) / 1000 AS distance_km
  FROM service_centres c
  JOIN orgs o ON o.id = c.org_id
 WHERE c.status = 'open'
 ORDER BY distance_km NULLS LAST, c.id

-- name: centre
-- One open centre.
SELECT c.id, c.org_id, o.name AS org_name, c.name_zh, c.name_en, c.address_zh, c.address_en, c.latitude,
       c.longitude, c.opens_at, c.closes_at
  FROM service_centres c
  JOIN orgs o ON o.id = c.org_id
 WHERE c.id = $1 AND c.status = 'open'

-- name: centre_rooms
-- A centre's open rooms: training, activity, library, mediation.
SELECT r.id, r.centre_id, r.kind, r.name_zh, r.name_en, r.capacity
  FROM service_rooms r
 WHERE r.centre_id = $1 AND r.status = 'open'
 ORDER BY array_position(ARRAY['training', 'activity', 'library', 'mediation'], r.kind), r.id

-- name: centre_bookings_between
-- The live bookings of a centre's rooms that overlap [$2, $3).
SELECT b.id, b.room_id, b.member_id, lower(b.during) AS starts_at, upper(b.during) AS ends_at
  FROM room_bookings b
  JOIN service_rooms r ON r.id = b.room_id
 WHERE r.centre_id = $1 AND b.status = 'booked' AND b.during && tstzrange($2, $3, '[)')
 ORDER BY b.room_id, lower(b.during)

-- name: centre_room_for_booking
-- A room with its centre's opening hours, if both are open; the share lock makes a room's closing wait for the
-- booking, and a booking made while it closes see it closed.
SELECT r.id, r.centre_id, r.kind, r.capacity, c.opens_at, c.closes_at
  FROM service_rooms r
  JOIN service_centres c ON c.id = r.centre_id
 WHERE r.id = $1 AND r.status = 'open' AND c.status = 'open'
   FOR SHARE OF r

-- name: centre_member_lock
-- Serialises one member's bookings, so the cap on upcoming bookings holds under concurrency.
SELECT id FROM members WHERE id = $1 FOR NO KEY UPDATE

-- name: centre_member_upcoming
-- How many live bookings a member has that have not ended by $2.
SELECT count(*) FROM room_bookings WHERE member_id = $1 AND status = 'booked' AND upper(during) > $2

-- name: centre_booking_by_key
-- The booking a form's idempotency key made before, if any.
SELECT id, room_id, lower(during) AS starts_at, upper(during) AS ends_at, purpose, headcount
  FROM room_bookings
 WHERE member_id = $1 AND idempotency_key = $2

-- name: centre_booking_insert
-- Book a room for [$3, $4); room_bookings_no_overlap refuses a second live booking of the same time.
INSERT INTO room_bookings (room_id, member_id, during, purpose, headcount, created_at, idempotency_key)
VALUES ($1, $2, tstzrange($3, $4, '[)'), $5, $6, $7, $8)
RETURNING id

-- name: centre_booking
-- One booking with its room and centre, as its member sees it.
SELECT b.id, b.member_id, b.room_id, r.kind AS room_kind, r.name_zh AS room_name_zh, r.name_en AS room_name_en,
       c.id AS centre_id, c.name_zh AS centre_name_zh, c.name_en AS centre_name_en,
       lower(b.during) AS starts_at, upper(b.during) AS ends_at, b.purpose, b.headcount, b.status, b.created_at,
       b.cancelled_at
  FROM room_bookings b
  JOIN service_rooms r ON r.id = b.room_id
  JOIN service_centres c ON c.id = r.centre_id
 WHERE b.id = $1

-- name: centre_member_bookings
-- A member's bookings that end after $2 (upcoming, soonest first), then the $3 most recent past ones.
(SELECT b.id, b.room_id, r.kind AS room_kind, r.name_zh AS room_name_zh, r.name_en AS room_name_en,
        c.id AS centre_id, c.name_zh AS centre_name_zh, c.name_en AS centre_name_en,
        lower(b.during) AS starts_at, upper(b.during) AS ends_at, b.purpose, b.headcount, b.status,
        true AS upcoming
   FROM room_bookings b
   JOIN service_rooms r ON r.id = b.room_id
   JOIN service_centres c ON c.id = r.centre_id
  WHERE b.member_id = $1 AND upper(b.during) > $2
  ORDER BY lower(b.during), b.id)
UNION ALL
(SELECT b.id, b.room_id, r.kind, r.name_zh, r.name_en, c.id, c.name_zh, c.name_en,
        lower(b.during), upper(b.during), b.purpose, b.headcount, b.status, false
   FROM room_bookings b
   JOIN service_rooms r ON r.id = b.room_id
   JOIN service_centres c ON c.id = r.centre_id
  WHERE b.member_id = $1 AND upper(b.during) <= $2
  ORDER BY lower(b.during) DESC, b.id DESC
  LIMIT $3)

-- name: centre_booking_cancel
-- Cancel a member's live booking that has not started by $3; no row otherwise.
UPDATE room_bookings SET status = 'cancelled', cancelled_at = $3
 WHERE id = $1 AND member_id = $2 AND status = 'booked' AND lower(during) > $3
RETURNING id

-- name: centre_create
-- A service centre (tests, the demo, an admin).
INSERT INTO service_centres (org_id, name_zh, name_en, address_zh, address_en, latitude, longitude, opens_at,
                             closes_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id

-- name: centre_room_create
-- A room of a centre.
INSERT INTO service_rooms (centre_id, kind, name_zh, name_en, capacity) VALUES ($1, $2, $3, $4, $5)
RETURNING id

-- name: centre_lock
-- An open centre, locked while a room is added to it.
SELECT id FROM service_centres WHERE id = $1 AND status = 'open' FOR NO KEY UPDATE

-- name: centre_admin
-- A centre, open or closed, as the admin API answers.
SELECT c.id, c.org_id, o.name AS org_name, c.name_zh, c.name_en, c.address_zh, c.address_en, c.latitude,
       c.longitude, c.opens_at, c.closes_at, c.status, c.created_at
  FROM service_centres c
  JOIN orgs o ON o.id = c.org_id
 WHERE c.id = $1

-- name: centre_rooms_admin
-- All of a centre's rooms, open or closed.
SELECT id, centre_id, kind, name_zh, name_en, capacity, status, created_at
  FROM service_rooms
 WHERE centre_id = $1
 ORDER BY array_position(ARRAY['training', 'activity', 'library', 'mediation'], kind), id

-- name: centre_room_admin
-- One room, open or closed.
SELECT id, centre_id, kind, name_zh, name_en, capacity, status, created_at FROM service_rooms WHERE id = $1

-- name: centre_room_lock
-- A room locked for closing: waits for the bookings being made (they hold it FOR SHARE).
SELECT id, status FROM service_rooms WHERE id = $1 FOR UPDATE

-- name: centre_room_upcoming
-- How many live bookings of a room have not started by $2.
SELECT count(*) FROM room_bookings WHERE room_id = $1 AND status = 'booked' AND lower(during) > $2

-- name: centre_room_cancel_upcoming
-- Cancel a room's live bookings that have not started by $2 (the room closes).
UPDATE room_bookings SET status = 'cancelled', cancelled_at = $2
 WHERE room_id = $1 AND status = 'booked' AND lower(during) > $2
RETURNING id

-- name: centre_room_close
-- A room no one can book any more.
UPDATE service_rooms SET status = 'closed' WHERE id = $1
