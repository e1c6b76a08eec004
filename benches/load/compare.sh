#!/usr/bin/env bash
# Before/after for one optimisation: several iumgate binaries side by side
# against nginx, in one run, as plain proxies (no gate) in front of the same
# upstream. Used for the "what each optimisation bought" table in
# docs/PERFORMANCE.md:
#
#   git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --profile dist --bin iumgate)
#   bash benches/load/compare.sh /tmp/before/target/dist/iumgate target/dist/iumgate
#
# ROUNDS (5) interleaved rounds of `wrk -t1 -c64 -d${DURATION}s` (5) on CPU 1;
# upstream nginx, nginx proxy and every binary on CPU 0; medians of req/s and
# of CPU µs per request (user + system ticks of the proxy ÷ requests).
# Needs nginx and wrk (`bash benches/load/run.sh` installs them).
set -euo pipefail
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
[ $# -ge 1 ] || { echo "usage: $0 IUMGATE_BINARY..." >&2; exit 2; }
for b in "$@"; do [ -x "$b" ] || { echo "$b: not an executable" >&2; exit 2; }; done
for t in nginx wrk taskset; do
    command -v "$t" >/dev/null || { echo "$t is missing: run benches/load/run.sh once (it installs it)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/iumgate-compare.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benches/load/lib.sh
. "$here/lib.sh"
wait_port() { wait_http "http://127.0.0.1:$1/"; }

mkdir -p "$work/www" "$work/tmp"
head -c 2048 /dev/zero | tr '\0' 'x' >"$work/www/2k.html"
chmod -R a+rX "$work/www"
UP=$(free_port); NP=$(free_port)
temps="client_body_temp_path $work/tmp/cb; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f; uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;"
cat >"$work/up.conf" <<EOF
worker_processes 1; pid $work/up.pid; error_log $work/up.err warn;
events { worker_connections 8192; }
http { access_log off; default_type text/html; keepalive_requests 10000000; $temps
  server { listen 127.0.0.1:$UP backlog=4096; root $work/www;
    location / { add_header X-AUSERNAME anonymous always; try_files /2k.html =404; } } }
EOF
cat >"$work/np.conf" <<EOF
worker_processes 1; pid $work/np.pid; error_log $work/np.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; $temps
  upstream app { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$NP backlog=4096;
$(nginx_proxy_location)
  } }
EOF
taskset -c 0 nginx -p "$work" -c "$work/up.conf" -g 'daemon off;' &
pids+=($!)
taskset -c 0 nginx -p "$work" -c "$work/np.conf" -g 'daemon off;' &
pids+=($!); NPID=$!
wait_port "$UP"; wait_port "$NP"

declare -A PORT PID R C
k=0
for b in "$@"; do
    k=$((k + 1)); port=$(free_port)
    printf '[proxy]\nlisten = "127.0.0.1:%s"\nupstream = "http://127.0.0.1:%s"\nmax_connections = 20000\n[admin]\nlisten = "127.0.0.1:%s"\n' \
        "$port" "$UP" "$(free_port)" >"$work/b$k.toml"
    taskset -c 0 "$b" serve --config "$work/b$k.toml" >"$work/b$k.log" 2>&1 &
    pids+=($!); PID[$k]=$!; PORT[$k]=$port
    wait_port "$port"
done

run() { # port pid → "req/s µs-per-request"
    local c0 c1 out rps reqs
    c0=$(cpu_ticks "$2")
    out=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION"s "http://127.0.0.1:$1/")
    c1=$(cpu_ticks "$2")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$rps $(awk -v d=$((c1 - c0)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')"
}
for i in $(seq 1 "$k"); do taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:${PORT[$i]}/" >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
    read -r a b < <(run "$NP" "$NPID"); R[n]+="$a "; C[n]+="$b "
    for i in $(seq 1 "$k"); do read -r a b < <(run "${PORT[$i]}" "${PID[$i]}"); R[$i]+="$a "; C[$i]+="$b "; done
    echo "== round $r done" >&2
done
nr=$(echo "${R[n]}" | med); nc=$(echo "${C[n]}" | med)
echo "compare — $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds of ${DURATION}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %10s %7s %8s %7s   %s\n' binary "req/s" "×nginx" "µs/req" "×nginx" "raw req/s"
printf '%-40s %10s %7s %8s %7s   %s\n' nginx "$nr" 1.000 "$nc" 1.00 "${R[n]}"
i=0
for b in "$@"; do
    i=$((i + 1)); r=$(echo "${R[$i]}" | med); c=$(echo "${C[$i]}" | med)
    name=$b
    if [ ${#name} -gt 40 ]; then name="…${b: -39}"; fi
    printf '%-40s %10s %7s %8s %7s   %s\n' "$name" "$r" "$(awk -v a="$r" -v b="$nr" 'BEGIN {printf "%.3f", a / b}')" \
        "$c" "$(awk -v a="$c" -v b="$nc" 'BEGIN {printf "%.2f", a / b}')" "${R[$i]}"
done
