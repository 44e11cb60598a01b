-- wrk script: POST patients/create with a unique patientID per request (run with -t1).
local counter = 0
local run = tostring(os.time()) .. tostring(math.random(1000000))
request = function()
  counter = counter + 1
  local body = string.format('{"patientID":"WRK-%s-%d","patientName":"BENCH^MARK","userName":"bench"}', run, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Authorization"] = os.getenv("WRK_API_KEY") }, body)
end
