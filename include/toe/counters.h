/*
 * Engine counters, one block per layer.
 *
 * Each layer's counters are an X-macro list, so the struct, the name table used by toed/toectl to
 * print them, and the JSON output all come from one definition. Counters only ever increase (except
 * the *_inuse gauges, which say how many of a resource are held right now). Drops are counted by
 * reason: a packet is counted in exactly one drop_* counter of the layer that discarded it.
 *
 * Adding a counter: append X(name) to its layer's list; nothing else needs to change.
 */
#ifndef TOE_COUNTERS_H
#define TOE_COUNTERS_H

#include <stdint.h>

/* Link layer (Ethernet framing, what the driver handed in and took out). */
#define TOE_COUNTERS_LINK(X)                                                                       \
  X(rx_frames)          /* frames handed to toe_stack_input*() */                                  \
  X(rx_bytes)           /* their bytes */                                                          \
  X(rx_vlan)            /* frames carrying an 802.1Q tag */                                        \
  X(rx_broadcast)       /* frames to ff:ff:ff:ff:ff:ff */                                          \
  X(rx_drop_malformed)  /* too short for an Ethernet header */                                     \
  X(rx_drop_not_for_us) /* destination MAC neither ours nor broadcast */                           \
  X(rx_drop_vlan)       /* tagged with a VLAN we do not terminate */                               \
  X(rx_drop_ethertype)  /* protocol the engine does not terminate (e.g. IPv6 for now) */           \
  X(rx_drop_nobuf)      /* toe_stack_input_copy() found the pool empty */                          \
  X(tx_frames)          /* frames given to the transmit callback */                                \
  X(tx_bytes)           /* their bytes */                                                          \
  X(tx_drop_nobuf)      /* no buffer to build a frame (ARP reply, ICMP error, ...) */

/* ARP (RFC 826) and the neighbour cache. */
#define TOE_COUNTERS_ARP(X)                                                                        \
  X(rx_requests)          /* valid requests received (any target) */                               \
  X(rx_replies)           /* valid replies received */                                             \
  X(tx_requests)          /* requests sent, including retries */                                   \
  X(tx_replies)           /* replies sent for our own address */                                   \
  X(tx_gratuitous)        /* gratuitous announcements sent */                                      \
  X(rx_drop_malformed)    /* bad hardware/protocol type or lengths, truncated */                   \
  X(rx_drop_not_for_us)   /* request for an address that is not ours (not answered) */             \
  X(rx_drop_bogus_sender) /* sender is broadcast/multicast/zero MAC, or our own MAC */             \
                          /* or a sender IP no host can have (multicast, loopback, broadcast) */   \
  X(rx_conflict)          /* another station claims our IP address */                              \
  X(entries_inuse)        /* gauge: neighbour entries in use */                                    \
  X(entries_created)      /* entries created */                                                    \
  X(entries_evicted)      /* entries reclaimed for a new one (LRU) */                              \
  X(entries_expired)      /* entries that timed out */                                             \
  X(resolve_failed)       /* resolutions that ran out of retries */                                \
  X(queued)               /* packets queued awaiting resolution */                                 \
  X(queue_drop_full)      /* packets dropped: per-entry queue full */                              \
  X(queue_drop_failed)    /* queued packets dropped because resolution failed */                   \
  X(drop_no_entry)        /* packets dropped: neighbour table full, nothing to evict */            \
  X(drop_unreachable)     /* packets refused: neighbour FAILED (-TOE_EHOSTUNREACH) */              \
  X(rx_drop_unsolicited)  /* replies about a host not in the table (RFC 826: not learned) */       \
  X(fail_notified)        /* dropped queued packets whose socket was told EHOSTUNREACH */

