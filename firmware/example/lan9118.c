/*
 * LAN9118 register use follows the SMSC LAN9118 data sheet (section 5, "Register Description"):
 * TX command A/B words before each frame's data in the TX data FIFO, an RX status word per frame
 * (length with FCS in bits 29:16, error summary in bit 15) before its data in the RX data FIFO,
 * MAC registers reached indirectly through MAC_CSR_CMD/MAC_CSR_DATA.
 */
#include "lan9118.h"

#include <string.h>

enum {
  RX_DATA_FIFO = 0x00,
  TX_DATA_FIFO = 0x20,
  RX_STATUS_FIFO = 0x40,
  TX_STATUS_FIFO = 0x48,
  ID_REV = 0x50,
  INT_STS = 0x58,
  BYTE_TEST = 0x64,
  RX_CFG = 0x6c,
  TX_CFG = 0x70,
  HW_CFG = 0x74,
  RX_DP_CTRL = 0x78,
  RX_FIFO_INF = 0x7c,
  TX_FIFO_INF = 0x80,
  PMT_CTRL = 0x84,
  FREE_RUN = 0x9c,
  MAC_CSR_CMD = 0xa4,
  MAC_CSR_DATA = 0xa8,
};
enum { MAC_CR = 1, MAC_ADDRH = 2, MAC_ADDRL = 3 };
#define MAC_CR_RXEN (1u << 2)
#define MAC_CR_TXEN (1u << 3)
#define CSR_BUSY (1u << 31)
#define CSR_READ (1u << 30)
#define TX_CFG_ON (1u << 1)
#define TXA_FIRST (1u << 13)
#define TXA_LAST (1u << 12)
#define RXS_ERROR (1u << 15)
#define RX_DP_FFWD (1u << 31)

static inline uint32_t rd(const struct lan9118 *n, uint32_t off)
{
  return *(volatile uint32_t *)(n->base + off);
}

static inline void wr(const struct lan9118 *n, uint32_t off, uint32_t v)
{
  *(volatile uint32_t *)(n->base + off) = v;
}

