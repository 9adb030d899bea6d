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
-- (union-level transactions such as grants use merchant_id 0 and land on one shard).
SELECT create_distributed_table('ledger_transactions', 'merchant_id', colocate_with => 'contract_versions');

-- Schema changes needed first (a migration when this plan is adopted):
--  * primary keys of distributed tables must include merchant_id
--    (redemptions (merchant_id, id), refunds (merchant_id, id), terminals (merchant_id, id), ...);
--  * ledger_postings gets merchant_id and is distributed with ledger_transactions;
--  * till_redeem/till_refund are then delegated to the merchant's shard with
--    create_distributed_function('till_redeem(...)', '$merchant', colocate_with => 'contract_versions')
--    once the terminal → merchant lookup happens before the call (the terminal cache has it).
