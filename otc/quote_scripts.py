"""The quote book's layout in Redis: the names of its keys and the Lua scripts that
change them, one script per operation so that each is atomic against the others.
otc/quote_book.py says what the keys hold and runs the scripts.
"""

from __future__ import annotations

QUOTE_PREFIX, FATE_PREFIX, MAKER_PREFIX = "quote:", "fate:", "maker-quote:"


def quote_key(rfq_id: str, quote_id: str) -> str:
    return f"{QUOTE_PREFIX}{{{rfq_id}}}:{quote_id}"


def fate_key(rfq_id: str, quote_id: str) -> str:
    return f"{FATE_PREFIX}{{{rfq_id}}}:{quote_id}"


def taken_key(rfq_id: str, quote_id: str) -> str:
    return f"taken:{{{rfq_id}}}:{quote_id}"


def maker_key(rfq_id: str, maker: str) -> str:
    return f"{MAKER_PREFIX}{{{rfq_id}}}:{maker}"


def live_key(maker: str) -> str:
    return f"live-quotes:{maker}"


def halt_key(maker: str) -> str:
    return f"halted:{maker}"


def index_member(rfq_id: str, quote_id: str) -> str:
    return f"{rfq_id}\n{quote_id}"


_LIB = """
local function split(value)
  local sep = string.find(value, '\\n', 1, true)
  return string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
end
local function fate_of(key)
  local value = redis.call('GET', key)
  if not value then return nil, nil end
  return split(value)
end
local function not_live(state)
  if state == 'live' then return 'expired' end
  return state
end
local function retire(q, f, m, l, qid, member, state, maker, ttl_ms)
  redis.call('DEL', q)
  redis.call('SET', f, state .. '\\n' .. maker, 'PX', ttl_ms)
  redis.call('ZREM', l, member)
  if redis.call('GET', m) == qid then redis.call('DEL', m) end
end
local function store(q, f, m, l, json, qid, member, maker, until_ms, fate_until_ms)
  local now = redis.call('TIME')
  -- the index forgets quotes that expired, so it holds no more than the live ones
  redis.call('ZREMRANGEBYSCORE', l, '-inf', '(' .. (now[1] * 1000 + math.floor(now[2] / 1000)))
  redis.call('SET', q, json, 'PXAT', until_ms)
  redis.call('SET', f, 'live\\n' .. maker, 'PXAT', fate_until_ms)
  redis.call('SET', m, qid, 'PXAT', until_ms)
  redis.call('ZADD', l, until_ms, member)
  if redis.call('PEXPIRETIME', l) < tonumber(until_ms) then
    redis.call('PEXPIREAT', l, until_ms)
  end
end
"""

# KEYS: quote, taken, fate, maker pointer, maker index, halt.
# ARGV: quote json, quote id, index member, maker, valid_until ms, fate until ms.
PUT = (
    _LIB
    + """
local halted = redis.call('GET', KEYS[6])
if halted then return {'halted', halted} end
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'taken', ''} end
local state = fate_of(KEYS[3])
if state then return {'gone', not_live(state)} end
local current = redis.call('GET', KEYS[4])
if current and current ~= ARGV[2] then return {'quoting', current} end
store(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return {'stored', ''}
"""
)

# KEYS: old quote, old fate, maker pointer, maker index, halt, new quote, new fate.
# ARGV: maker, old id, old member, new json, new id, new member, valid_until ms,
# fate until ms, tombstone ttl ms.
REPLACE = (
    _LIB
    + """
local halted = redis.call('GET', KEYS[5])
if halted then return {'halted', halted, ''} end
local state, owner = fate_of(KEYS[2])
if owner ~= ARGV[1] then return {'not_found', '', ''} end
local old = redis.call('GET', KEYS[1])
if not old then return {'not_live', not_live(state), ''} end
if redis.call('EXISTS', KEYS[7]) == 1 then
  return redis.error_reply('replacement quote id ' .. ARGV[5] .. ' was used before')
end
retire(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], 'replaced', ARGV[1], ARGV[9])
store(KEYS[6], KEYS[7], KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[6], ARGV[1], ARGV[7], ARGV[8])
return {'done', '', old}
"""
)

# KEYS: quote, fate, maker pointer, maker index. ARGV: maker, id, member, tombstone ttl.
WITHDRAW = (
    _LIB
    + """
local state, owner = fate_of(KEYS[2])
if owner ~= ARGV[1] then return {'not_found', '', ''} end
local quote = redis.call('GET', KEYS[1])
if not quote then return {'not_live', not_live(state), ''} end
retire(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], 'withdrawn', ARGV[1], ARGV[4])
return {'done', '', quote}
"""
)

# KEYS: quote, taken, fate, maker pointer, maker index.
# ARGV: taker (accept command id), taken-record ttl ms, quote id, member.
TAKE = (
    _LIB
    + """
local quote = redis.call('GET', KEYS[1])
if quote then
  local maker = cjson.decode(quote)['maker']
  retire(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[4], 'taken', maker, ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1] .. '\\n' .. quote, 'PX', ARGV[2])
  return {'taken', quote}
end
local record = redis.call('GET', KEYS[2])
if record then
  local taker, taken = split(record)
  if taker == ARGV[1] then return {'taken', taken} end
  return {'already_taken', ''}
end
local state = fate_of(KEYS[3])
if not state then return {'unknown', ''} end
if state == 'taken' then return {'already_taken', ''} end
return {not_live(state), ''}
"""
)

# KEYS: quote, taken, fate, maker pointer, maker index, halt.
# ARGV: taker, quote id, member, tombstone ttl ms.
GIVE_BACK = (
    _LIB
    + """
local record = redis.call('GET', KEYS[2])
if not record then return 'not_taken' end
local taker, quote = split(record)
if taker ~= ARGV[1] then return 'not_taken' end
redis.call('DEL', KEYS[2])
local q = cjson.decode(quote)
local maker, until_ms = q['maker'], tonumber(q['valid_until_ms'])
local now = redis.call('TIME')
local fate = nil
if until_ms <= now[1] * 1000 + math.floor(now[2] / 1000) then fate = 'expired'
elseif redis.call('EXISTS', KEYS[6]) == 1 then fate = 'withdrawn'
else
  local current = redis.call('GET', KEYS[4])
  if current and current ~= ARGV[2] then fate = 'replaced' end
end
if fate then
  redis.call('SET', KEYS[3], fate .. '\\n' .. maker, 'PX', ARGV[4])
  return fate
end
store(KEYS[1], KEYS[3], KEYS[4], KEYS[5], quote, ARGV[2], ARGV[3], maker, until_ms,
  until_ms + ARGV[4])
return 'restored'
"""
)

# KEYS: maker index, halt. ARGV: maker, halt reason ('' to leave it quoting),
# tombstone ttl, and the key prefixes of quotes, fates and maker pointers, so the
# keys of each indexed quote are spelled by the same code as everywhere else.
WITHDRAW_ALL = (
    _LIB
    + """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
local withdrawn = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local rfq, qid = split(member)
  local tag = '{' .. rfq .. '}:'
  local q = ARGV[4] .. tag .. qid
  local quote = redis.call('GET', q)
  if quote then
    local f, m = ARGV[5] .. tag .. qid, ARGV[6] .. tag .. ARGV[1]
    retire(q, f, m, KEYS[1], qid, member, 'withdrawn', ARGV[1], ARGV[3])
    table.insert(withdrawn, quote)
  end
end
redis.call('DEL', KEYS[1])
return withdrawn
"""
)
