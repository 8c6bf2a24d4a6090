#!/usr/bin/env bash
# PostgreSQL's postmaster preloaded on the device, pgbench and psql on the kernel in the peer
# namespace (issue 13: a fork-per-connection server that forks its backends, and its background
# workers, while it waits in select, sometimes from its SIGCHLD handler). Debian's postgres
# (/usr/lib/postgresql/VERSION/bin, never another one on PATH) runs as nobody (postgres refuses
# root) on a cluster that initdb makes in the test's temp dir, listening on the device address.
# Checks:
#  - pgbench -i (tables made and 100,000 rows loaded with COPY), then pgbench with 4 clients and
#    a fixed number of transactions each: every transaction processed, none failed;
#  - psql: the server address the backend sees is the device's, the row counts pgbench's
#    tables must have, and the sum pgbench's updates leave (the branches' balance equals the
#    history's total);
#  - `toectl flows` names a postgres backend (not the postmaster) as the owner of a client's
#    connection while it runs;
#  - after the postmaster stopped (fast shutdown), its port binds again at once.
# Usage: bash tests/net/test_preload_postgres.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout runuser $NET_PY"
net_init "$1" 120
tr_init
preload_init
# An uninstrumented postgres with the ASan runtime preloaded hangs before main (as curl and
# nginx): the release build's run checks it (make test runs both).
preload_skip_under_asan postgres
PI=$NET_BINDIR/preload_inherit
[ -x "$PI" ] || net_die "no preload_inherit at $PI (build first)"
PORT=7432
CLIENTS=4
TX=50 # transactions per client

# Debian's build, the newest version installed; not whatever else may be on PATH.
PGBIN=
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4n); do
  [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && [ -x "$d/psql" ] && PGBIN=$d
done
if [ -z "$PGBIN" ]; then
  echo "skip - preloaded postgres (no /usr/lib/postgresql/*/bin: install postgresql, as 'make deps' does)"
  exit 0
fi
net_log "postgres from $PGBIN"
id nobody >/dev/null 2>&1 || net_die "no user nobody to run postgres as"

net_setup
# postgres runs as nobody:nogroup: the control socket is opened to that group, the temp dir made
# traversable for it.
chmod 711 "$NET_TMP"
tr_start_toed --ctl-group nogroup
PG=$NET_TMP/pg
mkdir -m 700 "$PG"
chown nobody:nogroup "$PG"
as_pg() { runuser -u nobody -- env -u PGHOST -u PGPORT HOME="$PG" "$@"; }
as_pg "$PGBIN/initdb" -D "$PG/data" -U postgres --auth=trust -E UTF8 --no-sync --no-instructions \
  >"$NET_TMP/initdb.log" 2>&1 || {
  sed 's/^/#   initdb: /' "$NET_TMP/initdb.log" | tail -10
  net_die "initdb failed"
}
echo "host all all $NET_PEER_ADDR/32 trust" >>"$PG/data/pg_hba.conf"

# The postmaster: as nobody, preloaded (TOE_STRICT), on the device address only; no fsync (the
# test is about the network, not the disk).
dev_bg timeout -k 2 100 runuser -u nobody -- "${PRE[@]}" HOME="$PG" "$PGBIN/postgres" -D "$PG/data" \
  -h "$NET_DEV_ADDR" -p "$PORT" -k "$PG" -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c logging_collector=off -c max_connections=20 \
  </dev/null >"$NET_TMP/postgres.out" 2>"$NET_TMP/postgres.err"
PG_BG=$BG_PID
wait_for 30 grep -q 'ready to accept connections' "$NET_TMP/postgres.err" || {
  sed 's/^/#   postgres: /' "$NET_TMP/postgres.err" | tail -20
  net_die "postgres did not start"
}
POSTMASTER=$(head -1 "$PG/data/postmaster.pid")

PGC=(-h "$NET_DEV_ADDR" -p "$PORT" -U postgres)
psql_q() { peer timeout -k 2 30 "$PGBIN/psql" "${PGC[@]}" -X -A -t -q -d postgres -c "$1" 2>>"$NET_TMP/psql.err"; }

check_eq "psql: the backend's server address is the device's" "$(psql_q 'select host(inet_server_addr())')" \
  "$NET_DEV_ADDR"

peer timeout -k 2 60 "$PGBIN/pgbench" "${PGC[@]}" -i -s 1 -q postgres >"$NET_TMP/init.log" 2>&1
rc=$?
check_eq "pgbench -i: exit status" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   pgbench -i: /' "$NET_TMP/init.log" | tail -10

# A held connection, to see its owner in `toectl flows`: a backend, not the postmaster.
rm -f "$NET_TMP/go"
peer_bg timeout -k 2 60 "$PGBIN/psql" "${PGC[@]}" -X -A -t -q -d postgres \
  -c "select 'held'" -c "\\! sh -c 'for i in \$(seq 300); do [ -e $NET_TMP/go ] && break; sleep 0.1; done'" \
  -c "select 'after'" >"$NET_TMP/hold.out" 2>"$NET_TMP/hold.err" </dev/null
HOLD=$BG_PID
seen=none
for _ in $(seq 200); do
  "$TOECTL" --ctl "$CTL" --json flows >"$NET_TMP/flows.json" 2>/dev/null
  seen=$(json_eval "$NET_TMP/flows.json" "next(('%s %s' % (f['pid'], f['comm']) for f in d['flows'] if f['state'] == 'ESTAB' and f['local'] and f['local']['port'] == $PORT), 'none')")
  case "$seen" in
  *" postgres") [ "${seen%% *}" != "$POSTMASTER" ] && break ;;
  esac
  kill -0 "$HOLD" 2>/dev/null || break
  sleep 0.05
