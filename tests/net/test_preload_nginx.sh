#!/usr/bin/env bash
# nginx, unmodified, under libtoe-preload (docs/interception.md "fork and exec"): a master process
# and 2 pre-forked workers share one offloaded listener (SHARE/ADOPT, docs/transport.md), with
# sendfile, epoll and accept_mutex off, in the device namespace on the device address :80; its
# own conf, pid, logs and temp directories under $NET_TMP. From the peer (kernel clients):
#  - curl of a 100 MiB file (SHA-256 equal) and many small requests, each body checked;
#  - wrk -d 3 -c 8 -t 2, keep-alive and with "Connection: close": requests over a floor, no socket
#    errors, no non-2xx answers;
#  - the access log (log_format with $pid) shows that BOTH workers served requests;
#  - toectl flows lists nginx's listener and connections (owned by the workers' pids);
#  - SIGQUIT to the master: nginx ends cleanly (exit 0), and the device holds no socket of it any
#    more (transport.socks_inuse back to 0, share tokens adopted or expired);
# and the other way round: a preloaded curl in the device namespace fetches 100 MiB from a KERNEL
# nginx in the peer namespace (SHA-256 equal).
# Usage: bash tests/net/test_preload_nginx.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout curl wrk nginx sha256sum ss $NET_PY"
net_init "$1" 300
tr_init
preload_init
preload_skip_under_asan nginx
NGINX=$(command -v nginx)
SIZE_MB=${TOE_NGINX_MB:-100}


net_setup
# nginx's workers run as nobody:nogroup, as in a default nginx set-up: the control socket is
# opened to that group (toed --ctl-group), and the temp dir made traversable for it.
chmod 711 "$NET_TMP"
start_toed_nopcap --ctl "$CTL" --ctl-group nogroup
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# ---- nginx's files: everything under $NET_TMP ----------------------------------------------------
# nginx_conf DIR ADDR WORKERS: writes DIR/nginx.conf serving DIR/www on ADDR:80. The master runs
# as root and the workers switch to nobody before their first use of the listener: they adopt a
# root sharer's token, which the device allows (docs/interception.md "fork and exec").
nginx_conf() {
  local d=$1 addr=$2 workers=$3
  mkdir -p "$d/www" "$d/logs" "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
user nobody nogroup;
worker_processes $workers;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events {
  use epoll;
  accept_mutex off;
  worker_connections 256;
}
http {
  access_log off;
  log_format withpid '\$pid \$status \$request_uri \$body_bytes_sent';
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  sendfile on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  server {
    listen $addr:80 reuseport=off;
    access_log $d/logs/access.log withpid;
    root $d/www;
  }
}
EOF
  # nginx 1.22 knows no "reuseport=off": a plain listen.
  sed -i 's/ reuseport=off//' "$d/nginx.conf"
}

N=$NET_TMP/ngx
nginx_conf "$N" "$NET_DEV_ADDR" 2
head -c "$((SIZE_MB * 1048576))" /dev/urandom >"$N/www/big.bin" || net_die "cannot write the data"
BIG_SHA=$(sha "$N/www/big.bin")
for i in $(seq 0 49); do printf 'small file %d\n' "$i" >"$N/www/s$i.txt"; done

toectl_json "$NET_TMP/stats0.json" stats
dev_bg env "LD_PRELOAD=$PRELOAD" TOE_CTL="$CTL" TOE_STRICT=1 TOE_OFFLOAD="listen:*:80" \
  "$NGINX" -p "$N" -c "$N/nginx.conf" >"$NET_TMP/nginx.out" 2>"$NET_TMP/nginx.err" </dev/null
MASTER=$BG_PID
URL=http://$NET_DEV_ADDR
up() { peer curl -s -m 2 -o /dev/null "$URL/s0.txt"; }
wait_for 15 up || {
  sed 's/^/#   /' "$NET_TMP/nginx.err" "$N/logs/error.log" | head -20
  net_die "nginx did not answer on $URL"
}
WORKERS=$(ps -o pid= --ppid "$MASTER" | tr -d ' ' | sort -n | tr '\n' ' ')
check_eq "nginx: 2 workers forked by the master" "$(wc -w <<<"$WORKERS")" 2
check_eq "nginx: the workers run as nobody (user nobody nogroup)" \
  "$(for w in $WORKERS; do ps -o user= -p "$w"; done | sort -u | tr -d ' ')" nobody
check "nginx: the kernel of the device namespace does not listen on :80 (the device does)" \
  test -z "$(dev ss -Htln 'sport = :80')"

# ---- 1. a big file: sendfile through the device --------------------------------------------------
T0=$(date +%s%N)
peer timeout -k 2 120 curl -sS --fail -o "$NET_TMP/big.got" "$URL/big.bin" 2>"$NET_TMP/curl-big.err"
check_eq "curl of ${SIZE_MB} MiB: exit status" "$?" 0
check_eq "curl of ${SIZE_MB} MiB: SHA-256 equal" "$(sha "$NET_TMP/big.got" 2>/dev/null)" "$BIG_SHA"
net_log "${SIZE_MB} MiB from nginx in $(ms_since "$T0") ms"
rm -f "$NET_TMP/big.got"

# ---- 2. many small requests, each on its own connection ------------------------------------------
bad=0
for i in $(seq 0 199); do
  f=s$((i % 50)).txt
  got=$(peer curl -sS -m 5 "$URL/$f" 2>>"$NET_TMP/curl-small.err")
  [ "$got" = "small file $((i % 50))" ] || bad=$((bad + 1))
