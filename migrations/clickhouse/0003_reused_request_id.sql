-- The request whose answer a cache hit or a coalesced call reused ('' for every other call), so a saving can be
-- traced to the call that was paid for. Existing rows read as ''. The rollups need nothing new: they already sum
-- savings_usd per savings_kind (cache, coalesce, route, batch).
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS reused_request_id String DEFAULT '' AFTER savings_kind;
