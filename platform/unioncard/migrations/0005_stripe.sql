-- The Stripe Connect payout rail: payees' connected accounts, the transfer behind an instruction, and every
-- verified Stripe event, stored once.

-- A merchant's connected account; payouts_enabled is what Stripe last said in account.updated.
CREATE TABLE stripe_accounts (
    merchant_id      bigint CONSTRAINT stripe_accounts_pk PRIMARY KEY
                     CONSTRAINT stripe_accounts_merchant_fk REFERENCES merchants (id),
    account_id       text NOT NULL CONSTRAINT stripe_accounts_account_key UNIQUE
                     CONSTRAINT stripe_accounts_account_check CHECK (account_id LIKE 'acct\_%'),
    payouts_enabled  boolean NOT NULL DEFAULT false,
    details_submitted boolean NOT NULL DEFAULT false,
    stated_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN stripe_accounts.stated_at IS 'created time of the account.updated event last applied: older ones are skipped';

-- Every verified event, once per Stripe event id; outcome says what applying it did.
CREATE TABLE stripe_events (
    id           text CONSTRAINT stripe_events_pk PRIMARY KEY,
    endpoint     text NOT NULL CONSTRAINT stripe_events_endpoint_check CHECK (endpoint IN ('platform', 'connect')),
    type         text NOT NULL,
    account      text,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL DEFAULT 'received' CONSTRAINT stripe_events_outcome_check
                 CHECK (outcome IN ('received', 'applied', 'unchanged', 'unmapped', 'ignored')),
    detail       text
);
CREATE INDEX stripe_events_type_idx ON stripe_events (type, received_at);

-- The rail's own id for what it made of an instruction (a Stripe transfer tr_…), once known.
ALTER TABLE payout_instructions ADD COLUMN rail_reference text;
CREATE UNIQUE INDEX payout_instructions_rail_reference_key ON payout_instructions (rail, rail_reference);
