-- name: import_today
-- Today in the union's time zone, the day cards are issued and members join by default.
SELECT (now() AT TIME ZONE till_local_tz())::date

-- name: import_orgs_lookup
-- The orgs a file names, by code or by id.
SELECT id, code FROM orgs WHERE code = ANY($1::text[]) OR id = ANY($2::bigint[])

-- name: import_members_stage
-- The staging table COPY loads; gone at the end of the transaction whatever happens.
CREATE TEMP TABLE import_members (
    line               integer NOT NULL,
    org_id             bigint,
    name               text,
    national_id_hash   bytea,
    national_id_last4  text,
    phone              text,
    tags               text[],
    joined_on          date,
    card_number        text,
    tier               text,
    status             text,
    expires_on         date
) ON COMMIT DROP

-- name: import_members_clashes
-- Staged lines whose national ID or card number the database already has.
SELECT s.line, 'national_id' AS column_name, 'a member with this national ID exists' AS message
  FROM import_members s JOIN members m ON m.national_id_hash = s.national_id_hash
UNION ALL
SELECT s.line, 'card_number', 'a card with this number exists'
  FROM import_members s JOIN cards c ON c.number = s.card_number
ORDER BY line

-- name: import_members_insert
-- Members, their cards and each card's first status, from the staging table, in file order.
WITH staged AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('members', 'id')) AS member_id,
           nextval(pg_get_serial_sequence('cards', 'id')) AS card_id,
           org_id, name, national_id_hash, national_id_last4, phone, tags, joined_on,
           card_number, tier, status, expires_on
      FROM import_members
     ORDER BY line
), new_members AS (
    INSERT INTO members (id, org_id, name, national_id_hash, national_id_last4, phone, tags, joined_on)
    SELECT member_id, org_id, name, national_id_hash, national_id_last4, phone, tags, joined_on
      FROM staged
    RETURNING id
), new_cards AS (
    INSERT INTO cards (id, member_id, number, status, tier, issued_on, expires_on)
    SELECT card_id, member_id, card_number, status, tier, $1, expires_on FROM staged
    RETURNING id, status, status_since
), history AS (
    INSERT INTO card_status_history (card_id, status, valid_from)
    SELECT id, status, status_since FROM new_cards
    RETURNING card_id
)
SELECT (SELECT count(*) FROM new_members) AS members, (SELECT count(*) FROM new_cards) AS cards

-- name: import_members_unstage
-- Drop the staging table now, so a caller's longer transaction can import again.
DROP TABLE import_members