done
check_eq "200 small requests (new connection each): wrong or missing bodies" "$bad" 0

# ---- 3. wrk: keep-alive, then Connection: close ---------------------------------------------------
# run_wrk NAME ARGS...: checks requests > floor, no socket errors, no non-2xx answers.
run_wrk() {
  local name=$1 out=$NET_TMP/wrk-$1.txt
  shift
  peer timeout -k 2 30 wrk -d 3 -c 8 -t 2 "$@" "$URL/s1.txt" >"$out" 2>&1
  check_eq "wrk $name: exit status" "$?" 0
  local reqs
  reqs=$(awk '/requests in/ {print $1; exit}' "$out")
  check_ge "wrk $name: requests in 3 s" "$(num "$reqs")" 300
  check "wrk $name: no socket errors" bash -c "! grep -q 'Socket errors' '$out'"
  check "wrk $name: no non-2xx or 3xx answers" bash -c "! grep -q 'Non-2xx' '$out'"
  net_log "wrk $name: $(grep -E 'Requests/sec' "$out" | tr -s ' ')"
}
run_wrk keepalive
run_wrk close -H 'Connection: close'

# ---- 4. both workers served (access log with $pid) ------------------------------------------------
for w in $WORKERS; do
  n=$(awk -v p="$w" '$1 == p' "$N/logs/access.log" | wc -l)
  check_ge "access log: worker $w served requests" "$n" 1
done
check_eq "access log: only the workers served (no other pid)" \
  "$(awk '{print $1}' "$N/logs/access.log" | sort -u | grep -vcxE "$(tr ' ' '|' <<<"${WORKERS% }")")" 0
check_eq "access log: only 200 answers" "$(awk '$2 != 200' "$N/logs/access.log" | wc -l)" 0

# ---- 5. toectl flows: the listener and the connections of the workers ----------------------------
peer timeout -k 2 20 curl -sS -o /dev/null --limit-rate 2M "$URL/big.bin" 2>/dev/null &
SLOW=$!
has_conn() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [ "$(json_eval "$NET_TMP/flows.json" "len([f for f in d['flows'] if f['proto'] == 'tcp' and f['local']['port'] == 80 and f['state'] == 'ESTAB' and str(f['pid']) in '$WORKERS'.split()])")" -ge 1 ] 2>/dev/null
}
wait_for 10 has_conn
check "toectl flows: a connection to :80 owned by a worker" has_conn
check_ge "toectl flows: the listener on :80 is listed" \
  "$(json_eval "$NET_TMP/flows.json" "len([f for f in d['flows'] if f['proto'] == 'tcp' and f['state'] == 'LISTEN' and f['local']['port'] == 80 and str(f['pid']) in '$WORKERS $MASTER'.split()])")" 1
kill "$SLOW" 2>/dev/null
wait "$SLOW" 2>/dev/null

# ---- 6. nginx -s quit: a clean end, nothing left on the device -----------------------------------
toectl_json "$NET_TMP/stats1.json" stats
check_ge "transport: share tokens issued (one per worker at least)" \
  "$(stat_get "$NET_TMP/stats1.json" transport.share_tokens)" 2
check_ge "transport: share tokens adopted by the workers" \
  "$(stat_get "$NET_TMP/stats1.json" transport.share_adopted)" 2
check_eq "transport: no ADOPT refused" "$(stat_get "$NET_TMP/stats1.json" transport.share_refused)" 0
kill -QUIT "$MASTER"
wait_exit "$MASTER" 20000
check_eq "nginx: exit status after SIGQUIT" "$WAIT_STATUS" 0
check_eq "nginx: no alert or emergency in its error log" \
  "$(grep -cE '\[(alert|emerg|crit)\]' "$N/logs/error.log")" 0
released() { [ "$(stat_now transport.socks_inuse)" = 0 ]; }
wait_for 15 released
check_eq "transport: no socket left held (socks_inuse)" "$(stat_now transport.socks_inuse)" 0
check_eq "transport: no shared socket left (share_inuse)" "$(stat_now transport.share_inuse)" 0

# ---- 7. a preloaded curl fetching from a KERNEL nginx in the peer --------------------------------
K=$NET_TMP/kngx
nginx_conf "$K" "$NET_PEER_ADDR" 1
ln "$N/www/big.bin" "$K/www/big.bin" 2>/dev/null || cp "$N/www/big.bin" "$K/www/big.bin"
peer_bg "$NGINX" -p "$K" -c "$K/nginx.conf" >"$NET_TMP/knginx.out" 2>"$NET_TMP/knginx.err" </dev/null
KMASTER=$BG_PID
wait_for 10 peer_listening 80 || net_die "the kernel nginx did not listen"
dev timeout -k 2 120 env "LD_PRELOAD=$PRELOAD" TOE_CTL="$CTL" TOE_STRICT=1 curl -sS --fail \
  -o "$NET_TMP/kbig.got" "http://$NET_PEER_ADDR/big.bin" 2>"$NET_TMP/kcurl.err"
check_eq "preloaded curl from a kernel nginx: exit status" "$?" 0
check_eq "preloaded curl from a kernel nginx: SHA-256 of ${SIZE_MB} MiB" \
  "$(sha "$NET_TMP/kbig.got" 2>/dev/null)" "$BIG_SHA"
rm -f "$NET_TMP/kbig.got"
kill -QUIT "$KMASTER" 2>/dev/null
wait_exit "$KMASTER" 10000

check_toed_exit
net_finish
