-- wrk script for `unioncard bench pages`: signed-in members open one page, each request as another member.
--
-- wrk ... -s pages.lua URL -- PATH DATA_FILE
--   PATH       the page, e.g. /me/benefits
--   DATA_FILE  one session token per line (members signed in by the bench)
-- done() prints one line "BENCH_RESULT {json}" that pages.py parses.

local path, tokens = "/me/benefits", {}
ok_count, redirect_count, client_4xx, server_5xx, other_status = 0, 0, 0, 0, 0
first_error = ""

local threads = {}
function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

function init(args)
   path = args[1] or path
   local data_file = args[2]
   assert(data_file, "usage: -- PATH DATA_FILE")
   for line in io.lines(data_file) do
      if #line > 0 then table.insert(tokens, line) end
   end
   assert(#tokens > 0, "the data file has no session tokens")
   math.randomseed(os.time() * 1000 + thread_id * 7919)
end

function request()
   local cookie = "uc_session=" .. tokens[math.random(#tokens)]
   return wrk.format("GET", path, {["Cookie"] = cookie, ["Accept-Language"] = "zh-CN"})
end

function response(status, headers, body)
   if status == 200 then
      ok_count = ok_count + 1
   elseif status >= 300 and status < 400 then
      redirect_count = redirect_count + 1
      if first_error == "" then first_error = status .. " to " .. (headers["Location"] or "?") end
   elseif status >= 500 then
      server_5xx = server_5xx + 1
      if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
   elseif status >= 400 then
      client_4xx = client_4xx + 1
      if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
   else
      other_status = other_status + 1
   end
end

function done(summary, latency, requests)
   local totals = {ok = 0, redirect = 0, client_4xx = 0, server_5xx = 0, other = 0}
   local sample = ""
   for _, thread in ipairs(threads) do
      totals.ok = totals.ok + (thread:get("ok_count") or 0)
      totals.redirect = totals.redirect + (thread:get("redirect_count") or 0)
      totals.client_4xx = totals.client_4xx + (thread:get("client_4xx") or 0)
      totals.server_5xx = totals.server_5xx + (thread:get("server_5xx") or 0)
      totals.other = totals.other + (thread:get("other_status") or 0)
      local found = thread:get("first_error")
      if sample == "" and found then sample = found end
   end
   sample = sample:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
   local errors = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us":%d,"requests":%d,"ok":%d,"redirect":%d,"client_4xx":%d,"server_5xx":%d,'
      .. '"other":%d,"socket_errors":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},'
      .. '"error_sample":"%s"}\n',
      summary.duration, summary.requests, totals.ok, totals.redirect, totals.client_4xx, totals.server_5xx,
      totals.other, errors.connect + errors.read + errors.write + errors.timeout + errors.status * 0,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean, sample))
end
