#!/usr/bin/env bash
# Sharing a socket between sessions (ABI 1.2 SHARE/ADOPT, docs/transport.md "Sharing a socket
# between sessions") under hostile tokens and every order of closing and dying, with libtoe
# sessions in separate processes (tests/net/share_check.c) and kernel clients in the peer:
#  - adopt of token 0, an unknown token, ~0: refused (ENOENT), never a crash; SHARE of a socket
#    that does not listen (EOPNOTSUPP) or does not exist; a token adopted once gives ENOENT the
#    second time, in the adopter's session and the sharer's; a token left 11 s expires (ENOENT);
#  - the sharer closes before the adopter adopts: the token keeps the listener, the adopter
#    serves the peer's connection;
#  - the adopter closes first: the sharer's listener still serves;
#  - an adopter asking for connections is killed with SIGKILL: the sharer serves every later
#    connection (none is lost to the dead holder);
#  - the sharer closes while the adopter accepts: the adopter serves; with every holder gone the
#    port is closed;
#  - toed's counters: share_tokens, share_adopted, share_refused, share_expired as counted here,
#    share_inuse and socks_inuse back to 0, toed exits 0 with no sanitizer report.
# Usage: bash tests/net/test_transport_share.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip timeout $NET_PY"
net_init "$1" 200
tr_init
PROG=$NET_BINDIR/share_check
tr_need "$PROG"
PORT=7300

net_setup
tr_start_toed

toectl_json "$NET_TMP/stats0.json" stats
out=$NET_TMP/share.out
dev timeout -k 2 120 "$PROG" "$CTL" "$PORT" "$NET_DEV_ADDR" "/var/run/netns/$NET_PEER_NS" \
  >"$out" 2>"$NET_TMP/share.err"
rc=$?
while IFS= read -r line; do
  case "$line" in
  "ok   - "*) net_ok "${line#ok   - }" ;;
  "FAIL - "*) net_fail "${line#FAIL - }" ;;
  esac
done <"$out"
check_eq "share_check: exit status" "$rc" 0
check "share_check: at least 25 checks ran" test "$(grep -c '^ok   - ' "$out")" -ge 25
[ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/share.err" | head -10

# The device's counters, as the program used it: 7 tokens made (one expired, 5 adopted, one of
# them adopted nowhere but counted as used by the adopt); refused: 0, junk, ~0, the reuse twice,
# the expired one.
toectl_json "$NET_TMP/stats1.json" stats
delta() {
  echo $(($(num "$(stat_get "$NET_TMP/stats1.json" "$1")") - $(num "$(stat_get "$NET_TMP/stats0.json" "$1")")))
}
net_log "counters: $(for k in share_tokens share_adopted share_refused share_expired share_inuse socks_inuse; do
  printf '%s %s ' "$k" "$(stat_get "$NET_TMP/stats1.json" "transport.$k")"
done)"
check_eq "counters: share_tokens (one per share)" "$(delta transport.share_tokens)" 6
check_eq "counters: share_adopted" "$(delta transport.share_adopted)" 5
check_ge "counters: share_refused (unknown, reused, expired)" "$(delta transport.share_refused)" 5
check_eq "counters: share_expired" "$(delta transport.share_expired)" 1
check_eq "counters: share_inuse back to 0" "$(stat_get "$NET_TMP/stats1.json" transport.share_inuse)" 0
check_eq "counters: socks_inuse back to 0" "$(stat_get "$NET_TMP/stats1.json" transport.socks_inuse)" 0

check_toed_exit
check_eq "toed exit summary: share_inuse 0" "$(toed_counter transport.share_inuse)" 0
check_eq "toed exit summary: socks_inuse 0" "$(toed_counter transport.socks_inuse)" 0
check_eq "toed exit summary: share_adopted" "$(toed_counter transport.share_adopted)" 5
net_finish
