#!/usr/bin/env bash
# Same-run comparison of license-agent against redis-server on this machine (the acceptance
# figures of docs/performance.md). Builds nothing: pass a build dir made with -DLA_BUILD_PERF=ON
# (RelWithDebInfo or Release). Everything lives in a temp dir that is removed on exit.
#
# Usage: perf/compare.sh BUILD_DIR [SECONDS=10]
#   env: CONNS=32 DEPTH=16 REDIS_N=2000000 MICRO=1 (0 skips the in-process micro benchmark)
#        AGENT=/path/to/license-agent (default BUILD_DIR/net/license-agent; for A/B runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: perf/compare.sh BUILD_DIR [SECONDS]}" && pwd)
secs=${2:-10}
conns=${CONNS:-32}
depth=${DEPTH:-16}
redis_n=${REDIS_N:-2000000}
agent=${AGENT:-$build/net/license-agent}
loadgen=$build/perf/loadgen
micro=$build/perf/micro_bench
mint=(/usr/bin/python3 "$root/tests/support/mint.py")
for exe in "$agent" "$loadgen"; do
  [[ -x $exe ]] || { echo "missing $exe (build with -DLA_BUILD_PERF=ON)" >&2; exit 2; }
done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "redis-server / redis-benchmark not found (apt-get install redis-server redis-tools)" >&2; exit 2; }

