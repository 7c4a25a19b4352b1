-- Argo CD health of an hrw RunbookJob (resource.customizations.health.hrw.dev_RunbookJob).
-- Succeeded is Healthy; Failed, TimedOut and Cancelled are Degraded (with the job's reason and
-- message); every other phase, or no status yet, is Progressing. Kept in step with the phase
-- machine in api/hrw_api/phases.py; tests/unit/test_argocd_health.py runs this script.
local hs = {status = "Progressing", message = "waiting for the operator to validate the job"}
if obj.status ~= nil and obj.status.phase ~= nil then
  local phase = obj.status.phase
  local detail = phase
  if obj.status.reason ~= nil then
    detail = detail .. " (" .. obj.status.reason .. ")"
  end
  if obj.status.message ~= nil and obj.status.message ~= "" then
    detail = detail .. ": " .. obj.status.message
  end
  if phase == "Succeeded" then
    hs.status = "Healthy"
  elseif phase == "Failed" or phase == "TimedOut" or phase == "Cancelled" then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = detail
end
return hs
