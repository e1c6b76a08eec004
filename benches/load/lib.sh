# Helpers shared by run.sh and compare.sh (sourced, not run).

# A free TCP port on this machine.
free_port() {
    local p
    while :; do
        p=$(shuf -i 20000-59999 -n 1)
        if [ -z "$(ss -Htln "sport = :$p")" ]; then echo "$p"; return; fi
    done
}

wait_http() { # url [tries]
    local i
    for ((i = 0; i < ${2:-500}; i++)); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.02
    done
    echo "nothing answers at $1" >&2
    return 1
}

# CPU ticks (user + system) of a process and its direct children (nginx's workers).
cpu_ticks() {
    local t=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        if [ -r "/proc/$p/stat" ]; then
            t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
        fi
    done
    echo "$t"
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# nginx's reverse-proxy location towards `upstream app`: keep-alive, and the
# same forwarding headers iumgate sets.
nginx_proxy_location() {
    cat <<'LOC'
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }
LOC
}

# The median of space-separated numbers on stdin.
med() { tr ' ' '\n' | grep -v '^$' | median; }