done
touch "$NET_TMP/go"
wait "$HOLD"
check_eq "psql (held): exit status" "$?" 0
check_eq "psql (held): both queries answered" "$(tr '\n' ' ' <"$NET_TMP/hold.out")" "held after "
owner_pid=${seen%% *}
check_eq "toectl flows: the connection's owner is a postgres process" "${seen#* }" postgres
if [[ "$owner_pid" =~ ^[0-9]+$ ]] && [ "$owner_pid" != "$POSTMASTER" ]; then
  net_ok "toectl flows: the owner ($owner_pid) is a backend, not the postmaster ($POSTMASTER)"
else
  net_fail "toectl flows: the owner is '$seen' (the postmaster is $POSTMASTER)"
fi

peer timeout -k 2 60 "$PGBIN/pgbench" "${PGC[@]}" -c "$CLIENTS" -j 2 -t "$TX" postgres \
  >"$NET_TMP/bench.log" 2>&1
rc=$?
check_eq "pgbench: exit status" "$rc" 0
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\)\/\([0-9]*\)$/\1 \2/p' \
  "$NET_TMP/bench.log")
check_eq "pgbench: every transaction processed" "$done_tx" "$((CLIENTS * TX)) $((CLIENTS * TX))"
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$NET_TMP/bench.log")
check_eq "pgbench: no transaction failed" "${failed:-none}" 0
[ "$rc" = 0 ] || sed 's/^/#   pgbench: /' "$NET_TMP/bench.log" | tail -10

check_eq "psql: pgbench_accounts rows" "$(psql_q 'select count(*) from pgbench_accounts')" 100000
check_eq "psql: pgbench_history rows (one per transaction)" \
  "$(psql_q 'select count(*) from pgbench_history')" "$((CLIENTS * TX))"
check_eq "psql: the branches' balance is the history's total" \
  "$(psql_q 'select (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history)')" t

# The log while it served (a fast shutdown adds a FATAL line of its own for each backend or
# autovacuum worker it ends).
cp "$NET_TMP/postgres.err" "$NET_TMP/postgres.served.err"
# A fast shutdown (SIGINT to the postmaster); then the port is free at once.
kill -INT "$POSTMASTER" 2>/dev/null
wait_exit "$PG_BG" 20000
check_eq "postgres: stopped at SIGINT (fast shutdown), status" "${WAIT_STATUS:-timeout}" 0
no_sanitizer "postgres" "$NET_TMP/postgres.err"
if grep -q '^toe-preload' "$NET_TMP/postgres.err"; then
  net_fail "postgres: the library wrote to stderr"
  grep '^toe-preload' "$NET_TMP/postgres.err" | head -5 | sed 's/^/#   /'
fi
grep -E 'FATAL|PANIC|ERROR' "$NET_TMP/postgres.served.err" | head -5 | sed 's/^/#   postgres: /'
check_eq "postgres: no FATAL, PANIC or ERROR in its log while it served" \
  "$(grep -cE 'FATAL|PANIC|ERROR' "$NET_TMP/postgres.served.err")" 0
preload_run "restart" dev timeout -k 2 20 "${PRE[@]}" "$PI" bind "$NET_DEV_ADDR" "$PORT"

check_toed_exit
net_finish
