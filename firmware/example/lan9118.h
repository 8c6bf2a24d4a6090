/*
 * A polled driver for the SMSC LAN9118 Ethernet controller as the Arm MPS2 boards (and QEMU's
 * mps2-an385/an386/an511 machines) have it at 0x40200000. The chip moves frames through
 * FIFOs by programmed I/O, not DMA, so the driver plays the DMA engine: lan9118_pump() moves
 * received frames from the RX FIFO into a ring of descriptors in memory and drains the TX ring
 * into the TX FIFO, and the firmware's main loop only ever sees the two rings (struct fw_ring),
 * as it would with a descriptor-based NIC.
 */
#ifndef FW_LAN9118_H
#define FW_LAN9118_H

#include <stdbool.h>
#include <stdint.h>

#define FW_RING_SLOTS 32u /* a power of two */
#define FW_FRAME_MAX 1536u

/* One descriptor: owned by the "device" (the pump) or by the CPU (the main loop). */
struct fw_desc {
  uint32_t buf; /* address of the frame buffer */
  uint16_t len; /* frame bytes (without FCS) */
  uint16_t own; /* FW_OWN_DEV or FW_OWN_CPU */
};
#define FW_OWN_CPU 0u
#define FW_OWN_DEV 1u

struct fw_ring {
  struct fw_desc d[FW_RING_SLOTS];
  uint32_t next; /* the side reading this copy's next slot */
  uint8_t buf[FW_RING_SLOTS][FW_FRAME_MAX] __attribute__((aligned(4)));
};

struct lan9118 {
  uintptr_t base;
  struct fw_ring *rx, *tx;
  uint32_t rx_dev_next, tx_dev_next; /* the device side's positions */
  uint32_t clock_hi, clock_last;     /* FREE_RUN extended to 64 bits */
  uint32_t rx_dropped, rx_errors;
};

/* Resets the chip, reads its MAC address into mac[6], enables RX and TX (exact-match filter plus
 * broadcast). Returns false when no LAN9118 answers at `base`. */
bool lan9118_init(struct lan9118 *nic, uintptr_t base, struct fw_ring *rx, struct fw_ring *tx,
                  uint8_t mac[6]);

/* The device side: RX FIFO -> free RX descriptors, TX descriptors -> TX FIFO. */
void lan9118_pump(struct lan9118 *nic);

/* Nanoseconds since init, from the chip's 25 MHz free-running counter (read at least once every
 * 171 s, which the main loop's poll deadline guarantees). */
uint64_t lan9118_now_ns(struct lan9118 *nic);

#endif