work=$(mktemp -d /tmp/la-compare.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*" >&2; }
wait_socket() { for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "no socket $1" >&2; return 1; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "keys and tokens (mint.py) in $work"
"${mint[@]}" keys --out "$work/keys" --signing-kids k1 --secret-versions 1 >&2
now=$(date +%s)
# A realistic license: ten features, two versions, four meta entries.
claims() {
  printf '{"jti":"LIC-2026-%06d","iss":"https://licenses.example.com","sub":"customer-%06d","product":"pos-suite","lic_type":"subscription","iat":%d,"exp":%d,"features":["sales","inventory","loyalty","gift-cards","reports","multi-store","kitchen-display","online-orders","payroll","analytics"],"versions":["17.0","17.1"],"meta":{"seats":"12","tier":"gold","region":"eu-west","reseller":"acme-pos"}}' \
    "$1" "$1" "$now" $((now + 365 * 86400))
}
# 64 distinct sealed tokens (so nothing could be cached even if the engine tried) and one signed.
batch='['
for i in $(seq 1 64); do
  batch+="{\"name\":\"s$i\",\"cmd\":\"seal\",\"kid\":\"1\",\"claims\":$(claims "$i")},"
done
batch+="{\"name\":\"jws\",\"cmd\":\"sign\",\"kid\":\"k1\",\"claims\":$(claims 0)}]"
"${mint[@]}" batch --keys "$work/keys" <<<"$batch" > "$work/minted.txt"
grep '^s' "$work/minted.txt" | cut -d' ' -f2 > "$work/sealed.txt"
grep '^jws ' "$work/minted.txt" | cut -d' ' -f2 > "$work/signed.txt"
echo "sealed tokens: $(wc -l < "$work/sealed.txt") x ~$(head -1 "$work/sealed.txt" | wc -c) B;" \
     "signed token: $(wc -c < "$work/signed.txt") B" >&2

# write_config NAME CACHE_ENTRIES
write_config() {
  cat > "$work/$1.toml" <<TOML
[agent]
id = "perf-$1"
state_dir = "$work/state-$1"
[ipc]
socket = "$work/$1.sock"
admin_socket = "$work/$1-admin.sock"
socket_mode = "0600"
allowed_uids = [$(id -u)]
admin_uids = [$(id -u)]
max_connections = 4096
[licenses]
issuer = "https://licenses.example.com"
signing_keys = "$work/keys/signing-keys.json"
cache_entries = $2
[secrets]
backend = "file"
file = "$work/keys/secrets.json"
TOML
  chmod 600 "$work/$1.toml"
}
write_config nocache 0
write_config cached 4096

say "redis-server on a Unix socket + redis-benchmark ping_inline -c $conns"
redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no --daemonize no \
  > "$work/redis.log" 2>&1 &
pids+=($!)
wait_socket "$work/redis.sock"
redis_t0=$(awk '{print $14 + $15}' "/proc/${pids[-1]}/stat")
redis_out=$(redis-benchmark -s "$work/redis.sock" -c "$conns" -t ping_inline -n "$redis_n" -q 2>&1 | tr '\r' '\n' | grep -E 'PING_INLINE: [0-9.]+ requests per second' | tail -1)
echo "$redis_out" >&2
redis_rps=$(sed -E 's/.*PING_INLINE: ([0-9.]+) requests per second.*/\1/' <<<"$redis_out")
redis_p50=$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$redis_out")
redis_cpu=$(awk -v t="$(( $(awk '{print $14 + $15}' "/proc/${pids[-1]}/stat") - redis_t0 ))" \
  -v hz="$(getconf CLK_TCK)" -v n="$redis_n" 'BEGIN{printf "%.2f", t / hz * 1e6 / n}')
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

# run_agent NAME: starts the agent with NAME.toml and leaves its pid in agent_pid.
run_agent() {
  "$agent" --config "$work/$1.toml" 2> "$work/agent-$1.log" &
  agent_pid=$!
  pids+=("$agent_pid")
  wait_socket "$work/$1.sock"
}
stop_agent() { kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; unset 'pids[-1]'; }

json() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/$1.json" "$2"; }
# CPU time (clock ticks, user + system) the agent has used so far.
agent_ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
# load NAME CONFIG DEPTH TOKENS: one loadgen run, JSON kept in $work/NAME.json, and the agent's
# CPU per answer in $work/NAME.cpu (µs): unlike req/s, it barely moves when other processes
# compete for the two cores.
load() {
  say "loadgen $1: $conns connections, pipeline $3, $(basename "$4") (agent config $2)"
  local t0; t0=$(agent_ticks)
  "$loadgen" --socket "$work/$2.sock" --connections "$conns" --pipeline "$3" --duration "$secs" \
    --warmup 1 --tokens "$4" --product pos-suite --feature loyalty --json | tee "$work/$1.json" >&2
  awk -v t="$(( $(agent_ticks) - t0 ))" -v hz="$(getconf CLK_TCK)" -v n="$(json "$1" answers_total)" \
    'BEGIN{printf "%.2f", t / hz * 1e6 / n}' > "$work/$1.cpu"
}

run_agent nocache
load sealed nocache 1 "$work/sealed.txt"
stop_agent
run_agent cached
load signed_p1 cached 1 "$work/signed.txt"
load signed_p16 cached "$depth" "$work/signed.txt"
stop_agent

printf '\nload average before/after: %s / %s\n' "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| run | req/s | p50 µs | p99 µs | p99.9 µs | errors | agent CPU µs/req | vs redis |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| redis-benchmark ping_inline, %s conns, no pipeline | %.0f | %s | | | | %s (redis-server) | 1.00× |\n' \
  "$conns" "$redis_rps" "$(awk -v m="${redis_p50:-0}" 'BEGIN{printf "%.0f", m*1000}')" "$redis_cpu"
row() {
  printf '| %s | %.0f | %.1f | %.1f | %.1f | %s | %s | %.2f× |\n' "$2" "$(json "$1" requests_per_s)" \
    "$(json "$1" p50_us)" "$(json "$1" p99_us)" "$(json "$1" p999_us)" "$(json "$1" errors)" "$(cat "$work/$1.cpu")" \
    "$(awk -v a="$(json "$1" requests_per_s)" -v b="$redis_rps" 'BEGIN{print a/b}')"
}
row sealed "(i) sealed, $conns conns, pipeline 1, cache off"
row signed_p16 "(ii) signed cached, $conns conns, pipeline $depth"
row signed_p1 "signed cached, $conns conns, pipeline 1"

if [[ ${MICRO:-1} != 0 && -x $micro ]]; then
  say "in-process: cold signed validation vs bare Ed25519 verify (iii)"
  "$micro" --benchmark_filter='Ed25519VerifyBare|JwsValidateCold' --benchmark_repetitions=10 \
    --benchmark_enable_random_interleaving=true --benchmark_format=json 2>/dev/null > "$work/micro.json"
  # Median and minimum of the repetitions: under CPU contention the minimum is the steadier one.
  /usr/bin/python3 - "$work/micro.json" <<'PY'
import json, statistics, sys
runs = {}
for x in json.load(open(sys.argv[1]))["benchmarks"]:
    if x.get("run_type") == "iteration":
        runs.setdefault(x["run_name"], []).append(x["cpu_time"])
e, j = runs["BM_Ed25519VerifyBare"], runs["BM_JwsValidateCold"]
me, mj = statistics.median(e), statistics.median(j)
print("\n| (iii) in-process, 10 interleaved repetitions | median ns | min ns |\n|---|---:|---:|")
print(f"| bare Ed25519 verify | {me:.0f} | {min(e):.0f} |")
print(f"| cold signed validation | {mj:.0f} | {min(j):.0f} |")
print(f"| ratio | {mj/me:.3f}× | {min(j)/min(e):.3f}× |")
PY
fi
