-- wrk script of the ingest benchmark (benchmarks/ingest.py): varied failure posts, each a
-- distinct event.
--
--   wrk --threads=1 ... -s benchmarks/ingest.lua URL -- TEMPLATES FIRST
--
-- TEMPLATES has one request per line, PATH<TAB>BODY, the body form-encoded with the
-- placeholder XIDX in its id. Request n (from FIRST on) posts template n mod the number of
-- templates with XIDX replaced by n, so no post is a duplicate of another however long wrk
-- runs. done() prints one line, "INGEST {json}", for ingest.py to read.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  templates = {}
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    table.insert(templates, { path, body })
  end
  next_event = tonumber(args[2])
  ok, not_ok = 0, 0
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function request()
  local n = next_event
  next_event = n + 1
  local template = templates[(n % #templates) + 1]
  return wrk.format("POST", template[1], headers, template[2]:gsub("XIDX", n))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local totals = { ok = 0, not_ok = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'INGEST {"requests": %d, "ok": %d, "not_ok": %d, "errors": %d, "duration_us": %d, '
      .. '"latency_p50_us": %d, "latency_p99_us": %d, "latency_p999_us": %d, '
      .. '"latency_max_us": %d}\n',
    summary.requests, totals.ok, totals.not_ok,
    errors.connect + errors.read + errors.write + errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max
  ))
end
