-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- The pure-Lua helpers: register map splitting/merging and masks, the
-- state serializer's round trip and its refusal of bad streams.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local regmap, state = require "regmap", require "state"

local writes = {}
local m = regmap.new({
  { "ctrl", 0x0, reset = 0x1234, write = function(r, v) writes[#writes + 1] = v end },
  { "status", 0x4, ro = 0xff00, w1c = 0x00ff, reset = 0xab0f },
  { "id", 0x8, width = 2, ro = 0xffff, reset = 0xbeef },
  { "live", 0xc, width = 1, read = function() return 0x42 end },
}, { width = 4 })
H.eq(m:read(0, 4), 0x1234, "reset value")
H.eq(m:read(1, 1), 0x12, "byte of a register")
H.eq(m:read(0, 8), 0xab0f00001234, "merge two registers")
m:write(1, 1, 0x56)
H.eq(m.ctrl.value, 0x5634, "partial write keeps other bytes")
H.eq(writes[1], 0x5634, "handler sees the merged value")
m:write(4, 2, 0xff05)
H.eq(m.status.value, 0xab0a, "ro kept, w1c cleared where 1")
m:write(8, 2, 0)
H.eq(m:read(8, 2), 0xbeef, "read-only register")
H.eq(m:read(0xc, 1), 0x42, "read handler")
H.eq(m:read(0x20, 4), 0, "unmapped reads zero")
m:set("ctrl", 7)
H.eq(m:get("ctrl"), 7, "set/get")
m:reset()
H.eq(m:get("ctrl"), 0x1234, "reset")
local t = m:handlers { size = 16 }
H.eq(t.read(0, 2), 0x1234, "handlers")
H.raises("overlaps", regmap.new, { { "a", 0 }, { "b", 2 } })
H.raises("width", regmap.new, { { "a", 0, width = 3 } })
H.raises("unknown field", regmap.new, { { "a", 0, wdth = 1 } })
H.raises("no register", m.get, m, "nope")

local s = { n = 1, f = 1.5, b = true, str = "x\0y", nested = { 1, 2, { deep = "z" } } }
local blob = state.save(s)
H.eq(state.save(s), blob, "stable encoding")
local live = { stale = 1 }
state.load(live, blob)
H.eq(live.stale, nil, "load replaces contents")
H.eq(live.n, 1, "integer") ; H.eq(math.type(live.n), "integer", "integer type")
H.eq(live.f, 1.5, "float") ; H.eq(live.b, true, "bool") ; H.eq(live.str, "x\0y", "string")
H.eq(live.nested[3].deep, "z", "nested")
H.raises("not a vfu state", state.decode, "garbage")
H.raises("truncated", state.decode, blob:sub(1, -2))
H.raises("trailing", state.decode, blob .. "x")
H.raises("cannot save a function", state.save, { f = print })
local deep = {} ; local p = deep
for _ = 1, 40 do p.x = {} ; p = p.x end
H.raises("nested too deeply", state.save, deep)
H.done("helpers")
