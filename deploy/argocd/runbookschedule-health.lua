-- Argo CD health of an hrw RunbookSchedule (resource.customizations.health.hrw.dev_RunbookSchedule).
-- Degraded when its Ready condition is False (a bad cron expression or time zone, a runbook or
-- group that does not exist, parameters that do not fit: the message names it); Suspended when
-- spec.suspend is true; Progressing until the operator has looked at the current generation;
-- otherwise Healthy. A failed run is not the schedule's health: see its jobs.
-- tests/unit/test_argocd_health.py runs this script.
local hs = {status = "Progressing", message = "waiting for the operator to read the schedule"}
if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  return hs
end
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.reason .. ": " .. condition.message
      return hs
    end
  end
end
if obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no new job is created"
  return hs
end
hs.status = "Healthy"
hs.message = "next runs on schedule " .. obj.spec.schedule
return hs
