-- name: import_orgs_by_code
-- The orgs a merchants file names by code.
SELECT id, code FROM orgs WHERE code = ANY($1::text[])

-- name: import_merchants_stage
-- The staging table COPY loads; gone at the end of the transaction whatever happens.
CREATE TEMP TABLE import_merchants (
    line           integer NOT NULL,
    name           text,
    category       text,
    address        text,
    latitude       double precision,
    longitude      double precision,
    org_id         bigint,
    payee_name     text,
    payee_account  text,
    payee_bank     text
) ON COMMIT DROP

-- name: import_merchants_clashes
-- Staged lines naming a merchant the database already has at the same address.
SELECT s.line, 'name' AS column_name, 'a merchant with this name and address exists' AS message
  FROM import_merchants s
 WHERE s.address <> ''
   AND EXISTS (SELECT 1 FROM merchants m WHERE m.name = s.name AND m.address = s.address)
 ORDER BY s.line

-- name: import_merchants_insert
-- Merchants from the staging table, in file order.
WITH new_merchants AS (
    INSERT INTO merchants (name, category, address, latitude, longitude, org_id,
                           payee_name, payee_account, payee_bank)
    SELECT name, category, address, latitude, longitude, org_id,
           payee_name, payee_account, payee_bank
      FROM import_merchants
     ORDER BY line
    RETURNING id
)
SELECT count(*) AS merchants FROM new_merchants

-- name: import_merchants_unstage
-- Drop the staging table now, so a caller's longer transaction can import again.
DROP TABLE import_merchants
