-- POST the chat completion body `modelmux bench` sends, byte for byte, so both tools load the
-- same work: wrk -t1 -c32 -d5s -s benchmarks/wrk_post.lua http://127.0.0.1:PORT/v1/chat/completions
-- Optional script arguments after `--`: MODEL PAYLOAD_BYTES stream (defaults: mock 100, no stream).

local words = "The quick brown fox jumps over the lazy dog. "

local function prompt(size)
   local text = string.rep(words, math.floor(size / #words) + 1)
   return string.sub(text, 1, size)
end

function init(args)
   local model = args[1] or "mock"
   local size = tonumber(args[2] or "100")
   local stream = args[3] == "stream"
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = stream and "text/event-stream" or "application/json"
   wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"'
      .. prompt(size) .. '"}]' .. (stream and ',"stream":true' or '') .. '}'
end