/* IPv4 (RFC 791, RFC 1122), fragmentation and reassembly. */
#define TOE_COUNTERS_IP(X)                                                                         \
  X(rx_packets)           /* datagrams received (before validation) */                             \
  X(rx_delivered)         /* datagrams handed to ICMP/UDP/TCP */                                   \
  X(rx_drop_malformed)    /* truncated, bad version, IHL < 5, total length lies */                 \
  X(rx_drop_checksum)     /* header checksum wrong */                                              \
  X(rx_drop_not_for_us)   /* destination is not our address or a broadcast */                      \
  X(rx_drop_bad_source)   /* source is ours, broadcast, multicast or loopback */                   \
  X(rx_drop_proto)        /* protocol we do not terminate */                                       \
  X(rx_drop_options)      /* options that are malformed */                                         \
  X(rx_fragments)         /* fragments received */                                                 \
  X(reass_ok)             /* datagrams reassembled */                                              \
  X(reass_timeout)        /* reassemblies abandoned on timeout */                                  \
  X(reass_drop_overlap)   /* reassemblies abandoned: overlapping fragments (RFC 5722 spirit) */    \
  X(reass_drop_duplicate) /* exact duplicate fragments ignored */                                  \
  X(reass_drop_nomem)     /* fragments dropped: reassembly memory bound reached */                 \
  X(reass_drop_too_big)   /* reassembled size would exceed 65535 */                                \
  X(reass_drop_bad_frag)  /* inconsistent fragment (non-final not multiple of 8, ...) */           \
  X(reass_drop_poisoned)  /* fragments of a datagram already discarded (until its timeout) */      \
  X(reass_inuse)          /* gauge: datagrams being reassembled */                                 \
  X(tx_packets)           /* datagrams sent (before fragmentation) */                              \
  X(tx_fragments)         /* fragments created */                                                  \
  X(tx_drop_no_route)     /* destination off-link and no gateway */                                \
  X(tx_drop_df)           /* datagram too big with DF set */                                       \
  X(tx_drop_nobuf)        /* no buffer to build a fragment or header */                            \
  X(tx_drop_too_big)      /* datagram over 65535 bytes */                                          \
  X(tx_drop_bad_dst)      /* destination 0, loopback or our own address */                         \
  X(pmtu_lowered)         /* path MTU cache: estimates lowered or added (RFC 1191) */              \
  X(pmtu_expired)         /* path MTU cache: estimates aged out, raised again (RFC 1191 6.3) */    \
  X(pmtu_evicted)         /* path MTU cache: estimates dropped early, the cache being full */

/* ICMPv4 (RFC 792, RFC 1122 3.2.2, RFC 1812 4.3.2.8). */
#define TOE_COUNTERS_ICMP(X)                                                                       \
  X(rx_msgs)             /* messages received */                                                   \
  X(rx_echo_requests)    /* echo requests received */                                              \
  X(rx_echo_replies)     /* echo replies received */                                               \
  X(rx_dest_unreach)     /* destination unreachable received */                                    \
  X(rx_time_exceeded)    /* time exceeded received */                                              \
  X(rx_param_problem)    /* parameter problem received */                                          \
  X(rx_errors_delivered) /* errors handed to the socket that sent the quoted datagram */           \
  X(rx_errors_no_socket) /* errors quoting a datagram no socket of ours sent */                    \
  X(rx_drop_malformed)   /* too short, or quoted header truncated */                               \
  X(rx_drop_checksum)    /* bad ICMP checksum */                                                   \
  X(rx_drop_type)        /* types we neither answer nor use */                                     \
  X(tx_echo_replies)     /* echo replies sent */                                                   \
  X(tx_dest_unreach)     /* destination/port unreachable sent */                                   \
  X(tx_rate_limited)     /* errors suppressed by the rate limiter */                               \
  X(tx_suppressed)       /* errors not sent by rule (about ICMP errors, broadcasts, fragments) */  \
  X(tx_time_exceeded)    /* time exceeded (reassembly timeout) sent */                             \
  X(rx_echo_broadcast)   /* echo requests to a broadcast address, not answered */

/* UDP (RFC 768). */
#define TOE_COUNTERS_UDP(X)                                                                        \
  X(rx_datagrams)       /* datagrams received */                                                   \
  X(rx_delivered)       /* queued to a socket */                                                   \
  X(rx_drop_malformed)  /* length field lies, shorter than header */                               \
  X(rx_drop_checksum)   /* bad checksum */                                                         \
  X(rx_drop_no_port)    /* no socket bound (ICMP port unreachable may follow) */                   \
  X(rx_drop_queue_full) /* socket receive queue full */                                            \
  X(tx_datagrams)       /* datagrams sent */                                                       \
  X(tx_errors)          /* sends that failed (no route, no buffers, too big) */                    \
  X(socks_inuse)        /* gauge: open UDP sockets */                                              \
  X(rx_drop_nomem)      /* datagrams dropped: the socket's buffer allowance is used up */          \
  X(rx_datagrams6)      /* of rx_datagrams, over IPv6 */                                           \
  X(rx_drop_zero_csum6) /* over IPv6 with a zero checksum (mandatory there, RFC 8200 8.1) */

