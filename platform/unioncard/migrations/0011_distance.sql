-- Two things the member pages' queries wrote twice: the great-circle distance (the merchant directory, the
-- service centres) and a merchant's offer in force on a day (the directory's page and its counts).

-- Metres between two points given in degrees: the haversine on the IUGG mean radius (2 × 6371008.8 m); NULL
-- when any input is NULL. Its argument is clamped to [0, 1], which rounding (or a wild place) can push out of.
-- The NULL test is explicit, not STRICT: least() and greatest() skip NULLs, and a STRICT body that uses them
-- would not be inlined into the calling query.
CREATE FUNCTION distance_m(
    lat1 double precision, lon1 double precision, lat2 double precision, lon2 double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN lat1 IS NULL OR lon1 IS NULL OR lat2 IS NULL OR lon2 IS NULL THEN NULL
            ELSE 12742017.6 * asin(least(1.0, sqrt(greatest(0.0,
                     power(sin(radians(lat2 - lat1) / 2), 2)
                     + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lon2 - lon1) / 2), 2)))))
       END;

-- A merchant's contract version in force on a local day, or no row: its latest version that starts on or
-- before the day, if that one has not ended. The same version till_offer_at picks, with till_price_of's end
-- check. SQL and SETOF, unlike till_offer_at, so the planner inlines it as a lateral subquery: called once per
-- merchant, the PL/pgSQL function made the directory's queries four to six times slower.
CREATE FUNCTION offer_in_force(p_merchant_id bigint, p_on date)
RETURNS SETOF contract_versions LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT latest.*
      FROM (SELECT cv.* FROM contract_versions cv
             WHERE cv.merchant_id = p_merchant_id AND cv.valid_from <= p_on
             ORDER BY cv.version DESC
             LIMIT 1) latest
     WHERE latest.valid_until IS NULL OR latest.valid_until >= p_on
$$;
