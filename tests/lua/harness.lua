-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Shared by the Lua tests, which run under `vfu-lua --unsafe TEST RUNNER
-- SRCDIR TMPDIR`: start device servers, connect to them, check results.

local vfu = require "vfu"
local H = { runner = arg[1], src = arg[2], tmp = arg[3] }
assert(H.runner and H.src and H.tmp, "usage: vfu-lua --unsafe TEST RUNNER SRCDIR TMPDIR")

local function sh(cmd) return os.execute(cmd) end

-- Servers started and not yet stopped. A failing test ends with an error,
-- and the runner closes the Lua state: this reaper then kills what is
-- left, so that no server outlives its test.
local running = {}
H.reaper = setmetatable({}, { __gc = function()
  for pid in pairs(running) do sh("kill -KILL " .. pid .. " 2>/dev/null") end
end })

-- Write a file (for device scripts made up by a test).
function H.write(name, text)
  local path = H.tmp .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- Start `vfu-lua OPTS SCRIPT SOCK [ARGS]` in the background; returns a server.
function H.start(script, opts, name, args)
  name = name or script:match("([^/]+)%.lua$")
  local sock = ("%s/%s.sock"):format(H.tmp, name)
  local log = ("%s/%s.log"):format(H.tmp, name)
  os.remove(sock)
  local p = assert(io.popen(("exec %s %s %s %s %s >%s 2>&1 & echo $!"):format(
    H.runner, opts or "", script, sock, args or "", log)))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  running[pid] = true
  local s = { pid = pid, sock = sock, log = log }
  for _ = 1, 200 do
    if sh("test -S " .. sock) then return s end
    vfu.sleep(25)
  end
  error("server did not come up:\n" .. H.read(log))
end

function H.read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function H.connect(s)
  return assert(vfu.connect(s.sock))
end

-- Kill the server after secs seconds unless it is stopped before: a test
-- of something that used to hang fails instead of waiting for ctest.
function H.watchdog(s, secs)
  local p = assert(io.popen(("(sleep %d; kill -KILL %d) >/dev/null 2>&1 & echo $!")
    :format(secs, s.pid)))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  running[pid] = true
  s.watchdog = pid
end

local function call_off(s)
  if s.watchdog then
    sh("kill -KILL " .. s.watchdog .. " 2>/dev/null")
    running[s.watchdog] = nil
    s.watchdog = nil
  end
end

-- Wait up to secs seconds for the server to exit by itself; true if it did
-- and removed its socket.
function H.exited(s, secs)
  for _ = 1, (secs or 5) * 40 do
    -- gone, or a zombie nobody has reaped yet (its shell has exited)
    local stat = H.read("/proc/" .. s.pid .. "/stat")
    if stat == "" or stat:match("^%d+ %b() (%a)") == "Z" then
      running[s.pid] = nil
      call_off(s)
      return not sh("test -e " .. s.sock)
    end
    vfu.sleep(25)
  end
  return false
end

-- SIGTERM the server and check that it removed its socket.
function H.stop(s)
  call_off(s)
  sh("kill -TERM " .. s.pid)
  for _ = 1, 200 do
    if not sh("test -e " .. s.sock) then
      running[s.pid] = nil
      return H.read(s.log)
    end
    vfu.sleep(25)
  end
  sh("kill -KILL " .. s.pid)
  running[s.pid] = nil
  error("server did not stop cleanly:\n" .. H.read(s.log))
end

function H.eq(got, want, what)
  if got ~= want then
    error(("%s: got %s, want %s"):format(what or "value", tostring(got), tostring(want)), 2)
  end
end

-- Expect fail, msg, errno from a call.
function H.fails(errno, f, ...)
  local ok, msg, err = f(...)
  if ok ~= nil then error(("expected failure, got %s"):format(tostring(ok)), 2) end
  if errno and err ~= errno then
    error(("expected errno %d, got %s (%s)"):format(errno, tostring(err), tostring(msg)), 2)
  end
  return msg
end

-- Expect a raised error matching pattern.
function H.raises(pattern, f, ...)
  local ok, msg = pcall(f, ...)
  if ok then error("expected an error matching " .. pattern, 2) end
  if not tostring(msg):find(pattern) then
    error(("error %q does not match %q"):format(tostring(msg), pattern), 2)
  end
end

H.EIO, H.EINVAL, H.ENOENT, H.EPERM = 5, 22, 2, 1

function H.done(name)
  print(("ok - %s"):format(name))
end

return H
