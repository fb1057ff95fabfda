-- wrk script: POST the Send Message page's example to /v1/messages.
-- The producer token comes from the SENDQ_TOKEN environment variable.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SENDQ_TOKEN")
wrk.body = '{"agent_id":"agent_12345abcde","to_number":"+14155552671",' ..
           '"body":"Hello! Your appointment is confirmed for tomorrow at 3 PM."}'

local statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary)
  for status, count in pairs(statuses) do
    io.write(string.format("status %d: %d\n", status, count))
  end
end
