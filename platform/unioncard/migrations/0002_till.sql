-- The till: redemptions, refunds, per-card counters, budgets, idempotency and the ledger.

CREATE TABLE redemptions (
    id                    uuid CONSTRAINT redemptions_pk PRIMARY KEY,
    merchant_id           bigint NOT NULL CONSTRAINT redemptions_merchant_fk REFERENCES merchants (id),
    terminal_id           bigint NOT NULL CONSTRAINT redemptions_terminal_fk REFERENCES terminals (id),
    card_id               bigint NOT NULL CONSTRAINT redemptions_card_fk REFERENCES cards (id),
    contract_version_id   bigint NOT NULL CONSTRAINT redemptions_contract_fk
                          REFERENCES contract_versions (id),
    amount_minor          bigint NOT NULL CHECK (amount_minor > 0),
    discount_minor        bigint NOT NULL CHECK (discount_minor >= 0),
    union_funded_minor    bigint NOT NULL CHECK (union_funded_minor >= 0),
    merchant_funded_minor bigint NOT NULL CHECK (merchant_funded_minor >= 0),
    currency              text NOT NULL,
    receipt_ref           text NOT NULL DEFAULT '',
    occurred_at           timestamptz NOT NULL,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemptions_shares_check
        CHECK (union_funded_minor + merchant_funded_minor = discount_minor),
    CONSTRAINT redemptions_discount_check CHECK (discount_minor <= amount_minor)
);
CREATE INDEX redemptions_merchant_occurred_idx ON redemptions (merchant_id, occurred_at);
CREATE INDEX redemptions_card_idx ON redemptions (card_id, occurred_at);

CREATE TABLE refunds (
    id                    uuid CONSTRAINT refunds_pk PRIMARY KEY,
    redemption_id         uuid NOT NULL CONSTRAINT refunds_redemption_fk REFERENCES redemptions (id),
    merchant_id           bigint NOT NULL CONSTRAINT refunds_merchant_fk REFERENCES merchants (id),
    terminal_id           bigint NOT NULL CONSTRAINT refunds_terminal_fk REFERENCES terminals (id),
    amount_minor          bigint NOT NULL CHECK (amount_minor > 0),
    discount_minor        bigint NOT NULL CHECK (discount_minor >= 0),
    union_funded_minor    bigint NOT NULL CHECK (union_funded_minor >= 0),
    merchant_funded_minor bigint NOT NULL CHECK (merchant_funded_minor >= 0),
    currency              text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refunds_shares_check
        CHECK (union_funded_minor + merchant_funded_minor = discount_minor)
);
CREATE INDEX refunds_redemption_idx ON refunds (redemption_id);
CREATE INDEX refunds_merchant_created_idx ON refunds (merchant_id, created_at);

-- Per card and merchant, what the card used on a local day and in a local month.
CREATE TABLE card_usage_days (
    card_id        bigint NOT NULL,
    merchant_id    bigint NOT NULL,
    day            date NOT NULL,
    sales_count    integer NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0,
    CONSTRAINT card_usage_days_pk PRIMARY KEY (card_id, merchant_id, day)
);
CREATE TABLE card_usage_months (
    card_id        bigint NOT NULL,
    merchant_id    bigint NOT NULL,
    month          date NOT NULL,
    sales_count    integer NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0,
    CONSTRAINT card_usage_months_pk PRIMARY KEY (card_id, merchant_id, month)
);
-- The union-funded amount used of a merchant's monthly budget.
CREATE TABLE merchant_budget_months (
    merchant_id   bigint NOT NULL,
    month         date NOT NULL,
    used_minor    bigint NOT NULL DEFAULT 0 CONSTRAINT merchant_budget_months_used_check
                  CHECK (used_minor >= 0),
    CONSTRAINT merchant_budget_months_pk PRIMARY KEY (merchant_id, month)
);

CREATE TABLE idempotency_keys (
    merchant_id   bigint NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    resource_kind text NOT NULL CHECK (resource_kind IN ('redemption', 'refund')),
    resource_id   uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pk PRIMARY KEY (merchant_id, key)
);

