-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- State serializer for device migration: a table of booleans, numbers,
-- strings and nested tables becomes a self-describing byte string. Decoding
-- never runs code (no load()), so a hostile stream can only fail to load.
-- state.load() refills the given table in place, so handlers that captured
-- it keep seeing the live state.

local state = {}

local MAX_DEPTH = 32
local pack, unpack = string.pack, string.unpack

local function encode(v, out, depth)
  local t = math.type(v) or type(v)
  if t == "integer" then
    out[#out + 1] = pack("<c1i8", "i", v)
  elseif t == "float" then
    out[#out + 1] = pack("<c1d", "f", v)
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif t == "string" then
    out[#out + 1] = pack("<c1s4", "s", v)
  elseif t == "table" then
    if depth >= MAX_DEPTH then error("state: tables nested too deeply", 0) end
    local keys = {}
    for k in pairs(v) do
      local kt = type(k)
      if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
        error("state: unsupported key type " .. kt, 0)
      end
      keys[#keys + 1] = k
    end
    -- a stable order makes equal states encode equally
    table.sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "boolean" then return (not a) and b end
      return a < b
    end)
    out[#out + 1] = pack("<c1I4", "t", #keys)
    for _, k in ipairs(keys) do
      encode(k, out, depth + 1)
      encode(v[k], out, depth + 1)
    end
  else
    error("state: cannot save a " .. t, 0)
  end
end

local function decode(s, pos, depth)
  local tag = s:sub(pos, pos)
  if tag == "i" then return unpack("<i8", s, pos + 1)
  elseif tag == "f" then return unpack("<d", s, pos + 1)
  elseif tag == "T" then return true, pos + 1
  elseif tag == "F" then return false, pos + 1
  elseif tag == "s" then return unpack("<s4", s, pos + 1)
  elseif tag == "t" then
    if depth >= MAX_DEPTH then error("state: tables nested too deeply", 0) end
    local n, p = unpack("<I4", s, pos + 1)
    if n > #s - p + 1 then error("state: truncated table", 0) end
    local t = {}
    for _ = 1, n do
      local k, v
      k, p = decode(s, p, depth + 1)
      v, p = decode(s, p, depth + 1)
      if k ~= k then error("state: NaN key", 0) end
      t[k] = v
    end
    return t, p
  end
  error(("state: bad tag at byte %d"):format(pos), 0)
end

local MAGIC = "vfuS1"

function state.save(t)
  assert(type(t) == "table", "state.save: table expected")
  local out = { MAGIC }
  encode(t, out, 0)
  return table.concat(out)
end

-- Decode s into a new table without touching anything.
function state.decode(s)
  assert(type(s) == "string", "state.decode: string expected")
  if s:sub(1, #MAGIC) ~= MAGIC then error("state: not a vfu state stream", 0) end
  local ok, v, pos = pcall(decode, s, #MAGIC + 1, 0)
  if not ok then error(v:find("^state:") and v or "state: truncated stream", 0) end
  if type(v) ~= "table" then error("state: top level is not a table", 0) end
  if pos ~= #s + 1 then error("state: trailing bytes", 0) end
  return v
end

-- Replace the contents of t with the state in s.
function state.load(t, s)
  assert(type(t) == "table", "state.load: table expected")
  local new = state.decode(s)
  for k in pairs(t) do t[k] = nil end
  for k, v in pairs(new) do t[k] = v end
  return t
end

return state