/* TCP (RFC 9293; names in the spirit of RFC 4022's MIB). Each TCP file appends its own. */
#define TOE_COUNTERS_TCP(X)                                                                        \
  X(active_opens)           /* connects started (CLOSED -> SYN_SENT) */                            \
  X(attempt_fails)          /* SYN_SENT/SYN_RECEIVED -> CLOSED (refused, timed out, aborted) */    \
  X(estab_resets)           /* ESTABLISHED/CLOSE_WAIT -> CLOSED directly (reset, abort) */         \
  X(out_segs)               /* segments sent, excluding retransmissions */                         \
  X(retrans_segs)           /* segments retransmitted */                                           \
  X(out_rsts)               /* segments sent with RST */                                           \
  X(out_acks_delayed)       /* pure ACKs sent by the delayed-ACK timer */                          \
  X(out_win_updates)        /* pure ACKs sent because the receive window opened */                 \
  X(out_win_probes)         /* zero-window probes sent (persist timer) */                          \
  X(out_keepalives)         /* keepalive probes sent */                                            \
  X(out_drop_nobuf)         /* segments not sent: no buffer for the frame */                       \
  X(out_errors)             /* segments IPv4 refused (no route, ...) */                            \
  X(rto_expired)            /* retransmission timeouts (handshake ones included) */                \
  X(syn_retrans)            /* SYN and SYN-ACK retransmissions by timeout */                       \
  X(timeout_drops)          /* connections dropped after retries (SYN, data, keepalive) */         \
  X(keepalive_drops)        /* of which: keepalive probes unanswered */                            \
  X(finwait2_timeouts)      /* orphaned FIN_WAIT_2 connections closed by timeout */                \
  X(close_unread_rsts)      /* closes with unread data answered by RST (RFC 9293 3.6) */           \
  X(rcvbuf_grows)           /* receive-buffer auto-tuning increases */                             \
  X(sndbuf_grows)           /* send-buffer auto-tuning increases */                                \
  X(socks_inuse)            /* gauge: tcbs in use (sockets, listeners, orphans) */                 \
  X(curr_estab)             /* gauge: connections in ESTABLISHED or CLOSE_WAIT (RFC 4022) */       \
  X(in_segs)                /* segments received, errors included (RFC 4022 tcpInSegs) */          \
  X(in_errs)                /* segments received in error: checksum, malformed (tcpInErrs) */      \
  X(rx_drop_malformed)      /* too short, bad data offset */                                       \
  X(rx_drop_checksum)       /* bad checksum */                                                     \
  X(rx_drop_bad_opts)       /* an option length that runs past the header */                       \
  X(rx_drop_not_unicast)    /* to a broadcast address (RFC 1122 4.2.3.10) */                       \
  X(rx_drop_bad_port)       /* source or destination port 0 */                                     \
  X(rx_drop_no_socket)      /* no connection or listener (RST sent unless RST) */                  \
  X(rx_drop_listen)         /* to a listener: RST, stray ACK, neither SYN nor ACK */               \
  X(rx_drop_syn_sent)       /* in SYN_SENT: bad ACK, RST ignored, no SYN */                        \
  X(rx_drop_paws)           /* PAWS: TSval older than TS.Recent (RFC 7323 5) */                    \
  X(rx_drop_no_ts)          /* no timestamp option after they were agreed (RFC 7323 3.2) */        \
  X(rx_drop_out_of_window)  /* sequence not acceptable (RFC 9293 3.10.7.4) */                      \
  X(rx_drop_rst)            /* RST outside the window, or answered by a challenge ACK */           \
  X(rx_drop_syn)            /* SYN in a synchronized state (challenge ACK, RFC 5961 4) */          \
  X(rx_drop_no_ack)         /* no ACK bit in a synchronized state */                               \
  X(rx_drop_bad_ack)        /* ACK of unsent data or too old (RFC 5961 5.2) */                     \
  X(rx_drop_ooo_full)       /* out-of-order data over the queue's bound */                         \
  X(rx_drop_after_close)    /* new data for a closed socket: RST (RFC 9293 3.6) */                 \
  X(rx_drop_dup)            /* segments carrying only duplicate data */                            \
  X(rx_resets)              /* RSTs accepted (exact sequence) */                                   \
  X(challenge_acks)         /* challenge ACKs sent (RFC 5961) */                                   \
  X(challenge_acks_limited) /* challenge ACKs suppressed by the rate limit */                      \
  X(rx_data_segs)           /* segments with payload accepted */                                   \
  X(rx_bytes)               /* payload bytes accepted in order */                                  \
  X(rx_ooo_segs)            /* segments queued out of order */                                     \
  X(rx_dsacks)              /* D-SACK blocks generated (RFC 2883) */                               \
  X(rx_shut_rd_bytes)       /* bytes discarded after shutdown(SHUT_RD) */                          \
  X(icmp_pmtu)              /* path MTU lowered by ICMP frag-needed (RFC 1191) */                  \
  X(pmtu_from_cache)        /* connections started at a cached, lowered path MTU */                \
  X(pmtu_raised)            /* connections back at the link MTU after their estimate aged out */   \
  X(icmp_bad_seq)           /* ICMP errors ignored: quoted seq not in flight (RFC 5927) */         \
  X(icmp_soft_errors)       /* ICMP errors recorded as soft errors (RFC 1122 4.2.3.9) */           \
  X(icmp_hard_aborts)       /* connects aborted by ICMP port/protocol unreachable */               \
  X(rec_episodes)           /* fast recovery episodes entered (RFC 6675, RFC 6582) */              \
  X(rec_newreno)            /* of which without SACK: NewReno fast retransmits (RFC 6582) */       \
  X(rec_rto)                /* RTOs with data in flight handled by loss recovery (RFC 6298 5.5) */ \
  X(rec_rack_lost)          /* segments marked lost by RACK (RFC 8985 6.2) */                      \
  X(rec_reo_timeouts)       /* RACK reordering-timer expirations (RFC 8985 6.3) */                 \
  X(rec_tlp_probes)         /* tail-loss probes sent (RFC 8985 7.3) */                             \
  X(rec_tlp_recovered)      /* losses repaired by a tail-loss probe (RFC 8985 7.4) */              \
  X(rec_spurious_rto)       /* RTOs found spurious by timestamps and undone (RFC 3522, 4015) */    \
  X(rec_spurious_fr)        /* fast recoveries found spurious (timestamps, D-SACK) and undone */   \
  X(rec_dsacks_rcvd)        /* D-SACK blocks received (RFC 2883) */                                \
  X(rec_sack_blocks)        /* SACK blocks received and used (RFC 2018) */                         \
  X(rec_sack_invalid)       /* SACK blocks ignored: outside SND.UNA..SND.MAX or empty */           \
  X(rec_hystart_exits)      /* slow starts left by HyStart++ on an RTT increase (RFC 9406) */      \
  X(rec_sack_reneged)       /* RTOs that found SACKed data never acked (reneging, RFC 2018 8) */   \
  X(passive_opens)          /* connections created by listeners (RFC 4022 tcpPassiveOpens) */      \
  X(syncache_adds)          /* SYN-cache entries created */                                        \
  X(syncache_completed)     /* entries completed by the handshake ACK into connections */          \
  X(syncache_overflow)      /* SYNs finding the SYN cache (or a listener share) full */            \
  X(syncache_timeouts)      /* entries dropped after the last SYN-ACK retransmission */            \
  X(syncache_resets)        /* entries removed by an exact-sequence RST (RFC 5961 3.2) */          \
  X(syncache_icmp)          /* entries removed by an ICMP error quoting our SYN-ACK */             \
  X(syncache_dup_syns)      /* retransmitted SYNs answered again from the cache */                 \
  X(syncache_bad_acks)      /* ACKs to a listener matching no entry/cookie: answered with RST */   \
  X(synack_retrans)         /* SYN-ACKs retransmitted (timer or repeated SYN) */                   \
  X(syncookies_sent)        /* SYN-ACKs carrying a SYN cookie */                                   \
  X(syncookies_recv)        /* valid cookies: connections rebuilt from an ACK */                   \
  X(syncookies_failed)      /* ACKs whose cookie failed the MAC or age check */                    \
  X(listen_drops)           /* SYNs or handshake ACKs dropped: accept queue full */                \
  X(listen_nomem)           /* handshake ACKs dropped: no tcb free */                              \
  X(rx_drop_syn_bad)        /* SYNs to a listener with FIN or to a non-listener state */           \
  X(tw_entered)             /* connections moved to TIME_WAIT */                                   \
  X(tw_recycled)            /* TIME_WAIT entries recycled early: table full (oldest first) */      \
  X(tw_expired)             /* TIME_WAIT entries ended after 2*MSL */                              \
  X(tw_fin_acked)           /* retransmitted FINs re-ACKed in TIME_WAIT (2*MSL restarted) */       \
  X(tw_acks)                /* other ACKs sent from TIME_WAIT (out of window, PAWS, old SYN) */    \
  X(tw_rst_ignored)         /* RSTs ignored in TIME_WAIT (RFC 1337) */                             \
  X(tw_reopened)            /* SYNs that reopened a TIME_WAIT 4-tuple (RFC 6191) */                \
  X(tw_reused)              /* TIME_WAIT entries released for a new outgoing connection */         \
  X(tw_inuse)               /* gauge: TIME_WAIT entries held */                                    \
  X(syncache_inuse)         /* gauge: SYN-cache entries held */                                    \
  X(rx_drop_nomem)          /* in-window data dropped: the socket's buffer allowance is used up */ \
  X(snd_buf_limited)        /* sends cut short by the socket's buffer allowance or the pool */     \
  X(out_tso_frames)         /* TSO super-segments handed to the link (TOE_LINK_CAP_TSO) */         \
  X(out_burst_deferred)     /* segments whose output waited for the receive burst's end */         \
  X(ecn_negotiated)         /* connections that agreed RFC 3168 ECN */                             \
  X(ecn_accecn_negotiated)  /* connections that agreed Accurate ECN (RFC 9768) */                  \
  X(ecn_ce_rcvd)            /* segments received with CE in the IP header */                       \
  X(ecn_ece_rcvd)           /* ECE ACKs received; AccECN: CE marks the peer's ACE reported */      \
  X(ecn_cwr_sent)           /* segments sent with CWR (RFC 3168 6.1.2) */                          \
  X(ecn_cwr_rcvd)           /* segments received with CWR while echoing ECE */                     \
  X(ecn_cwnd_reduced)       /* congestion window reductions for ECN feedback */                    \
  X(ecn_ect_sent)           /* data segments sent with ECT(0) */                                   \
  X(ecn_fallback)           /* AccECN handshakes whose ACE field was zeroed on the path */