-- Double entry: debits positive, credits negative; each transaction sums to zero.
CREATE TABLE ledger_transactions (
    id             bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ledger_transactions_pk PRIMARY KEY,
    kind           text NOT NULL,
    merchant_id    bigint,
    redemption_id  uuid,
    refund_id      uuid,
    memo           text NOT NULL DEFAULT '',
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transactions_redemption_idx ON ledger_transactions (redemption_id);

CREATE TABLE ledger_postings (
    id              bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ledger_postings_pk PRIMARY KEY,
    transaction_id  bigint NOT NULL CONSTRAINT ledger_postings_transaction_fk
                    REFERENCES ledger_transactions (id),
    account         text NOT NULL,
    amount_minor    bigint NOT NULL CONSTRAINT ledger_postings_nonzero_check CHECK (amount_minor <> 0),
    currency        text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_postings_transaction_idx ON ledger_postings (transaction_id);
CREATE INDEX ledger_postings_account_idx ON ledger_postings (account, recorded_at);

CREATE TRIGGER redemptions_append_only BEFORE UPDATE OR DELETE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER refunds_append_only BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER redemptions_no_truncate BEFORE TRUNCATE ON redemptions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER refunds_no_truncate BEFORE TRUNCATE ON refunds
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Every statement that writes postings must leave each transaction it touches balanced per
-- currency, with at least two legs. Checked once per statement over the rows it wrote (a
-- per-row deferred trigger cost two extra queries per sale); ledger_post writes a
-- transaction and its legs in one statement, and nothing may write them piecemeal.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT n.transaction_id, n.currency, sum(n.amount_minor) AS total, count(*) AS legs INTO unbalanced
      FROM new_postings n
     GROUP BY n.transaction_id, n.currency
    HAVING sum(n.amount_minor) <> 0 OR count(*) < 2
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: sum %, % legs',
            unbalanced.transaction_id, unbalanced.currency, unbalanced.total, unbalanced.legs
            USING ERRCODE = 'UC901';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_balanced();

-- One posting pair: debit one account, credit another.
CREATE FUNCTION ledger_post(
    p_kind text, p_merchant_id bigint, p_redemption_id uuid, p_refund_id uuid,
    p_occurred_at timestamptz, p_debit text, p_credit text, p_amount_minor bigint, p_currency text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    tx_id bigint;
BEGIN
    IF p_amount_minor <= 0 THEN
        RETURN NULL;  -- nothing the union owes: no transaction
    END IF;
    -- One statement writes the transaction and both legs: fewer executor start-ups per sale.
    WITH tx AS (
        INSERT INTO ledger_transactions (kind, merchant_id, redemption_id, refund_id, occurred_at)
        VALUES (p_kind, p_merchant_id, p_redemption_id, p_refund_id, p_occurred_at)
        RETURNING id
    ), legs AS (
        INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency)
        SELECT tx.id, leg.account, leg.amount_minor, p_currency
          FROM tx, (VALUES (p_debit, p_amount_minor), (p_credit, -p_amount_minor)) AS leg(account, amount_minor)
    )
    SELECT tx.id INTO tx_id FROM tx;
    RETURN tx_id;
END $$;

-- A balance of any account at any moment, recomputed from the postings.
CREATE FUNCTION ledger_balance(p_account text, p_at timestamptz DEFAULT 'infinity')
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(amount_minor), 0)::bigint
      FROM ledger_postings
     WHERE account = p_account AND recorded_at <= p_at
$$;

CREATE VIEW ledger_unbalanced AS
    SELECT transaction_id, currency, sum(amount_minor) AS total, count(*) AS legs
      FROM ledger_postings
     GROUP BY transaction_id, currency
    HAVING sum(amount_minor) <> 0 OR count(*) < 2;

---------------------------------------------------------------------- till decisions

CREATE FUNCTION till_fail(p_code text, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_code USING ERRCODE = 'UC001', DETAIL = p_detail::text;
END $$;

CREATE FUNCTION till_local_tz() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('unioncard.timezone', true), ''), 'Asia/Shanghai')
$$;

