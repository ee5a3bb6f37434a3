-- wrk script for bench/serving_bench.py: POST the JSON body in the file named by
-- WRK_BODY_FILE to the URL's path, and print one JSON line of results when done.
--   WRK_BODY_FILE=body.json wrk -t2 -c32 -d10s -s post.lua http://127.0.0.1:PORT/predict
-- errors_status counts responses with status > 399 (wrk's "Non-2xx or 3xx responses");
-- connect/read/write/timeout are socket errors.

local f = assert(io.open(assert(os.getenv("WRK_BODY_FILE"), "WRK_BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
    '"errors_status": %d, "errors_timeout": %d, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %.1f, ' ..
    '"max": %d, "stdev": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max, latency.stdev))
end