/* Packet buffer pool. */
#define TOE_COUNTERS_PBUF(X)                                                                       \
  X(allocs)         /* buffers handed out */                                                       \
  X(frees)          /* buffers returned */                                                         \
  X(alloc_failures) /* allocations refused: pool empty */                                          \
  X(inuse)          /* gauge: buffers held now */                                                  \
  X(inuse_max)      /* high-water mark of inuse */                                                 \
  X(double_free)    /* frees of a buffer nobody held (a bug elsewhere; ignored) */                 \
  X(charged)        /* gauge: buffers charged to socket queues now */                              \
  X(refused_sock)   /* charges refused: the socket's own allowance (or the cap) is used up */      \
  X(refused_press)  /* refused: the pool is under pressure and the socket over its minimum */      \
  X(refused_rsv)    /* refused: only the control reserve is left */                                \
  X(compacted)      /* sparse chains (tiny segments, fragments) copied into full buffers */        \
  X(compact_nobuf)  /* compactions that found no buffers (the chain kept as it was) */

/* Timer facility. */
#define TOE_COUNTERS_TIMER(X)                                                                      \
  X(armed)     /* arm operations */                                                                \
  X(cancelled) /* cancel operations on pending timers */                                           \
  X(fired)     /* callbacks run */                                                                 \
  X(cascaded)  /* timers moved from a coarser wheel level to a finer one */                        \
  X(pending)   /* gauge: timers pending now */

