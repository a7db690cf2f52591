-- wrk script: every request a sign-in for a login nobody has (credential stuffing), and a count
-- of the answers by status at the end. Used for the bounded-hashing figures in SECURITY.md:
--   wrk -t2 -c200 -d30s --timeout 10s -s scripts/wrk-unknown-logins.lua \
--       http://127.0.0.1:8080/rest/V1/integration/customer/token
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  statuses = {}
end

function request()
  n = n + 1
  local body = string.format(
    '{"username":"nobody-%d-%d@example.com","password":"wrong password"}', id, n)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("HTTP %d: %d\n", status, count))
  end
  io.write(string.format("timeouts: %d, connect errors: %d\n",
    summary.errors.timeout, summary.errors.connect))
end
