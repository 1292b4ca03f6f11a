/*
 * COM1, an 8250/16550A at I/O 0x3f8. Output is polled (wait for THRE, then
 * fill the FIFO), except for `txirq`, which drives it by THR-empty
 * interrupts as Linux's tty layer does; input is interrupt driven:
 * IER.ERBFI raises IRQ 4 whenever received data is available and the ISR
 * drains it into a ring buffer.
 */
#include "probe.h"
#include "io.h"

#define COM1 0x3f8
#define RBR  0   /* receive buffer (read) / THR transmit (write) */
#define IER  1
#define FCR  2   /* FIFO control (write) / IIR (read) */
#define LCR  3
#define MCR  4
#define LSR  5
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define IER_RX   0x01
#define IER_TX   0x02

/* Bytes we may write per THRE: 16 once the FIFO is known to work (IIR bits
 * 7:6 read back 11 after enabling it), as Linux's 8250 driver does. */
static unsigned tx_burst = 1;
/* Bytes written since LSR was last read. */
static volatile bool tx_unflushed;

static char rx_buf[256];
static volatile unsigned rx_head, rx_tail;

void serial_init(void)
{
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x80);          /* DLAB: divisor latch */
    outb(COM1 + 0, 0x01);            /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + LCR, 0x03);          /* 8N1 */
    outb(COM1 + FCR, 0x07);          /* FIFO on, clear both, RX trigger 1 byte */
    if ((inb(COM1 + FCR) & 0xc0) == 0xc0)
        tx_burst = 16;
    /* OUT2 gates the UART's interrupt line on PC hardware. */
    outb(COM1 + MCR, 0x0b);          /* DTR | RTS | OUT2 */
}

void serial_write(const char *s, size_t n)
{
    while (n) {
        while (!(inb(COM1 + LSR) & LSR_THRE))
            cpu_relax();
        size_t k = n < tx_burst ? n : tx_burst;
        /* One string instruction per burst: a single I/O exit for the VMM
         * to replay, and far fewer guest instructions than a loop. */
        __asm__ __volatile__("rep outsb" : "+S"(s), "+c"(k) : "d"(COM1) : "memory");
        n -= n < tx_burst ? n : tx_burst;
        tx_unflushed = true;
    }
}

/* For `emit`: bytes straight into the FIFO with no LSR read before or after,
 * one OUT per byte as Linux's 8250 driver writes them, then nothing: what a
 * guest does that knows the FIFO is empty and then goes idle. */
void serial_write_raw(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        outb(COM1, (u8)s[i]);
}

/* Reading LSR once after the last burst is how a VMM that queues transmit
 * writes (Virga coalesces them) learns to send them: without it the bytes a
 * guest wrote just before it halts could wait for the VMM's idle timer. */
void serial_flush(void)
{
    if (!tx_unflushed)
        return;
    tx_unflushed = false;
    while (!(inb(COM1 + LSR) & LSR_THRE))
        cpu_relax();
}

/* What `txirq` still has to send; the ISR takes it a FIFO's worth at a time. */
static const char *volatile txi_next;
static volatile size_t txi_left;

/* Call with IF=0. Returns once the last byte is in the FIFO. */
void serial_write_irq(const char *s, size_t n)
{
    if (n == 0)
        return;
    serial_flush();
    txi_next = s;
    txi_left = n;
    /* THR is empty, so enabling its interrupt raises one at once. */
    outb(COM1 + IER, IER_RX | IER_TX);
    while (txi_left)
        __asm__ __volatile__("sti; hlt; cli" ::: "memory");
}

void serial_enable_rx_irq(void)
{
    (void)inb(COM1 + FCR);           /* reading IIR clears a stale THRE irq */
    outb(COM1 + IER, IER_RX);        /* received data available */
    /* Bytes typed before the route existed: collect them now. Emptying the
     * FIFO also drops the line, so the next byte is a clean edge. */
    serial_irq();
}

void serial_irq(void)
{
    /* As Linux's 8250 driver: IIR first (it acknowledges THR-empty), then
     * LSR decides. Reading RBR until DR clears drops the line, so the next
     * byte makes a fresh edge for the edge-triggered IOAPIC pin. */
    (void)inb(COM1 + FCR);
    u8 lsr;
    while ((lsr = inb(COM1 + LSR)) & LSR_DR) {
        char c = (char)inb(COM1 + RBR);
        if (rx_head - rx_tail < sizeof(rx_buf)) {
            rx_buf[rx_head % sizeof(rx_buf)] = c;
            rx_head++;
        }
    }
    if (!(lsr & LSR_THRE) || txi_left == 0)
        return;
    /* One OUT per byte and no UART access after the last, as Linux writes a
     * FIFO's worth; the next THR-empty interrupt asks for more. */
    size_t k = txi_left < tx_burst ? txi_left : tx_burst;
    const char *p = txi_next;
    for (size_t i = 0; i < k; i++)
        outb(COM1, (u8)p[i]);
    txi_next = p + k;
    txi_left -= k;
    if (txi_left == 0)
        outb(COM1 + IER, IER_RX);
}

int serial_getc(void)
{
    if (rx_head == rx_tail)
        return -1;
    char c = rx_buf[rx_tail % sizeof(rx_buf)];
    rx_tail++;
    return (u8)c;
}

bool serial_rx_pending(void)
{
    return rx_head != rx_tail;
}
