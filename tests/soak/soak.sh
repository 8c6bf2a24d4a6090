#!/usr/bin/env bash
# make soak: long mixed traffic through an impaired link while clients are killed and toed is
# restarted; at the end every byte verified, every buffer and descriptor returned, memory flat
# (issue 12 item 15). Not part of make test (an hour by default).
#
#   toed --wire wire0 (echo service, control socket) <-> [mid: toe-impair, loss, duplication,
#   reordering, delay] <-> peer0 (kernel clients, and a kernel echo server for the preloaded ones)
#
# Every round (SOAK_ROUND_S seconds of traffic, default 60), at once:
#   bulk     a kernel client sends 8 MiB to toed's echo and reads it back (SHA-256 compared);
#   short    50 sequential and 50 concurrent connections, 1000 bytes each, echoed and checked;
#   udp      300 datagrams of many sizes echoed (each retried up to 10 times through the loss);
#   preload  four preloaded clients in the device namespace (the device's connections, libtoe
#            sessions) each echo 4 MiB through a kernel echo server in the peer; two of them are
#            killed with SIGKILL at a random moment; the other two must verify every byte.
# After each round: toed's descriptors, its RSS and its engine counters (toectl stats) are
# sampled. Every SOAK_RESTART_EVERY rounds (default 5) toed is stopped with SIGTERM (it must exit
# 0 with every packet buffer back and no connection left) and started again.
# Judged at the end: every transfer of every round complete and intact; toed's descriptor count
# at each round's end equal to its count after the first round of its life; its RSS at the last
# round of each life no more than 8 MiB above the second round's (warm-up excluded).
#
# Usage: bash tests/soak/soak.sh BINDIR   (root). SOAK_MINUTES (default 60) sets the length.
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/../net/lib.sh"
source "$(dirname "$0")/../net/transport_lib.sh"
source "$(dirname "$0")/../net/preload_lib.sh"

MINUTES=${SOAK_MINUTES:-60}
ROUND_S=${SOAK_ROUND_S:-60}
RESTART_EVERY=${SOAK_RESTART_EVERY:-5}
ROUNDS=$(((MINUTES * 60 + ROUND_S - 1) / ROUND_S))
((ROUNDS >= 2)) || ROUNDS=2
NET_REQUIRED_TOOLS="ip ping timeout $NET_PY"
net_init "${1:-}" $((ROUNDS * (ROUND_S + 120) + 300))
tr_init
preload_init
[ -x "$NET_BINDIR/toe-impair" ] || net_die "no toe-impair in $NET_BINDIR (build first)"
MIB=$((1 << 20))
KECHO=7100
net_log "soak: $ROUNDS rounds of ${ROUND_S}s, toed restarted every $RESTART_EVERY rounds"

net_setup_impaired
IMPAIR=(--limit 100000 --loss 0.5% --dup 0.5% --reorder 2% --delay 2ms --jitter 1ms --seed 7)
impair_start "${IMPAIR[@]}" || net_die "toe-impair does not start"
peer_bg timeout -k 2 $((ROUNDS * (ROUND_S + 120) + 200)) "$NET_PY" "$NET_LIB_DIR/peer_servers.py" \
  "$NET_PEER_ADDR" "$KECHO" $((KECHO + 1)) >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 grep -q ready "$NET_TMP/servers.log" || net_die "the peer's servers did not start"

LIFE=0
start_life() {
  LIFE=$((LIFE + 1))
  LIFE_ROUND=0
  start_toed_nopcap --service echo --ctl "$CTL"
  wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
}
fds_of() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