-- x / y rounded half-up, for non-negative integers.
CREATE FUNCTION round_half_up_div(x bigint, y bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT (2 * x + y) / (2 * y) $$;

-- The terminal and its merchant, both active, or an error.
CREATE FUNCTION till_terminal(p_terminal_id bigint) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t_status text; m_status text; m_id bigint;
BEGIN
    SELECT t.status, m.status, m.id INTO t_status, m_status, m_id
      FROM terminals t JOIN merchants m ON m.id = t.merchant_id
     WHERE t.id = p_terminal_id;
    IF NOT FOUND OR t_status = 'revoked' THEN PERFORM till_fail('unauthorized'); END IF;
    IF t_status <> 'active' THEN PERFORM till_fail('terminal_suspended'); END IF;
    IF m_status <> 'active' THEN PERFORM till_fail('merchant_suspended'); END IF;
    RETURN m_id;
END $$;

-- The card presented, as it stood at p_at: id, tier, org path, masked number and name.
CREATE TYPE till_card AS (
    id bigint, tier text, org_path text, masked_card text, masked_member text
);
CREATE FUNCTION till_card_at(p_card_number text, p_card_id bigint, p_at timestamptz)
RETURNS till_card LANGUAGE plpgsql STABLE AS $$
DECLARE
    c record; status_then text; result till_card;
BEGIN
    SELECT cards.id, cards.status, cards.status_since, cards.tier, cards.expires_on,
           cards.number, members.name, orgs.path
      INTO c
      FROM cards JOIN members ON members.id = cards.member_id
                 JOIN orgs ON orgs.id = members.org_id
     WHERE cards.number = p_card_number;
    IF p_card_number IS NULL THEN
        SELECT cards.id, cards.status, cards.status_since, cards.tier, cards.expires_on,
               cards.number, members.name, orgs.path
          INTO c
          FROM cards JOIN members ON members.id = cards.member_id
                     JOIN orgs ON orgs.id = members.org_id
         WHERE cards.id = p_card_id;
    END IF;
    IF c.id IS NULL THEN PERFORM till_fail('card_not_found'); END IF;
    status_then := c.status;
    IF p_at < c.status_since THEN
        SELECT h.status INTO status_then FROM card_status_history h
         WHERE h.card_id = c.id AND h.valid_from <= p_at
         ORDER BY h.valid_from DESC LIMIT 1;
        status_then := coalesce(status_then, 'not_issued');
    END IF;
    IF status_then = 'active' AND c.expires_on < (p_at AT TIME ZONE till_local_tz())::date THEN
        status_then := 'expired';
    END IF;
    IF status_then <> 'active' THEN
        PERFORM till_fail('card_inactive', jsonb_build_object('card_status', status_then));
    END IF;
    result := (c.id, c.tier, c.path,
               left(c.number, 4) || ' **** **** ' || right(c.number, 4),
               left(c.name, 1) || repeat('*', greatest(char_length(c.name) - 1, 1)));
    RETURN result;
END $$;

-- The contract version in force for a merchant at a moment, or NULL. PL/pgSQL, not SQL:
-- a SQL-language function returning a row is re-parsed and re-planned on every call.
CREATE FUNCTION till_offer_at(p_merchant_id bigint, p_at timestamptz)
RETURNS contract_versions LANGUAGE plpgsql STABLE AS $$
DECLARE
    offer contract_versions;
BEGIN
    SELECT cv.* INTO offer FROM contract_versions cv
     WHERE cv.merchant_id = p_merchant_id
       AND cv.valid_from <= (p_at AT TIME ZONE till_local_tz())::date
     ORDER BY cv.version DESC
     LIMIT 1;
    RETURN offer;
END $$;

-- The pure pricing decision, given what the card and merchant have used so far.
CREATE TYPE till_price AS (
    discount_minor bigint, union_funded_minor bigint, merchant_funded_minor bigint,
    reasons text[]
);
CREATE FUNCTION till_price_of(
    o contract_versions, p_card till_card, p_amount_minor bigint, p_at timestamptz,
    day_sales integer, day_discount bigint, month_sales integer, month_discount bigint,
    budget_used bigint
) RETURNS till_price LANGUAGE plpgsql STABLE AS $$
DECLARE
    local_at timestamp := p_at AT TIME ZONE till_local_tz();
    reasons text[] := '{}';
    discount bigint := 0;
    union_part bigint := 0;
BEGIN
    IF o.id IS NULL
       OR (o.valid_until IS NOT NULL AND local_at::date > o.valid_until)
       OR (o.days_of_week IS NOT NULL AND NOT extract(isodow FROM local_at)::smallint = ANY (o.days_of_week))
       OR (o.hours_start IS NOT NULL AND NOT (
             (o.hours_start <= o.hours_end AND local_at::time >= o.hours_start AND local_at::time < o.hours_end)
          OR (o.hours_start > o.hours_end AND (local_at::time >= o.hours_start OR local_at::time < o.hours_end))))
    THEN
        RETURN (0, 0, 0, ARRAY['no_offer_now'])::till_price;
    END IF;
    IF o.eligible_tiers IS NOT NULL AND NOT p_card.tier = ANY (o.eligible_tiers) THEN
        reasons := reasons || 'tier_not_eligible'::text;
    END IF;
    IF o.eligible_org_ids IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM unnest(o.eligible_org_ids) AS e(org_id)
         WHERE p_card.org_path LIKE '%/' || e.org_id || '/%') THEN
        reasons := reasons || 'org_not_eligible'::text;
    END IF;
    IF p_amount_minor < o.min_spend_minor THEN
        reasons := reasons || 'below_minimum_spend'::text;
    END IF;
    IF o.kind = 'percent' THEN
        discount := round_half_up_div(p_amount_minor * o.rate_bps, 10000);
    ELSE
        discount := least(o.amount_minor, p_amount_minor);
    END IF;
    discount := least(discount, coalesce(o.discount_minor_max, discount));
    IF (o.per_card_daily_sales_max IS NOT NULL AND day_sales >= o.per_card_daily_sales_max)
       OR (o.per_card_daily_discount_minor_max IS NOT NULL
           AND day_discount >= o.per_card_daily_discount_minor_max) THEN
        reasons := reasons || 'daily_limit_reached'::text;
    END IF;
    IF (o.per_card_monthly_sales_max IS NOT NULL AND month_sales >= o.per_card_monthly_sales_max)
       OR (o.per_card_monthly_discount_minor_max IS NOT NULL
           AND month_discount >= o.per_card_monthly_discount_minor_max) THEN
        reasons := reasons || 'monthly_limit_reached'::text;
    END IF;
    -- A per-card discount cap trims the last sale to what remains of it.
    discount := least(discount,
        coalesce(o.per_card_daily_discount_minor_max - day_discount, discount),
        coalesce(o.per_card_monthly_discount_minor_max - month_discount, discount));
    discount := greatest(discount, 0);
    union_part := round_half_up_div(discount * o.union_share_bps, 10000);
    IF o.monthly_budget_minor IS NOT NULL AND budget_used + union_part > o.monthly_budget_minor THEN
        reasons := reasons || 'budget_exhausted'::text;
    END IF;
    IF discount = 0 AND cardinality(reasons) = 0 THEN
        reasons := reasons || 'no_discount'::text;
    END IF;
    IF cardinality(reasons) > 0 THEN
        RETURN (0, 0, 0, reasons)::till_price;
    END IF;
    RETURN (discount, union_part, discount - union_part, reasons)::till_price;