static uint32_t mac_read(const struct lan9118 *n, uint32_t reg)
{
  wr(n, MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
  while (rd(n, MAC_CSR_CMD) & CSR_BUSY) {
  }
  return rd(n, MAC_CSR_DATA);
}

static void mac_write(const struct lan9118 *n, uint32_t reg, uint32_t v)
{
  wr(n, MAC_CSR_DATA, v);
  wr(n, MAC_CSR_CMD, CSR_BUSY | reg);
  while (rd(n, MAC_CSR_CMD) & CSR_BUSY) {
  }
}

bool lan9118_init(struct lan9118 *nic, uintptr_t base, struct fw_ring *rx, struct fw_ring *tx,
                  uint8_t mac[6])
{
  memset(nic, 0, sizeof(*nic));
  nic->base = base;
  nic->rx = rx;
  nic->tx = tx;
  if (rd(nic, BYTE_TEST) != 0x87654321u) /* the data sheet's fixed pattern: bus and byte order */
    return false;
  wr(nic, HW_CFG, 1u); /* soft reset */
  while (rd(nic, HW_CFG) & 1u) {
  }
  while (!(rd(nic, PMT_CTRL) & 1u)) { /* READY */
  }
  uint32_t lo = mac_read(nic, MAC_ADDRL), hi = mac_read(nic, MAC_ADDRH);
  for (int i = 0; i < 4; i++)
    mac[i] = (uint8_t)(lo >> (8 * i));
  mac[4] = (uint8_t)hi;
  mac[5] = (uint8_t)(hi >> 8);
  wr(nic, RX_CFG, 0);
  wr(nic, TX_CFG, TX_CFG_ON);
  mac_write(nic, MAC_CR, MAC_CR_RXEN | MAC_CR_TXEN); /* not promiscuous */

  for (uint32_t i = 0; i < FW_RING_SLOTS; i++) {
    rx->d[i] = (struct fw_desc){.buf = (uint32_t)(uintptr_t)rx->buf[i], .own = FW_OWN_DEV};
    tx->d[i] = (struct fw_desc){.buf = (uint32_t)(uintptr_t)tx->buf[i], .own = FW_OWN_CPU};
  }
  rx->next = tx->next = 0;
  nic->clock_last = rd(nic, FREE_RUN);
  return true;
}

static void rx_one(struct lan9118 *nic)
{
  uint32_t status = rd(nic, RX_STATUS_FIFO);
  uint32_t len = (status >> 16) & 0x3fffu; /* with the 4-byte FCS */
  uint32_t words = (len + 3u) / 4u;
  struct fw_desc *d = &nic->rx->d[nic->rx_dev_next];
  if ((status & RXS_ERROR) || len < 18u || len - 4u > FW_FRAME_MAX || d->own != FW_OWN_DEV) {
    /* A bad frame, or no free descriptor (the CPU is behind): skip the frame's data. */
    if (status & RXS_ERROR)
      nic->rx_errors++;
    else
      nic->rx_dropped++;
    if (words >= 4u) {
      wr(nic, RX_DP_CTRL, RX_DP_FFWD);
      while (rd(nic, RX_DP_CTRL) & RX_DP_FFWD) {
      }
    } else {
      for (uint32_t i = 0; i < words; i++)
        (void)rd(nic, RX_DATA_FIFO);
    }
    return;
  }
  uint8_t *p = (uint8_t *)(uintptr_t)d->buf;
  for (uint32_t i = 0; i < words; i++) {
    uint32_t w = rd(nic, RX_DATA_FIFO);
    uint32_t at = 4u * i;
    /* FIFO words carry bytes in little-endian order; the FCS tail is not kept. */
    for (uint32_t b = 0; b < 4u && at + b < len - 4u; b++)
      p[at + b] = (uint8_t)(w >> (8u * b));
  }
  d->len = (uint16_t)(len - 4u);
  __atomic_store_n(&d->own, FW_OWN_CPU, __ATOMIC_RELEASE);
  nic->rx_dev_next = (nic->rx_dev_next + 1u) & (FW_RING_SLOTS - 1u);
}

static bool tx_one(struct lan9118 *nic)
{
  struct fw_desc *d = &nic->tx->d[nic->tx_dev_next];
  if (__atomic_load_n(&d->own, __ATOMIC_ACQUIRE) != FW_OWN_DEV)
    return false;
  uint32_t len = d->len, words = (len + 3u) / 4u;
  if ((rd(nic, TX_FIFO_INF) & 0xffffu) < 4u * (words + 2u))
    return false; /* no room in the TX FIFO yet */
  const uint8_t *p = (const uint8_t *)(uintptr_t)d->buf;
  wr(nic, TX_DATA_FIFO, TXA_FIRST | TXA_LAST | len);
  wr(nic, TX_DATA_FIFO, (nic->tx_dev_next << 16) | len); /* tag: the slot; packet length */
  for (uint32_t i = 0; i < words; i++) {
    uint32_t w = 0;
    for (uint32_t b = 0; b < 4u && 4u * i + b < len; b++)
      w |= (uint32_t)p[4u * i + b] << (8u * b);
    wr(nic, TX_DATA_FIFO, w);
  }
  __atomic_store_n(&d->own, FW_OWN_CPU, __ATOMIC_RELEASE);
  nic->tx_dev_next = (nic->tx_dev_next + 1u) & (FW_RING_SLOTS - 1u);
  return true;
}

void lan9118_pump(struct lan9118 *nic)
{
  while ((rd(nic, RX_FIFO_INF) >> 16) & 0xffu) /* RX status words waiting */
    rx_one(nic);
  while (tx_one(nic)) {
  }
  while ((rd(nic, TX_FIFO_INF) >> 16) & 0xffu) /* TX status words: drop them (polled driver) */
    (void)rd(nic, TX_STATUS_FIFO);
}

uint64_t lan9118_now_ns(struct lan9118 *nic)
{
  uint32_t t = rd(nic, FREE_RUN);
  if (t < nic->clock_last)
    nic->clock_hi++;
  nic->clock_last = t;
  return (((uint64_t)nic->clock_hi << 32) | t) * 40u; /* 25 MHz */
}
