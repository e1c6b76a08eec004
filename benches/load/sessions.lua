-- wrk: browser-like requests spread over many logged-in sessions, so the gate
-- does real work on every request (cookie parse, session hash + look-up, class,
-- seat check, activity touch).
--
-- LOAD_CASUAL casual users c000000… and LOAD_POWER power users p000000…, each
-- with LOAD_PER_USER sessions; the session cookie is "<user>.<k>", which the
-- upstream nginx turns into X-AUSERNAME. Casual and power sessions interleave;
-- three in four requests view an issue (activity), one opens the dashboard.
--
-- LOAD_AUTH=basic|bearer: no cookie; each request carries `Authorization`
-- for one of LOAD_HOLDERS casual holders, rotating (Basic "c000042:pw", the
-- upstream names $remote_user; Bearer "c000042.tok", the upstream names the
-- part before the dot) — a script's or an integration's traffic.
--
-- LOAD_MILLION=N switches to N distinct sessions (users c000000…c(LOAD_CASUAL-1),
-- N / LOAD_CASUAL sessions each), generated as we go, starting at LOAD_OFFSET:
-- the memory run's way to make iumgate learn a million sessions.

local casual = tonumber(os.getenv("LOAD_CASUAL") or "3000")
local power = tonumber(os.getenv("LOAD_POWER") or "1000")
local per = tonumber(os.getenv("LOAD_PER_USER") or "2")
local million = tonumber(os.getenv("LOAD_MILLION") or "0")
local offset = tonumber(os.getenv("LOAD_OFFSET") or "0")
local auth = os.getenv("LOAD_AUTH") or "cookie"
local holders = tonumber(os.getenv("LOAD_HOLDERS") or "1000")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for k = 1, #s, 3 do
    local a, b, c = s:byte(k, k + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for j = 3, 0, -1 do
      local v = math.floor(n / 64 ^ j) % 64
      q[#q + 1] = b64chars:sub(v + 1, v + 1)
    end
    if not b then q[3] = "=" end
    if not c then q[4] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

local common = {
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  ["Accept-Language"] = "en-GB,en;q=0.5",
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}

local function cookie(session)
  return "atlassian.xsrf.token=BWP3-NZB2-6EDY-6C7K_0123456789abcdef0123456789abcdef01234567_lin; JSESSIONID="
    .. session .. "; _ga=GA1.2.1234567890.1234567890"
end

local function path(n)
  if n % 4 == 3 then
    return "/secure/Dashboard.jspa"
  end
  return "/browse/DEMO-" .. tostring(n % 997 + 1)
end

local function format(session, n)
  local h = {}
  for k, v in pairs(common) do h[k] = v end
  h["Cookie"] = cookie(session)
  return wrk.format("GET", path(n), h)
end

local function format_auth(user, n)
  local h = {}
  for k, v in pairs(common) do h[k] = v end
  if auth == "basic" then
    h["Authorization"] = "Basic " .. base64(user .. ":pw")
  else
    h["Authorization"] = "Bearer " .. user .. ".tok"
  end
  return wrk.format("GET", path(n), h)
end

local reqs = {}
local i = 0

function init(args)
  if million > 0 then
    return
  end
  if auth ~= "cookie" then
    for n = 1, holders do
      reqs[n] = format_auth(string.format("c%06d", (n - 1) % casual), n)
    end
    return
  end
  -- Precomputed: wrk's own cost per request stays small and constant.
  local n = 0
  local total = (casual + power) * per
  local ci, pi = 0, 0
  while n < total do
    local name
    -- Three casual sessions to one power session while both last.
    if (n % 4 ~= 3 and ci < casual * per) or pi >= power * per then
      name = string.format("c%06d.%d", ci % casual, math.floor(ci / casual))
      ci = ci + 1
    else
      name = string.format("p%06d.%d", pi % power, math.floor(pi / power))
      pi = pi + 1
    end
    n = n + 1
    reqs[n] = format(name, n)
  end
end

function request()
  if million > 0 then
    local k = (offset + i) % million
    i = i + 1
    return format(string.format("c%06d.%d", k % casual, math.floor(k / casual)), k)
  end
  i = i % #reqs + 1
  return reqs[i]
end