END $$;

CREATE FUNCTION till_check_currency(o contract_versions, p_currency text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF o.id IS NOT NULL AND o.currency <> p_currency THEN
        PERFORM till_fail('currency_mismatch', jsonb_build_object('expected', o.currency));
    END IF;
END $$;

-- Quote: the same decision as a sale, with no side effects and no locks.
CREATE FUNCTION till_quote(
    p_terminal_id bigint, p_card_number text, p_card_id bigint,
    p_amount_minor bigint, p_currency text, p_at timestamptz DEFAULT now()
) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    merchant bigint := till_terminal(p_terminal_id);
    card till_card := till_card_at(p_card_number, p_card_id, p_at);
    offer contract_versions := till_offer_at(merchant, p_at);
    local_day date := (p_at AT TIME ZONE till_local_tz())::date;
    d record; m record; budget_used bigint;
    price till_price;
BEGIN
    PERFORM till_check_currency(offer, p_currency);
    SELECT sales_count, discount_minor INTO d FROM card_usage_days
     WHERE card_id = card.id AND merchant_id = merchant AND day = local_day;
    SELECT sales_count, discount_minor INTO m FROM card_usage_months
     WHERE card_id = card.id AND merchant_id = merchant AND month = date_trunc('month', local_day)::date;
    SELECT used_minor INTO budget_used FROM merchant_budget_months
     WHERE merchant_id = merchant AND month = date_trunc('month', local_day)::date;
    price := till_price_of(offer, card, p_amount_minor, p_at,
        coalesce(d.sales_count, 0), coalesce(d.discount_minor, 0),
        coalesce(m.sales_count, 0), coalesce(m.discount_minor, 0), coalesce(budget_used, 0));
    RETURN jsonb_build_object(
        'eligible', cardinality(price.reasons) = 0,
        'amount', p_amount_minor,
        'currency', p_currency,
        'discount', price.discount_minor,
        'union_funded', price.union_funded_minor,
        'merchant_funded', price.merchant_funded_minor,
        'pay_amount', p_amount_minor - price.discount_minor,
        'offer_id', offer.id,
        'card', card.masked_card,
        'member', card.masked_member,
        'reasons', to_jsonb(price.reasons));
END $$;

-- The public JSON of a sale and its refunds.
CREATE FUNCTION till_redemption_json(p_id uuid) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'id', r.id,
        'status', CASE WHEN coalesce(f.refunded, 0) = 0 THEN 'recorded'
                       WHEN f.refunded = r.amount_minor THEN 'refunded'
                       ELSE 'partially_refunded' END,
        'merchant_id', r.merchant_id,
        'terminal_id', r.terminal_id,
        'amount', r.amount_minor,
        'currency', r.currency,
        'discount', r.discount_minor,
        'union_funded', r.union_funded_minor,
        'merchant_funded', r.merchant_funded_minor,
        'pay_amount', r.amount_minor - r.discount_minor,
        'offer_id', r.contract_version_id,
        'card', left(c.number, 4) || ' **** **** ' || right(c.number, 4),
        'member', left(mb.name, 1) || repeat('*', greatest(char_length(mb.name) - 1, 1)),
        'receipt_ref', r.receipt_ref,
        'occurred_at', r.occurred_at,
        'recorded_at', r.recorded_at,
        'refunded_amount', coalesce(f.refunded, 0),
        'remaining_amount', r.amount_minor - coalesce(f.refunded, 0),
        'refunds', coalesce(f.items, '[]'::jsonb))
      FROM redemptions r
      JOIN cards c ON c.id = r.card_id
      JOIN members mb ON mb.id = c.member_id
      LEFT JOIN LATERAL (
          SELECT sum(x.amount_minor)::bigint AS refunded,
                 jsonb_agg(jsonb_build_object(
                     'id', x.id, 'amount', x.amount_minor, 'discount', x.discount_minor,
                     'union_funded', x.union_funded_minor,
                     'merchant_funded', x.merchant_funded_minor, 'created_at', x.created_at)
                     ORDER BY x.created_at, x.id) AS items
            FROM refunds x WHERE x.redemption_id = r.id) f ON true
     WHERE r.id = p_id);
