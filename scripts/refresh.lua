-- wrk script: POST /auth/refresh over a pool of live sessions, each refreshed
-- again and again. Each thread takes every n-th session of the pool (the file
-- named by $REFRESH_TOKENS, one token a line; $THREADS threads) and keeps a
-- queue of their current refresh tokens: a request takes the oldest, its
-- answer queues the successor. Every token is presented once.
local threads = {}
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
    thread:set("of", tonumber(os.getenv("THREADS")))
    thread:set("tokens", os.getenv("REFRESH_TOKENS"))
    table.insert(threads, thread)
end
function init(args)
    queue, head, tail, server_errors, refused, answered = {}, 1, 0, 0, 0, 0
    local n = 0
    for line in io.lines(tokens) do
        n = n + 1
        if n % of == id - 1 then tail = tail + 1; queue[tail] = line end
    end
end
function request()
    local token = queue[head]
    if token == nil then token = "the-pool-of-sessions-ran-out" else queue[head] = nil; head = head + 1 end
    return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" },
        '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
    if status >= 500 then server_errors = server_errors + 1 end
    if status == 401 then refused = refused + 1 end
    -- A plain search and a fixed-length cut (tokens are 96 characters): wrk
    -- shares the two cores with the server, so its own work must stay small.
    local at = body:find('"refresh_token":"', 1, true)
    if at then
        answered = answered + 1
        tail = tail + 1
        queue[tail] = body:sub(at + 17, at + 112)
    end
end
function done(summary, latency, requests)
    local errors, unauthorized, rotations = 0, 0, 0
    for _, thread in ipairs(threads) do
        errors = errors + thread:get("server_errors")
        unauthorized = unauthorized + thread:get("refused")
        rotations = rotations + thread:get("answered")
    end
    io.write(string.format("5xx: %d, 401: %d, rotations: %d\n", errors, unauthorized, rotations))
end
