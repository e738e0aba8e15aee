-- wrk script: counts responses that are not 200 per wall-clock second (os.time()), printed at the end
-- as "FAILS <second> <count>" lines (one per second that had any) and "TOTAL <responses>".
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  fails = {}
  total = 0
end

function response(status, headers, body)
  total = total + 1
  if status ~= 200 then
    local t = os.time()
    fails[t] = (fails[t] or 0) + 1
  end
end

function done(summary, latency, requests)
  local all = {}
  local n = 0
  for _, thread in ipairs(threads) do
    local f = thread:get("fails")
    n = n + thread:get("total")
    for t, c in pairs(f) do
      all[t] = (all[t] or 0) + c
    end
  end
  for t, c in pairs(all) do
    io.write(string.format("FAILS %d %d\n", t, c))
  end
  io.write(string.format("TOTAL %d\n", n))
end