END $$;

-- Claim an idempotency key, or find who holds it. Returns the held resource on a replay.
CREATE FUNCTION till_claim_key(
    p_merchant_id bigint, p_key text, p_request_hash bytea, p_kind text, p_resource_id uuid
) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    held record;
BEGIN
    INSERT INTO idempotency_keys (merchant_id, key, request_hash, resource_kind, resource_id)
    VALUES (p_merchant_id, p_key, p_request_hash, p_kind, p_resource_id)
    ON CONFLICT ON CONSTRAINT idempotency_keys_pk DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT request_hash, resource_kind, resource_id INTO held FROM idempotency_keys
     WHERE merchant_id = p_merchant_id AND key = p_key;
    IF held.request_hash <> p_request_hash OR held.resource_kind <> p_kind THEN
        PERFORM till_fail('idempotency_key_reused');
    END IF;
    RETURN held.resource_id;
END $$;

-- Record a sale: decision, limits, budget, key, redemption and ledger in one transaction.
CREATE FUNCTION till_redeem(
    p_terminal_id bigint, p_card_number text, p_card_id bigint,
    p_amount_minor bigint, p_currency text, p_receipt_ref text, p_occurred_at timestamptz,
    p_idempotency_key text, p_request_hash bytea,
    OUT body jsonb, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    merchant bigint := till_terminal(p_terminal_id);
    new_id uuid := gen_random_uuid();
    held uuid;
    at timestamptz := coalesce(p_occurred_at, now());
    local_day date := (at AT TIME ZONE till_local_tz())::date;
    local_month date := date_trunc('month', local_day)::date;
    card till_card;
    offer contract_versions;
    day_sales integer := 0; day_discount bigint := 0;
    month_sales integer := 0; month_discount bigint := 0;
    price till_price;
BEGIN
    held := till_claim_key(merchant, p_idempotency_key, p_request_hash, 'redemption', new_id);
    IF held IS NOT NULL THEN
        body := till_redemption_json(held); replayed := true;
        RETURN;
    END IF;
    card := till_card_at(p_card_number, p_card_id, at);
    offer := till_offer_at(merchant, at);
    IF offer.id IS NOT NULL AND offer.currency <> p_currency THEN
        PERFORM till_fail('currency_mismatch', jsonb_build_object('expected', offer.currency));
    END IF;
    -- Lock order everywhere: month counter, day counter, then the merchant's budget.
    IF offer.per_card_daily_discount_minor_max IS NOT NULL
       OR offer.per_card_monthly_discount_minor_max IS NOT NULL THEN
        -- A discount cap trims this sale by what the card used: read that under lock first.
        INSERT INTO card_usage_months AS u (card_id, merchant_id, month) VALUES (card.id, merchant, local_month)
        ON CONFLICT ON CONSTRAINT card_usage_months_pk DO UPDATE SET sales_count = u.sales_count
        RETURNING u.sales_count, u.discount_minor INTO month_sales, month_discount;
        INSERT INTO card_usage_days AS u (card_id, merchant_id, day) VALUES (card.id, merchant, local_day)
        ON CONFLICT ON CONSTRAINT card_usage_days_pk DO UPDATE SET sales_count = u.sales_count
        RETURNING u.sales_count, u.discount_minor INTO day_sales, day_discount;
    END IF;
    -- Counts and the budget are judged below, atomically, by the upserts' own conditions.
    price := till_price_of(offer, card, p_amount_minor, at,
        day_sales, day_discount, month_sales, month_discount, 0);
    IF cardinality(price.reasons) > 0 THEN
        PERFORM till_fail('not_eligible', jsonb_build_object('reasons', price.reasons));
    END IF;
    INSERT INTO card_usage_months AS u (card_id, merchant_id, month, sales_count, discount_minor)
    VALUES (card.id, merchant, local_month, 1, price.discount_minor)
    ON CONFLICT ON CONSTRAINT card_usage_months_pk DO UPDATE
       SET sales_count = u.sales_count + 1, discount_minor = u.discount_minor + EXCLUDED.discount_minor
     WHERE offer.per_card_monthly_sales_max IS NULL OR u.sales_count < offer.per_card_monthly_sales_max;
    IF NOT FOUND THEN
        PERFORM till_fail('not_eligible', jsonb_build_object('reasons', ARRAY['monthly_limit_reached']));
    END IF;
    INSERT INTO card_usage_days AS u (card_id, merchant_id, day, sales_count, discount_minor)
    VALUES (card.id, merchant, local_day, 1, price.discount_minor)
    ON CONFLICT ON CONSTRAINT card_usage_days_pk DO UPDATE
       SET sales_count = u.sales_count + 1, discount_minor = u.discount_minor + EXCLUDED.discount_minor
     WHERE offer.per_card_daily_sales_max IS NULL OR u.sales_count < offer.per_card_daily_sales_max;
    IF NOT FOUND THEN
        PERFORM till_fail('not_eligible', jsonb_build_object('reasons', ARRAY['daily_limit_reached']));
    END IF;
    -- Only a budgeted offer touches the merchant's budget row, which every sale of that
    -- merchant would otherwise queue on until commit.
    IF offer.monthly_budget_minor IS NOT NULL THEN
        INSERT INTO merchant_budget_months AS b (merchant_id, month, used_minor)
        VALUES (merchant, local_month, price.union_funded_minor)
        ON CONFLICT ON CONSTRAINT merchant_budget_months_pk DO UPDATE
           SET used_minor = b.used_minor + EXCLUDED.used_minor
         WHERE b.used_minor + EXCLUDED.used_minor <= offer.monthly_budget_minor;
        IF NOT FOUND THEN
            PERFORM till_fail('not_eligible', jsonb_build_object('reasons', ARRAY['budget_exhausted']));
        END IF;
    END IF;
    INSERT INTO redemptions (id, merchant_id, terminal_id, card_id, contract_version_id,
        amount_minor, discount_minor, union_funded_minor, merchant_funded_minor, currency,
        receipt_ref, occurred_at)
    VALUES (new_id, merchant, p_terminal_id, card.id, offer.id, p_amount_minor,
        price.discount_minor, price.union_funded_minor, price.merchant_funded_minor, p_currency,
        coalesce(p_receipt_ref, ''), at);
    PERFORM ledger_post('sale', merchant, new_id, NULL, at, 'union:subsidy_expense',
        'merchant:' || merchant || ':payable', price.union_funded_minor, p_currency);
    body := jsonb_build_object(
        'id', new_id, 'status', 'recorded', 'merchant_id', merchant,
        'terminal_id', p_terminal_id, 'amount', p_amount_minor, 'currency', p_currency,
        'discount', price.discount_minor, 'union_funded', price.union_funded_minor,
        'merchant_funded', price.merchant_funded_minor,
        'pay_amount', p_amount_minor - price.discount_minor, 'offer_id', offer.id,
        'card', card.masked_card, 'member', card.masked_member,
        'receipt_ref', coalesce(p_receipt_ref, ''), 'occurred_at', at, 'recorded_at', now(),
        'refunded_amount', 0, 'remaining_amount', p_amount_minor, 'refunds', '[]'::jsonb);
    replayed := false;
END $$;

-- Refund all or part of a sale; the discount and both shares reverse in proportion.
CREATE FUNCTION till_refund(
    p_terminal_id bigint, p_redemption_id uuid, p_amount_minor bigint,
    p_idempotency_key text, p_request_hash bytea,
    OUT body jsonb, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    merchant bigint := till_terminal(p_terminal_id);
    new_id uuid := gen_random_uuid();
    held uuid;
    r redemptions;
    before record;
    amount bigint;
    refund_union bigint; refund_merchant bigint;
BEGIN
    SELECT * INTO r FROM redemptions WHERE id = p_redemption_id AND merchant_id = merchant
       FOR UPDATE;
    IF NOT FOUND THEN PERFORM till_fail('redemption_not_found'); END IF;
    held := till_claim_key(merchant, p_idempotency_key, p_request_hash, 'refund', new_id);
    IF held IS NOT NULL THEN
        body := till_redemption_json(p_redemption_id) || jsonb_build_object('refund_id', held);
        replayed := true;
        RETURN;
    END IF;
    SELECT coalesce(sum(amount_minor), 0)::bigint AS amount,
           coalesce(sum(union_funded_minor), 0)::bigint AS union_funded,
           coalesce(sum(merchant_funded_minor), 0)::bigint AS merchant_funded
      INTO before FROM refunds WHERE redemption_id = r.id;
    amount := coalesce(p_amount_minor, r.amount_minor - before.amount);
    IF amount <= 0 OR amount > r.amount_minor - before.amount THEN
        PERFORM till_fail('refund_exceeds_remaining',
            jsonb_build_object('remaining_amount', r.amount_minor - before.amount));
    END IF;
    -- Each share reverses on its cumulative proportion, so the refunds of a sale add up to
    -- its shares exactly and neither part of any one refund goes negative.
    refund_union := round_half_up_div(r.union_funded_minor * (before.amount + amount), r.amount_minor)
                    - before.union_funded;
    refund_merchant := round_half_up_div(r.merchant_funded_minor * (before.amount + amount),
                                         r.amount_minor) - before.merchant_funded;
    INSERT INTO refunds (id, redemption_id, merchant_id, terminal_id, amount_minor, discount_minor,
        union_funded_minor, merchant_funded_minor, currency)
    VALUES (new_id, r.id, merchant, p_terminal_id, amount, refund_union + refund_merchant,
        refund_union, refund_merchant, r.currency);
    UPDATE merchant_budget_months SET used_minor = greatest(used_minor - refund_union, 0)
     WHERE merchant_id = merchant
       AND month = date_trunc('month', (r.occurred_at AT TIME ZONE till_local_tz()))::date;
    PERFORM ledger_post('refund', merchant, r.id, new_id, now(),
        'merchant:' || merchant || ':payable', 'union:subsidy_expense', refund_union, r.currency);
    body := till_redemption_json(r.id) || jsonb_build_object('refund_id', new_id);
    replayed := false;
END $$;