/* Steering between the engine and the host interface (toe/steer.h). */
#define TOE_COUNTERS_STEER(X)                                                                      \
  X(to_engine)       /* frames steered to the engine only */                                       \
  X(to_host)         /* frames steered to the host interface only */                               \
  X(to_both)         /* frames steered to both (ARP) */                                            \
  X(not_ours)        /* frames not IPv4 to the shared address (IPv6, other ethertypes, ...) */     \
  X(fragments)       /* IP fragments to the shared address (engine) */                             \
  X(tcp_engine)      /* TCP segments matching a filter */                                          \
  X(tcp_host)        /* TCP segments matching none (the OS's) */                                   \
  X(udp_engine)      /* UDP datagrams matching a filter */                                         \
  X(udp_host)        /* UDP datagrams matching none */                                             \
  X(echo_engine)     /* ICMP echo requests the engine answers */                                   \
  X(echo_host)       /* ICMP echo requests the OS answers (icmp_echo_host) */                      \
  X(icmp_err_engine) /* ICMP errors quoting an engine flow */                                      \
  X(icmp_err_host)   /* ICMP errors quoting anything else */                                       \
  X(icmp_other)      /* other ICMP (echo replies, timestamps, ...): host */                        \
  X(other_proto)     /* other IP protocols: host */                                                \
  X(malformed)       /* unparsable frames: engine (it counts why and drops them) */                \
  X(filters_inuse)   /* gauge: filters in the table */                                             \
  X(filters_added)   /* filters created */                                                         \
  X(filters_removed) /* filters removed */                                                         \
  X(filter_full)     /* filters that found the table full (a sizing bug: never expected) */        \
  X(nd_both)         /* IPv6 NS for a shared address, and NAs: both (RFC 4861) */                  \
  X(nd_host)         /* IPv6 NS for an address only the OS has, and RS: host */                    \
  X(ra_both)         /* IPv6 router advertisements and redirects: both */                          \
  X(mld_host)        /* MLD queries and reports: host (RFC 3810) */