start_life
bad_rounds=0
for ((round = 1; round <= ROUNDS; round++)); do
  LIFE_ROUND=$((LIFE_ROUND + 1))
  R=$NET_TMP/r$round
  mkdir -p "$R"
  end=$((SECONDS + ROUND_S))
  # Work that repeats until the round's time is up, each piece checked as it ends.
  (
    i=0
    while ((SECONDS < end)); do
      i=$((i + 1))
      peer_py 300 tcp_tool.py echo "$NET_DEV_ADDR" 7 --bytes $((8 * MIB)) --seed $((round * 1000 + i)) \
        --timeout 60 >"$R/bulk.$i" 2>&1
    done
  ) &
  BULK=$!
  (
    i=0
    while ((SECONDS < end)); do
      i=$((i + 1))
      peer_py 300 tcp_tool.py conns "$NET_DEV_ADDR" 7 --sequential 50 --concurrent 50 --bytes 1000 \
        --timeout 30 >"$R/short.$i" 2>&1
    done
  ) &
  SHORT=$!
  (
    i=0
    while ((SECONDS < end)); do
      i=$((i + 1))
      peer_py 300 udp_tool.py echo --host "$NET_DEV_ADDR" --port 7 --count 300 --retries 10 \
        --timeout 0.5 --seed $((round * 1000 + i)) >"$R/udp.$i" 2>&1
    done
  ) &
  UDP=$!
  # The preloaded clients: two live to the end, two are killed at a random moment.
  PIDS=()
  for k in 1 2 3 4; do
    # ip netns exec and env exec: the PID is the client's own, so SIGKILL reaches it
    dev "${PRE[@]}" "$NET_PY" "$NET_LIB_DIR/tcp_tool.py" echo \
      "$NET_PEER_ADDR" "$KECHO" --bytes $((4 * MIB)) --seed $((round * 10 + k)) --timeout 60 \
      >"$R/pre.$k" 2>"$R/pre.$k.err" </dev/null &
    PIDS+=("$!")
    net_bg_add "$!"
  done
  sleep $((RANDOM % (ROUND_S / 2 + 1)))
  kill -KILL "${PIDS[2]}" "${PIDS[3]}" 2>/dev/null
  { wait "$BULK" "$SHORT" "$UDP" "${PIDS[@]}"; } 2>/dev/null # (bash would report the killed two)

  # ---- judge the round ----
  fails=0
  for f in "$R"/bulk.*; do
    out=$(cat "$f")
    [ "$(kv received "$out")/$(kv first_bad_offset "$out")/$(kv send_error "$out")/$(kv recv_error "$out")" = \
      "$((8 * MIB))/-1/none/none" ] && [ "$(kv received_sha256 "$out")" = "$(kv sent_sha256 "$out")" ] ||
      { fails=$((fails + 1)); net_log "round $round: bulk $(basename "$f"): $(tr '\n' ' ' <"$f" | head -c 300)"; }
  done
  for f in "$R"/short.*; do
    out=$(cat "$f")
    [ "$(kv sequential_ok "$out")/$(kv concurrent_ok "$out")" = 50/50 ] ||
      { fails=$((fails + 1)); net_log "round $round: short $(basename "$f"): $(tr '\n' ' ' <"$f" | head -c 300)"; }
  done
  for f in "$R"/udp.*; do
    out=$(cat "$f")
    ok=$(kv ok "$out")
    sent=$(kv sent "$out")
    [ -n "$ok" ] && [ "$ok" = "$sent" ] ||
      { fails=$((fails + 1)); net_log "round $round: udp $(basename "$f"): $(tr '\n' ' ' <"$f" | head -c 300)"; }
  done
  for k in 1 2; do
    out=$(cat "$R/pre.$k")
    [ "$(kv received "$out")/$(kv first_bad_offset "$out")" = "$((4 * MIB))/-1" ] &&
      [ "$(kv received_sha256 "$out")" = "$(kv sent_sha256 "$out")" ] ||
      { fails=$((fails + 1)); net_log "round $round: preloaded client $k: $(tr '\n' ' ' <"$R/pre.$k" | head -c 300) $(head -3 "$R/pre.$k.err" | tr '\n' ' ')"; }
  done
  nb=$(ls "$R"/bulk.* | wc -l)
  ns=$(ls "$R"/short.* | wc -l)
  nu=$(ls "$R"/udp.* | wc -l)
  sleep 2 # the killed clients' sessions end (toed notices the closed control socket)
  fds=$(fds_of "$NET_TOED_PID")
  rss=$(rss_of "$NET_TOED_PID")
  ((LIFE_ROUND == 1)) && LIFE_FDS=$fds
  ((LIFE_ROUND == 2)) && LIFE_RSS2=$rss
  net_log "round $round (life $LIFE.$LIFE_ROUND): $nb bulk, $ns short, $nu udp runs, 4 preloaded (2 killed);" \
    "$fails failed; toed fds $fds, RSS $((rss / 1024)) MiB"
  check_eq "round $round: every transfer complete and intact" "$fails" 0
  ((fails)) && bad_rounds=$((bad_rounds + 1))
  check_eq "round $round: toed's descriptors as after its first round" "$fds" "$LIFE_FDS"
  if ((LIFE_ROUND == RESTART_EVERY || round == ROUNDS)); then
    if ((LIFE_ROUND >= 2)); then
      check "life $LIFE: RSS flat ($((LIFE_RSS2 / 1024)) MiB at round 2, $((rss / 1024)) MiB at round $LIFE_ROUND)" \
        test "$rss" -le $((LIFE_RSS2 + 8192))
    fi
    stop_toed
    check_eq "life $LIFE: toed exits 0 on SIGTERM" "$NET_TOED_STATUS" 0
    check_eq "life $LIFE: every packet buffer back at exit (pbuf.inuse)" "$(toed_counter pbuf.inuse)" 0
    check_eq "life $LIFE: only the echo listener left (tcp.socks_inuse)" "$(toed_counter tcp.socks_inuse)" 1
    toed_log_keep "life$LIFE"
    ((round < ROUNDS)) && start_life
  fi
done
impair_stop
net_log "toe-impair: $(grep '^toe-impair: final' "$NET_IMPAIR_LOG" | tr '\n' ' ')"
net_log "soak: $ROUNDS rounds, $bad_rounds with a failure"
net_finish
