-- wrk script of the soak (benchmarks/soak.py): every request posts one distinct event.
--
--   wrk --threads=1 ... -s benchmarks/soak.lua URL -- TEMPLATES FIRST COUNT
--
-- TEMPLATES has one request per line, PATH<TAB>BODY, the body form-encoded with two
-- placeholders: XIDX (the event's number) and XDOMX (its recipient domain). Event n, from
-- FIRST to FIRST+COUNT-1, posts template n mod the number of templates with its own id,
-- recipient and recipient domain (d<n>.soak.example). A connection with no event left to
-- send asks for the index page meanwhile, which is not counted. Once every event is answered
-- the thread stops and wrk is sent SIGINT, which ends its run early (wrk otherwise runs for
-- all of --duration). done() prints one line, "SOAK {json}", for soak.py to read.
--
-- One thread only: wrk calls request() once before the run to check what it returns (in
-- thread 0's state), and one thread is far more than the service can keep up with.

local ffi = require("ffi")
ffi.cdef([[
int getpid(void);
int kill(int pid, int sig);
]])
local SIGINT = 2

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local first, count = tonumber(args[2]), tonumber(args[3])
  templates = {}
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    table.insert(templates, { path, body })
  end
  next_event, last_event, quota = first, first + count - 1, count
  sent, answered, ok, refused = 0, 0, 0, 0
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  filler = wrk.format("GET", "/")
  checking = true
end

function request()
  if checking then -- wrk's check of what request() returns: nothing is sent
    checking = false
    return filler
  end
  if next_event > last_event then
    return filler
  end
  local n = next_event
  next_event = n + 1
  sent = sent + 1
  local template = templates[(n % #templates) + 1]
  local body = template[2]:gsub("XIDX", n):gsub("XDOMX", "d" .. n .. ".soak.example")
  return wrk.format("POST", template[1], headers, body)
end

function response(status, headers, body)
  -- Every answer to an event is JSON; the index page is HTML.
  if body:sub(1, 1) == "{" then
    answered = answered + 1
    if status >= 200 and status < 300 then
      ok = ok + 1
    else
      refused = refused + 1
    end
  end
  if answered >= quota and not finished then
    finished = true
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), SIGINT)
  end
end

function done(summary, latency, requests)
  local totals = { sent = 0, answered = 0, ok = 0, refused = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'SOAK {"sent": %d, "answered": %d, "ok": %d, "refused": %d, "requests": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"duration_us": %d, "latency_p50_us": %d, "latency_p99_us": %d}\n',
    totals.sent, totals.answered, totals.ok, totals.refused, summary.requests,
    errors.connect, errors.read, errors.write, errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)
  ))
end