/* IPv6 (RFC 8200) input and output. */
#define TOE_COUNTERS_IP6(X)                                                                        \
  X(rx_packets)         /* packets received (before validation) */                                 \
  X(rx_delivered)       /* packets handed to ICMPv6 */                                             \
  X(rx_drop_malformed)  /* truncated, bad version, payload length lies */                          \
  X(rx_drop_not_for_us) /* destination neither one of our addresses nor a group we listen to */    \
  X(rx_drop_bad_source) /* source is ours, loopback or v4-mapped */                                \
  X(rx_drop_ext)        /* extension headers refused silently (truncated, option says discard) */  \
  X(rx_drop_param)      /* extension headers refused with a Parameter Problem (RFC 8200 4) */      \
  X(rx_drop_proto)      /* upper layer we do not serve: Parameter Problem code 1 */                \
  X(rx_drop_no_transport) /* unused since TCP and UDP are carried (kept: the names are an API) */  \
  X(rx_drop_frag)         /* a second fragment header inside a reassembled packet */               \
  X(rx_drop_no_next)      /* Next Header 59: nothing to deliver */                                 \
  X(tx_packets)           /* packets sent */                                                       \
  X(tx_drop_no_route)     /* destination off-link and no default router (RA) */                    \
  X(tx_drop_too_big)      /* packet over the link MTU (no fragmentation yet) */                    \
  X(tx_drop_nobuf)        /* no buffer for a header or a message */                                \
  X(tx_drop_no_src)       /* no address of ours to send from */                                    \
  X(reass_ok)             /* datagrams reassembled from fragments (RFC 8200 4.5) */                \
  X(reass_timeout)        /* reassemblies abandoned after 60 s */                                  \
  X(reass_inuse)          /* gauge: datagrams being reassembled */                                 \
  X(reass_drop_overlap)   /* fragments overlapping another: the datagram dropped (RFC 5722) */     \
  X(reass_drop_duplicate) /* exact duplicate fragments */                                          \
  X(reass_drop_poisoned)  /* fragments of a datagram already dropped for an overlap */             \
  X(reass_drop_bad_frag)  /* empty fragments, or fragments disagreeing on the datagram's end */    \
  X(reass_drop_too_big)   /* reassembled packet would exceed 65535 bytes of payload */             \
  X(reass_drop_nomem)     /* fragments refused: slots, per-source share or buffer budget full */   \
  X(tx_frag_datagrams)    /* packets sent fragmented (over the path MTU) */                        \
  X(tx_fragments)         /* fragments sent */                                                     \
  X(tx_frag_nobuf)        /* packets not sent: no buffer for a fragment */

