-- wrk script for `unioncard bench till`: quotes, sales, or a till-like mix with refunds.
--
-- wrk ... -s bench_till.lua URL -- MODE DATA_FILE RUN_TAG
--   MODE       quote | sale | mix (30% quotes, 62% sales, 8% refunds of this thread's sales)
--   DATA_FILE  one line per terminal "T <terminal_id> <key>", one per card "C <number>"
--   RUN_TAG    makes Idempotency-Keys unique across runs against the same merchants
-- done() prints one line "BENCH_RESULT {json}" that bench.py parses.

local mode, tag = "sale", "bench"
local terminal_ids, terminal_keys, key_by_terminal, cards = {}, {}, {}, {}
local request_count = 0

-- Sales this thread recorded, oldest first, for the mix's refunds. A ring: when full,
-- the oldest sale is forgotten, never refunded twice (a second full refund would be a 409).
local RING_SIZE = 1024
local ring, ring_head, ring_length = {}, 0, 0

-- Counters are plain number globals: thread:get copies numbers reliably between Lua states.
local COUNTERS = {
   "quote_ok", "quote_ineligible", "sale_recorded", "refund_recorded",
   "not_eligible", "other_4xx", "server_5xx", "other_status",
   "refused_budget", "refused_daily", "refused_monthly", "refused_other",
}
for _, name in ipairs(COUNTERS) do _G[name] = 0 end
first_error = ""

local status_names = {}
for code = 100, 599 do status_names[code] = "s" .. code end

-- Runs in the main Lua state once per thread, before the threads start.
local threads = {}
function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

local function load_data(path)
   for line in io.lines(path) do
      local kind, a, b = line:match("^(%a) (%S+) ?(%S*)$")
      if kind == "T" then
         local id = tonumber(a)
         table.insert(terminal_ids, id)
         table.insert(terminal_keys, b)
         key_by_terminal[id] = b
      elseif kind == "C" then
         table.insert(cards, a)
      end
   end
   assert(#terminal_ids > 0 and #cards > 0, "data file has no terminals or no cards: " .. path)
end

function init(args)
   mode, tag = args[1] or mode, args[3] or tag
   load_data(assert(args[2], "usage: -- MODE DATA_FILE RUN_TAG"))
   math.randomseed(os.time() * 1000 + thread_id * 7919 + #cards)
end

local function headers_for(key, idempotency_key)
   local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
   if idempotency_key then headers["Idempotency-Key"] = idempotency_key end
   return headers
end

-- thread id + counter make it unique in this run; the tag and a random part across runs.
local function next_idempotency_key(kind)
   request_count = request_count + 1
   return string.format("%s-%s-%d-%d-%d", tag, kind, thread_id, request_count, math.random(1000000000))
end

local function random_amount()
   return math.random(1000, 50000)
end

local function quote_request()
   local key = terminal_keys[math.random(#terminal_keys)]
   local body = string.format('{"card":"%s","amount":%d,"currency":"CNY"}',
      cards[math.random(#cards)], random_amount())
   return wrk.format("POST", "/api/till/v1/quote", headers_for(key), body)
end

local function sale_request()
   local key = terminal_keys[math.random(#terminal_keys)]
   local idempotency_key = next_idempotency_key("s")
   local body = string.format('{"card":"%s","amount":%d,"currency":"CNY","receipt_ref":"%s"}',
      cards[math.random(#cards)], random_amount(), string.format("wrk-%d-%d", thread_id, request_count))
   return wrk.format("POST", "/api/till/v1/redemptions", headers_for(key, idempotency_key), body)
end

local function remember_sale(body)
   local id = body:match('^{"id": "([%x%-]+)"')
   local terminal_id = tonumber(body:match('"terminal_id": (%d+)'))
   local amount = tonumber(body:match('[{ ]"amount": (%d+)'))
   if not (id and terminal_id and amount) then return end
   ring[(ring_head + ring_length) % RING_SIZE] = {id = id, terminal_id = terminal_id, amount = amount}
   if ring_length < RING_SIZE then
      ring_length = ring_length + 1
   else
      ring_head = (ring_head + 1) % RING_SIZE
   end
end

local function take_sale()
   if ring_length == 0 then return nil end
   local sale = ring[ring_head]
   ring[ring_head] = nil
   ring_head = (ring_head + 1) % RING_SIZE
   ring_length = ring_length - 1
   return sale
end

-- Half the refunds are full (empty body), half return half of the sale.
local function refund_request()
   local sale = take_sale()
   if not sale then return sale_request() end
   local body = ""
   if math.random(2) == 1 and sale.amount >= 2 then
      body = string.format('{"amount":%d}', math.floor(sale.amount / 2))
   end
   local path = "/api/till/v1/redemptions/" .. sale.id .. "/refunds"
   return wrk.format("POST", path, headers_for(key_by_terminal[sale.terminal_id], next_idempotency_key("r")), body)
end

function request()
   if mode == "quote" then return quote_request() end
   if mode == "sale" then return sale_request() end
   local dice = math.random(100)
   if dice <= 30 then return quote_request() end
   if dice <= 92 then return sale_request() end
   return refund_request()
end

local function note_error(status, body)
   if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
end

-- Why a sale was refused: a refusal may name several reasons; the first that matches counts.
local function count_reason(body)
   if body:find("budget_exhausted", 1, true) then
      refused_budget = refused_budget + 1
   elseif body:find("daily_limit_reached", 1, true) then
      refused_daily = refused_daily + 1
   elseif body:find("monthly_limit_reached", 1, true) then
      refused_monthly = refused_monthly + 1
   else
      refused_other = refused_other + 1
      note_error(422, body)
   end
end

function response(status, headers, body)
   local name = status_names[status] or "s_other"
   _G[name] = (_G[name] or 0) + 1
   if status == 201 then
      if body:find('"refund_id"', 1, true) then
         refund_recorded = refund_recorded + 1
      else
         sale_recorded = sale_recorded + 1
         if mode == "mix" then remember_sale(body) end
      end
   elseif status == 200 then
      quote_ok = quote_ok + 1
      if body:find('"eligible": false', 1, true) then quote_ineligible = quote_ineligible + 1 end
   elseif status == 422 and body:find('"not_eligible"', 1, true) then
      not_eligible = not_eligible + 1
      count_reason(body)
   elseif status >= 500 then
      server_5xx = server_5xx + 1
      note_error(status, body)
   elseif status >= 400 then
      other_4xx = other_4xx + 1
      note_error(status, body)
   else
      other_status = other_status + 1
   end
end

local function json_string(text)
   text = text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
   return '"' .. text .. '"'
end

local function json_object(pairs_list)
   return "{" .. table.concat(pairs_list, ",") .. "}"
end

local function gather()
   local totals, statuses, error_sample = {}, {}, ""
   for _, name in ipairs(COUNTERS) do totals[name] = 0 end
   for _, thread in ipairs(threads) do
      for _, name in ipairs(COUNTERS) do totals[name] = totals[name] + (thread:get(name) or 0) end
      for code = 100, 599 do
         local n = thread:get(status_names[code])
         if n then statuses[code] = (statuses[code] or 0) + n end
      end
      local sample = thread:get("first_error")
      if error_sample == "" and sample then error_sample = sample end
   end
   return totals, statuses, error_sample
end

function done(summary, latency, requests)
   local totals, statuses, error_sample = gather()
   local counts, codes, lat = {}, {}, {}
   for _, name in ipairs(COUNTERS) do table.insert(counts, string.format('"%s":%d', name, totals[name])) end
   for code, n in pairs(statuses) do table.insert(codes, string.format('"%d":%d', code, n)) end
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(lat, string.format('"p%s":%d', tostring(p), latency:percentile(p)))
   end
   table.insert(lat, string.format('"mean":%.1f,"max":%d', latency.mean, latency.max))
   local errors = summary.errors
   local line = json_object({
      '"mode":' .. json_string(mode),
      string.format('"duration_us":%d,"requests":%d,"bytes":%d', summary.duration, summary.requests, summary.bytes),
      string.format('"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}',
         errors.connect, errors.read, errors.write, errors.timeout),
      '"latency_us":' .. json_object(lat),
      '"counts":' .. json_object(counts),
      '"statuses":' .. json_object(codes),
      '"error_sample":' .. json_string(error_sample),
   })
   io.write("BENCH_RESULT " .. line .. "\n")
end
