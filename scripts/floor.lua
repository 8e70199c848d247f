-- wrk script: POST /floor, the refresh's HTTP floor on limits_server. The
-- same request as scripts/refresh.lua sends (a 96-character token in the
-- same JSON), and the same search through each answer, so that the client's
-- work is the same on both sides of the ratio.
local token = string.rep("x", 96)
function request()
    return wrk.format("POST", "/floor", { ["Content-Type"] = "application/json" },
        '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
    local at = body:find('"refresh_token":"', 1, true)
    if at then token = body:sub(at + 17, at + 112) end
end