/* ICMPv6 (RFC 4443). */
#define TOE_COUNTERS_ICMP6(X)                                                                      \
  X(rx_msgs)           /* messages received */                                                     \
  X(rx_drop_malformed) /* too short */                                                             \
  X(rx_drop_checksum)  /* bad checksum */                                                          \
  X(rx_echo_requests)  /* echo requests received */                                                \
  X(rx_echo_multicast) /* of which to a multicast group (answered from a unicast address) */       \
  X(rx_echo_replies)   /* echo replies received (no ping sockets yet) */                           \
  X(rx_errors)         /* error messages received (types 1..4) */                                  \
  X(rx_drop_type)      /* types we neither answer nor use (RS, RA, redirect, MLD, ...) */          \
  X(tx_echo_replies)   /* echo replies sent */                                                     \
  X(tx_param_problem)  /* parameter problems sent */                                               \
  X(tx_dest_unreach)   /* destination unreachable sent */                                          \
  X(tx_rate_limited)   /* errors suppressed by the rate limit (RFC 4443 2.4 (f)) */                \
  X(tx_suppressed)     /* errors not sent by rule (RFC 4443 2.4 (e)) */                            \
  X(rx_err_bad_quote)  /* errors whose quoted packet could not be parsed */                        \
  X(rx_err_not_ours)   /* errors quoting a packet from an address not ours */                      \
  X(rx_err_delivered)  /* errors handed to the socket of the quoted flow */                        \
  X(rx_err_unmatched)  /* errors no socket took (no flow, not told, TCP, ports cut off) */         \
  X(rx_ptb)            /* Packet Too Big taken into the path MTU cache (RFC 8201) */               \
  X(rx_ptb_ignored)    /* Packet Too Big with an MTU below 1280: discarded (RFC 8201 4) */         \
  X(tx_time_exceeded)  /* time exceeded sent (reassembly timeout) */

