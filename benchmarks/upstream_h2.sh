#!/usr/bin/env bash
# Upstream HTTP/2 vs HTTP/1.1 through the proxy: h2load (100 streams on one h2c connection)
# -> `modelmux serve` (proxy, CPU 0, openai_compatible with http2 = true|false)
# -> `modelmux serve` (mock upstream, CPU 1). Prints h2load's summary, each process's CPU
# per request and the number of upstream connections. Needs h2load (nghttp2-client).
# usage: benchmarks/upstream_h2.sh true|false [requests] [stream: true|false]
set -euo pipefail
http2=$1 n=${2:-10000} stream=${3:-false}
mm=${MODELMUX:-modelmux}
up_port=18401 proxy_port=18402
dir=$(mktemp -d)
cat >"$dir/up.toml" <<EOF
[server]
port = $up_port
[logging]
level = "warn"
[[provider]]
name = "mock"
type = "mock"
models = ["mock"]
chunks = 10
EOF
cat >"$dir/proxy.toml" <<EOF
[server]
port = $proxy_port
[logging]
level = "warn"
[[provider]]
name = "up"
type = "openai_compatible"
models = ["mock"]
base_url = "http://127.0.0.1:$up_port/v1"
http2 = $http2
EOF
printf '{"model":"mock","stream":%s,"messages":[{"role":"user","content":"hi"}]}' "$stream" \
    >"$dir/body.json"
taskset -c 1 "$mm" serve -c "$dir/up.toml" --control-socket off >"$dir/up.log" 2>&1 &
up=$!
taskset -c 0 "$mm" serve -c "$dir/proxy.toml" --control-socket off >"$dir/proxy.log" 2>&1 &
proxy=$!
trap 'kill $up $proxy 2>/dev/null; wait $up $proxy 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$proxy_port/health" &&
        curl -sf -o /dev/null "http://127.0.0.1:$up_port/health" && break
    sleep 0.1
done
load() {
    taskset -c 1 h2load -n "$1" -c 1 -m 100 -d "$dir/body.json" \
        -H 'content-type: application/json' "http://127.0.0.1:$proxy_port/v1/chat/completions"
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load 2000 >/dev/null  # warm-up: connections open, code paths hot
p0=$(cpu $proxy) u0=$(cpu $up)
load "$n" | grep -E 'finished in|requests:|status codes'
p1=$(cpu $proxy) u1=$(cpu $up) hz=$(getconf CLK_TCK)
echo "CPU per request: proxy $(((p1 - p0) * 1000000 / hz / n)) us," \
    "upstream $(((u1 - u0) * 1000000 / hz / n)) us"
echo "upstream connections: $(ss -tn state established "( dport = :$up_port )" | tail -n +2 | wc -l)"
