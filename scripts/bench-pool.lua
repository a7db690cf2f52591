-- wrk script for scripts/bench: sends the requests of a pool file, each once, spread over the
-- threads (a bounded load), or round and round for a reusable step. Pool file: raw HTTP/1.1
-- requests separated by a NUL byte (scripts/bench writes them). Environment:
--   BENCH_POOL     the pool file
--   BENCH_THREADS  wrk's -t (each thread takes every BENCH_THREADS-th request)
--   BENCH_REUSE    "1": go round the pool until the run's duration is over
--   BENCH_DONE_DIR where a thread that has spent its share of a single-use pool leaves a file
-- At the end it prints one line of JSON: the answers by status, and for a single-use pool the
-- wall time from the first request sent to the last answer of the pool (wrk's own duration is
-- its -d, which a pool spent early would not fill).
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Milliseconds since the epoch (Lua's os.time is whole seconds; called twice per thread).
local function now_ms()
  local p = io.popen("date +%s%N")
  local ns = p:read("*l")
  p:close()
  return tonumber(ns) / 1e6
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_POOL"), "rb"))
  local data = f:read("*a")
  f:close()
  local all = {}
  for req in string.gmatch(data, "([^%z]+)") do
    table.insert(all, req)
  end
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  reuse = os.getenv("BENCH_REUSE") == "1"
  pool = {}
  if reuse then
    -- Every thread goes round the whole pool, each from its own starting point.
    for i = 1, #all do
      table.insert(pool, all[((i - 1 + id) % #all) + 1])
    end
  else
    for i = id + 1, #all, nthreads do
      table.insert(pool, all[i])
    end
  end
  next_index = 1
  reserved = 0
  answered = 0
  statuses = {}
  started = nil
  finished = nil
  -- What a thread would send once its share is spent (its connections wait instead, see
  -- `delay`): a request for a path no server has.
  spent = wrk.format("GET", "/__bench_pool_spent")
end

-- A single-use pool: once a thread's share is reserved, its connections wait (a long delay
-- before any further request) until the last answer comes, which stops the thread. Defined only for
-- single-use pools: wrk puts every request of a script with `delay` through a timer.
if os.getenv("BENCH_REUSE") ~= "1" then
  -- wrk asks `delay` once before each request it then builds with `request`, so an entry
  -- reserved here is always there when `request` comes for it.
  function delay()
    if reserved < #pool then
      reserved = reserved + 1
      return 0
    end
    return 600000
  end
end

function request()
  -- wrk calls `request` once on the first thread before the run, to check the script: in a
  -- single-use pool, that call (before any `delay`) takes nothing.
  if not reuse and reserved == 0 then
    return spent
  end
  if started == nil then
    started = now_ms()
  end
  if next_index > #pool then
    if reuse and #pool > 0 then
      next_index = 1
    else
      return spent
    end
  end
  local req = pool[next_index]
  next_index = next_index + 1
  return req
end

function response(status, headers, body)
  answered = answered + 1
  if reuse or answered <= #pool then
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  end
  if not reuse and answered == #pool then
    finished = now_ms()
    wrk.thread:stop()
    -- Tells scripts/bench this thread is done: wrk would otherwise wait out its -d.
    local marker = io.open(os.getenv("BENCH_DONE_DIR") .. "/" .. id, "w")
    if marker then marker:close() end
  end
end

function done(summary, latency, requests)
  local total = {}
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
    local s, f = thread:get("started"), thread:get("finished")
    if s and (first == nil or s < first) then first = s end
    if f and (last == nil or f > last) then last = f end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%s":%d', status, count))
  end
  local wall = "null"
  if first and last then wall = string.format("%.3f", last - first) end
  io.write(string.format('BENCH {"statuses":{%s},"pool_wall_ms":%s,"timeouts":%d,"errors":%d}\n',
    table.concat(parts, ","), wall, summary.errors.timeout,
    summary.errors.connect + summary.errors.read + summary.errors.write))
end