/* Neighbor Discovery (RFC 4861) and the IPv6 neighbour cache. */
#define TOE_COUNTERS_ND(X)                                                                         \
  X(rx_ns)                /* valid neighbor solicitations received */                              \
  X(rx_na)                /* valid neighbor advertisements received */                             \
  X(rx_drop_invalid)      /* ND messages failing RFC 4861's validity checks */                     \
  X(rx_ns_not_ours)       /* solicitations for a target that is not our address */                 \
  X(rx_dad_probe)         /* DAD probes (NS from ::) for one of our addresses: defended */         \
  X(rx_na_conflict)       /* advertisements from another node claiming one of our addresses */     \
  X(tx_na)                /* advertisements sent */                                                \
  X(tx_ns)                /* solicitations sent (multicast and unicast, retries included) */       \
  X(entries_inuse)        /* gauge: neighbour entries in use */                                    \
  X(entries_created)      /* entries created */                                                    \
  X(entries_evicted)      /* entries reclaimed for a new one (least recently used) */              \
  X(resolve_failed)       /* resolutions or probes that ran out of solicitations */                \
  X(queued)               /* packets queued awaiting resolution */                                 \
  X(queue_drop_full)      /* packets dropped: per-entry queue full (the oldest goes) */            \
  X(queue_drop_failed)    /* queued packets dropped because resolution failed */                   \
  X(drop_no_entry)        /* packets dropped: table full of entries still resolving */             \
  X(unsolicited_ignored)  /* link-layer addresses not learned: table full of entries in use */     \
  X(tx_dad_ns)            /* DAD probes sent for our tentative addresses (RFC 4862 5.4.2) */       \
  X(dad_completed)        /* addresses that passed DAD and became usable */                        \
  X(dad_duplicates)       /* addresses found duplicate by DAD: never used (see toectl stats) */    \
  X(dad_own_looped)       /* our own DAD probes seen again (same nonce, RFC 7527): ignored */      \
  X(rx_tentative_ignored) /* solicitations for a tentative address from a unicast source */        \
  X(tx_mld_reports)       /* MLDv2 reports joining our solicited-node groups (RFC 3810) */         \
  X(rx_ra)                /* valid router advertisements taken (RFC 4861 6.3.4) */                 \
  X(rx_ra_invalid)        /* router advertisements failing RFC 4861 6.1.2 */                       \
  X(routers_inuse)        /* gauge: default routers (RFC 4861 6.3.4, router lifetime) */           \
  X(prefixes_inuse)       /* gauge: on-link prefixes learned from RAs */                           \
  X(ra_mtu_set)           /* RA MTU options taken as the link MTU */                               \
  X(ra_mtu_ignored)       /* RA MTU options below 1280 or above the link's MTU */                  \
  X(slaac_added)          /* addresses formed by SLAAC (RFC 4862 5.5.3) */                         \
  X(slaac_expired)        /* SLAAC addresses removed at the end of their valid lifetime */         \
  X(slaac_no_room)        /* SLAAC prefixes not used: every address slot taken */                  \
  X(rx_redirect)          /* redirects taken (RFC 4861 8.3) */                                     \
  X(rx_redirect_rejected) /* redirects invalid or not from the current first-hop router */

#define TOE_COUNTER_FIELD_(name) uint64_t name;

struct toe_counters_link {
  TOE_COUNTERS_LINK(TOE_COUNTER_FIELD_)
};
struct toe_counters_arp {
  TOE_COUNTERS_ARP(TOE_COUNTER_FIELD_)
};
struct toe_counters_ip {
  TOE_COUNTERS_IP(TOE_COUNTER_FIELD_)
};
struct toe_counters_icmp {
  TOE_COUNTERS_ICMP(TOE_COUNTER_FIELD_)
};
struct toe_counters_udp {
  TOE_COUNTERS_UDP(TOE_COUNTER_FIELD_)
};
struct toe_counters_tcp {
  TOE_COUNTERS_TCP(TOE_COUNTER_FIELD_)
};
struct toe_counters_pbuf {
  TOE_COUNTERS_PBUF(TOE_COUNTER_FIELD_)
};
struct toe_counters_timer {
  TOE_COUNTERS_TIMER(TOE_COUNTER_FIELD_)
};
struct toe_counters_steer {
  TOE_COUNTERS_STEER(TOE_COUNTER_FIELD_)
};
struct toe_counters_ip6 {
  TOE_COUNTERS_IP6(TOE_COUNTER_FIELD_)
};
struct toe_counters_icmp6 {
  TOE_COUNTERS_ICMP6(TOE_COUNTER_FIELD_)
};
struct toe_counters_nd {
  TOE_COUNTERS_ND(TOE_COUNTER_FIELD_)
};

/* All of a stack's counters. Read with toe_stack_counters(). */
struct toe_counters {
  struct toe_counters_link link;
  struct toe_counters_arp arp;
  struct toe_counters_ip ip;
  struct toe_counters_icmp icmp;
  struct toe_counters_udp udp;
  struct toe_counters_tcp tcp;
  struct toe_counters_pbuf pbuf;
  struct toe_counters_timer timer;
  struct toe_counters_steer steer;
  struct toe_counters_ip6 ip6;
  struct toe_counters_icmp6 icmp6;
  struct toe_counters_nd nd;
};

/*
 * Visits every counter with its layer and name, in declaration order, for printing.
 * `fn` is called once per counter; `arg` is passed through.
 */
typedef void (*toe_counter_visit_fn)(void *arg, const char *layer, const char *name,
                                     uint64_t value);
void toe_counters_visit(const struct toe_counters *c, toe_counter_visit_fn fn, void *arg);

#endif
