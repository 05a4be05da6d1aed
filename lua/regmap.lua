-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Register map: named registers with an offset, a width, a reset value,
-- read-only and write-1-to-clear masks and optional handlers. The map takes
-- region accesses of any size and offset and splits or merges them into
-- whole-register operations, so a device declares each register once.
--
--   local map = regmap.new {
--     { "out0", 0x0, width = 1, reset = 0, write = function(reg, v) ... end },
--     { "status", 0x6, ro = 0xff, read = function(reg) return ... end },
--   }
--   map:read(offset, size) / map:write(offset, size, value)
--   map.out0 -> the register: .value, .name, .offset, .width

local regmap = {}
local Map = {}
Map.__index = Map

local function mask_of(width)
  return width >= 8 and -1 or (1 << (8 * width)) - 1
end

local FIELDS = { name = 1, offset = 1, width = 1, reset = 1, ro = 1, w1c = 1,
                 read = 1, write = 1, [1] = 1, [2] = 1 }

-- regmap.new(list [, defaults]): defaults.width is the width of registers
-- that do not give one (default 4).
function regmap.new(list, defaults)
  assert(type(list) == "table", "regmap.new: list of registers expected")
  local width = defaults and defaults.width or 4
  local map = setmetatable({ regs = {}, by_offset = {} }, Map)
  for i, d in ipairs(list) do
    for k in pairs(d) do
      if not FIELDS[k] then error(("regmap: register %d: unknown field '%s'"):format(i, tostring(k)), 2) end
    end
    local r = {
      name = d.name or d[1], offset = d.offset or d[2], width = d.width or width,
      reset = d.reset or 0, ro = d.ro or 0, w1c = d.w1c or 0,
      read = d.read, write = d.write,
    }
    if type(r.name) ~= "string" then error(("regmap: register %d has no name"):format(i), 2) end
    if math.type(r.offset) ~= "integer" or r.offset < 0 then
      error(("regmap: %s: bad offset"):format(r.name), 2)
    end
    if r.width ~= 1 and r.width ~= 2 and r.width ~= 4 and r.width ~= 8 then
      error(("regmap: %s: width must be 1, 2, 4 or 8"):format(r.name), 2)
    end
    if map.regs[r.name] or Map[r.name] then error(("regmap: %s: duplicate or reserved name"):format(r.name), 2) end
    for b = r.offset, r.offset + r.width - 1 do
      if map.by_offset[b] then
        error(("regmap: %s overlaps %s"):format(r.name, map.by_offset[b].name), 2)
      end
      map.by_offset[b] = r
    end
    r.value = r.reset & mask_of(r.width)
    map.regs[r.name] = r
    map[r.name] = r
  end
  return map
end

function Map:reset()
  for _, r in pairs(self.regs) do r.value = r.reset & mask_of(r.width) end
end

function Map:get(name)
  local r = self.regs[name] or error("regmap: no register " .. tostring(name), 2)
  return r.value
end

-- Device-side update: no masks, no handlers.
function Map:set(name, v)
  local r = self.regs[name] or error("regmap: no register " .. tostring(name), 2)
  r.value = v & mask_of(r.width)
end

local function reg_value(self, r)
  if r.read then
    local v = r.read(r, self)
    if v ~= nil then return v & mask_of(r.width) end
  end
  return r.value
end

-- Registers touched by [off, off + size), each once, in offset order.
local function touched(self, off, size)
  local list, seen = {}, {}
  for b = off, off + size - 1 do
    local r = self.by_offset[b]
    if r and not seen[r] then seen[r] = true; list[#list + 1] = r end
  end
  return list
end

function Map:read(off, size)
  local v = 0
  for _, r in ipairs(touched(self, off, size)) do
    local rv = reg_value(self, r)
    for b = math.max(off, r.offset), math.min(off + size, r.offset + r.width) - 1 do
      local byte = (rv >> (8 * (b - r.offset))) & 0xff
      v = v | (byte << (8 * (b - off)))
    end
  end
  return v
end

function Map:write(off, size, value)
  for _, r in ipairs(touched(self, off, size)) do
    -- bytes of the register this access covers, and what it writes there
    local cover, data = 0, 0
    for b = math.max(off, r.offset), math.min(off + size, r.offset + r.width) - 1 do
      local shift = 8 * (b - r.offset)
      cover = cover | (0xff << shift)
      data = data | (((value >> (8 * (b - off))) & 0xff) << shift)
    end
    local old = r.value
    local keep = r.ro | ~cover
    local new = (old & keep & ~r.w1c) | (data & ~keep & ~r.w1c)
              | (old & r.w1c & ~(data & cover))
    new = new & mask_of(r.width)
    if r.write then
      local v = r.write(r, new, old, self)
      if v ~= nil then new = v & mask_of(r.width) end
    end
    r.value = new
  end
end

-- Region handlers for a vfu.device bar: map:handlers{ size = 256, io = true }
function Map:handlers(t)
  t = t or {}
  t.read = function(off, size) return self:read(off, size) end
  t.write = function(off, size, v)
    if type(v) == "string" then error("regmap: accesses of more than 8 bytes are not registers", 0) end
    self:write(off, size, v)
  end
  return t
end

return regmap
