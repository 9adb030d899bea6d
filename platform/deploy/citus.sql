-- Distribution plan for Citus; run after `unioncard migrate` on the coordinator.
--
-- Rules: no query joins two distributed tables except on their distribution column;
-- everything the till writes for one sale lives on the merchant's shard group.

-- Reference tables: small, read everywhere, joined from any shard.
SELECT create_reference_table('orgs');
SELECT create_reference_table('staff_users');
SELECT create_reference_table('api_tokens');
SELECT create_reference_table('sessions');
-- members and cards are read on every sale (card state, tier, org path): as reference
-- tables they join locally on every node. 225k rows per district is small; a province of
-- tens of millions would distribute cards by id and look them up first instead.
SELECT create_reference_table('members');
SELECT create_reference_table('cards');
SELECT create_reference_table('card_status_history');
SELECT create_reference_table('merchants');

-- The catalog and the places it offers change rarely and are read with every member page.
SELECT create_reference_table('benefits');
SELECT create_reference_table('benefit_review_levels');
SELECT create_reference_table('health_check_years');
SELECT create_reference_table('health_check_town_quotas');
SELECT create_reference_table('health_check_clinics');
SELECT create_reference_table('health_check_slots');
SELECT create_reference_table('loan_funds');
SELECT create_reference_table('service_centres');
SELECT create_reference_table('service_rooms');

-- Member-scoped benefits stay on the coordinator's node group as local tables for a district: a year
-- holds a few hundred grant applications, ~20,000 health-check bookings, a few dozen loans and some
-- 10,000 room bookings. The quota, fund and exclusion constraints need every row of their scope in one
-- place: health_check_bookings are counted per benefit-year (a distributed table would need the quota
-- rows co-located with it: distribute both by benefit_id when a province outgrows one node), and
-- room_bookings' exclusion constraint needs the room's rows on one shard (distribute by room_id, with
-- service_rooms then distributed by id and co-located). Grant and loan postings are union-level
-- ledger transactions (see merchant_id below).
-- applications, application_events, grant_payouts, grant_payout_events, grant_bank_files,
-- health_check_bookings, loan_applications, loan_application_events, room_bookings: local tables.

-- Merchant-scoped tables, co-located by merchant_id.
SELECT create_distributed_table('contract_versions', 'merchant_id');
SELECT create_distributed_table('terminals', 'merchant_id', colocate_with => 'contract_versions');
SELECT create_distributed_table('redemptions', 'merchant_id', colocate_with => 'contract_versions');
SELECT create_distributed_table('refunds', 'merchant_id', colocate_with => 'contract_versions');
SELECT create_distributed_table('merchant_budget_months', 'merchant_id', colocate_with => 'contract_versions');
SELECT create_distributed_table('idempotency_keys', 'merchant_id', colocate_with => 'contract_versions');
-- The per-card counters are per card AND merchant; keyed by merchant they stay on the sale's shard.
SELECT create_distributed_table('card_usage_days', 'merchant_id', colocate_with => 'contract_versions');
SELECT create_distributed_table('card_usage_months', 'merchant_id', colocate_with => 'contract_versions');
-- The postings of a sale carry the merchant: distribute the ledger by merchant_id too
-- (union-level transactions such as grants and loan subsidies carry no merchant today, merchant_id NULL;
-- adopting this plan sets them to 0 so they land on one shard).
SELECT create_distributed_table('ledger_transactions', 'merchant_id', colocate_with => 'contract_versions');

-- Schema changes needed first (a migration when this plan is adopted):
--  * primary keys of distributed tables must include merchant_id
--    (redemptions (merchant_id, id), refunds (merchant_id, id), terminals (merchant_id, id), ...);
--  * ledger_postings gets merchant_id and is distributed with ledger_transactions;
--  * till_redeem/till_refund are then delegated to the merchant's shard with
--    create_distributed_function('till_redeem(...)', '$merchant', colocate_with => 'contract_versions')
--    once the terminal → merchant lookup happens before the call (the terminal cache has it).
