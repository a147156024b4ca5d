-- wrk script for POST /v1/access; bench/run picks the scenario and seeds what it needs.
--
--   ACCESS_SCENARIO=subscriber  reader `bench-subscriber` (granted `articles`) reads a new
--                               article every time
--   ACCESS_SCENARIO=metered     each reader reads articles a1..a4 (with the default limit of 3:
--                               three metered grants, then a refusal), then the next reader
--                               takes over
--   ACCESS_SCENARIO=reread      cycles through the ACCESS_READERS seeded readers
--                               `bench-reread-<i>` re-reading their unlocked articles a1..a3
--
-- ACCESS_PREFIX, fresh for each run, keeps the readers and articles of one run apart from an
-- earlier run's against the same database. Readers and articles are named by wrk thread, so
-- threads never share one: `<prefix>-m-<thread>-<n>`.
--
-- There is deliberately no response() callback: without one wrk skips collecting headers and
-- bodies, which would otherwise cost as much as some of what is measured. bench/run checks the
-- outcome over the API afterwards instead.

local scenario = os.getenv("ACCESS_SCENARIO")
local prefix = os.getenv("ACCESS_PREFIX") or "run"
local reread_readers = tonumber(os.getenv("ACCESS_READERS") or "200")
local path = "/v1/access"
local body_format = '{"reader_id":"%s","article_id":"%s"}'

wrk.headers["Content-Type"] = "application/json"

-- Main state: number the threads, and keep them to read their counters in done().
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state. `calls` counts request() calls; note that wrk calls request() of thread 0 once
-- before the run to check what it builds, and never sends that one.
function init(args)
  calls = 0
  if scenario ~= "subscriber" and scenario ~= "metered" and scenario ~= "reread" then
    error("ACCESS_SCENARIO must be subscriber, metered or reread, not " .. tostring(scenario))
  end
end

local function body_for(n)
  if scenario == "subscriber" then
    return body_format:format("bench-subscriber", string.format("%s-s-%d-%d", prefix, id, n))
  elseif scenario == "metered" then
    local reader = string.format("%s-m-%d-%d", prefix, id, math.floor(n / 4))
    return body_format:format(reader, "a" .. (n % 4 + 1))
  else
    local pair = n % (reread_readers * 3)
    return body_format:format("bench-reread-" .. math.floor(pair / 3), "a" .. (pair % 3 + 1))
  end
end

function request()
  local body = body_for(calls)
  calls = calls + 1
  return wrk.format("POST", path, wrk.headers, body)
end

-- One line per thread, `access-calls <thread> <calls>`, from which bench/run works out which
-- metered readers had all their requests answered.
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    print(string.format("access-calls %d %d", thread:get("id"), thread:get("calls")))
  end
end
