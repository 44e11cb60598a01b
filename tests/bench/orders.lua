-- wrk script: POST orders/create with a unique StudyInstanceUID per request (run with -t1).
local counter = 0
local run = tostring(os.time() % 100000) .. tostring(math.random(100000))
request = function()
  counter = counter + 1
  local body = string.format([[{"ScheduledStationAETitle":"ROOM-%d","ScheduledProcedureStepStartDate":"20250101","ScheduledProcedureStepStartTime":"101500","Modality":"CT","ScheduledProcedureStepDescription":"Bench","StudyInstanceUID":"1.2.826.7.%s.%d","AccessionNumber":"A%d","PatientName":"BENCH^MARK","PatientID":"BENCH-%d"}]],
    counter % 10, run, counter, counter % 1000000, counter % 100)
  return wrk.format("POST", nil, { ["Content-Type"] = "text/json; charset=utf-8", ["Authorization"] = os.getenv("WRK_API_KEY") }, body)
end
