-- Argo CD health of a familyhub.dev object (the same rules for every kind).
-- The status is in kstatus form: the operator writes status.observedGeneration
-- and the conditions Ready, Reconciling, Degraded and, when only a change of
-- the spec or of what it refers to can help, Stalled; an object that applies
-- nothing on purpose (a Service in plan mode or suspended) has Suspended=True
-- (src/core/README.md).
-- The CRD defaults status.observedGeneration to 0, so an object no operator
-- has seen yet is Progressing, never Healthy.
local hs = { status = "Progressing", message = "Waiting for the FamilyHub operator" }
local st = obj.status
if st == nil then
  return hs
end
local generation = tonumber(obj.metadata.generation)
local observed = tonumber(st.observedGeneration)
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if type(st.conditions) == "table" then
  for _, c in ipairs(st.conditions) do
    if type(c) == "table" and c.type ~= nil then
      conditions[c.type] = c
    end
  end
end
local function isTrue(c) return c ~= nil and c.status == "True" end
local function describe(c)
  local text = c.message or ""
  if c.reason ~= nil and c.reason ~= "" then
    text = c.reason .. ": " .. text
  end
  return text
end
-- A condition computed for an older generation says nothing about this one.
local function current(c)
  return c ~= nil and (c.observedGeneration == nil or generation == nil or tonumber(c.observedGeneration) == generation)
end

local ready, stalled = conditions["Ready"], conditions["Stalled"]
local reconciling, degraded = conditions["Reconciling"], conditions["Degraded"]
local suspended = conditions["Suspended"]
if isTrue(stalled) and current(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif isTrue(suspended) and current(suspended) then
  hs.status = "Suspended"
  hs.message = describe(suspended)
elseif isTrue(ready) and current(ready) then
  hs.status = "Healthy"
  hs.message = ready.message or ""
elseif isTrue(reconciling) and current(reconciling) then
  hs.message = describe(reconciling)
elseif isTrue(degraded) and current(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded)
elseif ready ~= nil and current(ready) then
  hs.message = describe(ready)
end
return hs
