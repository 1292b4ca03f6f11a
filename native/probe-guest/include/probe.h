#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>
#include "layout.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t i64;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A pointer to a fixed physical address (identity mapped), opaque to gcc so
 * it does not warn about dereferencing small constants. */
static inline void *phys(u64 a)
{
    __asm__("" : "+r"(a));
    return (void *)a;
}

#define barrier() __asm__ __volatile__("" ::: "memory")

/* lib.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Parses decimal or 0x-hex; returns chars consumed (0 = no number). */
int parse_u64(const char *s, u64 *out);

/* pattern.c: byte i = (i * 7 + k) & 0xff (docs/probe-guest.md). */
void pattern_fill(u8 *buf, size_t len, u32 k);
/* Offset of the first byte off the pattern, or -1. */
long pattern_mismatch(const u8 *buf, size_t len, u32 k);
/* Index of the first byte where a and b differ, or n. */
size_t mem_diff(const void *a, const void *b, size_t n);

/* print.c: formatted output to COM1 under a spinlock (APs print too).
 * Supports %s %c %d %u %x with optional 0/width and l/ll. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kprintf_nolock(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* serial.c */
void serial_init(void);
void serial_write(const char *s, size_t n);
void serial_flush(void);
void serial_write_raw(const char *s, size_t n);   /* at most 16 bytes */
void serial_write_irq(const char *s, size_t n);   /* THR-empty interrupt driven */
void serial_enable_rx_irq(void);
void serial_irq(void);
int serial_getc(void);   /* -1 when the RX buffer is empty; call with IF=0 */
bool serial_rx_pending(void);

/* boot_info.c */
struct e820_entry {
    u64 start;
    u64 end;   /* exclusive */
    u32 type;
};
#define MAX_E820 128
#define CMDLINE_MAX 2048
struct boot_info {
    int entry;   /* BOOT_LINUX64 / BOOT_PVH */
    bool valid;
    char cmdline[CMDLINE_MAX];
    int n_e820;
    struct e820_entry e820[MAX_E820];
    u64 mem_usable;
};
extern struct boot_info boot;
void boot_info_parse(int entry, u64 ptr);
bool e820_is_ram(u64 start, u64 end);

/* idt.c */
struct irq_frame {
    u64 r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;
};
void idt_init(void);
void idt_load(void);
void isr_set_com1_gsi(u32 gsi);

/* apic.c */
void lapic_init(void);
void lapic_enable(void);
u32 lapic_id(void);
void lapic_eoi(void);
void lapic_send_ipi(u32 apic_id, u32 icr_low);
u32 lapic_read(u32 reg);
void lapic_write(u32 reg, u32 val);
void ioapic_init(void);
bool ioapic_route(u32 gsi, u8 vector, u32 dest_apic);
#define LAPIC_TIMER_LVT  0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR  0x390
#define LAPIC_TIMER_DIV  0x3e0

/* timer.c: LAPIC timer, one interrupt per expiry; ticks counts them. */
extern volatile u64 timer_ticks;
void timer_irq(void);
void timer_oneshot_us(u32 us);
void timer_periodic_us(u32 us);
void timer_stop(void);
bool timer_expired(void);
void delay_us(u32 us);

/* mptable.c */
struct mp_ioapic {
    u8 id;
    u32 addr;
    u32 gsi_base;
    u32 pins;
};
struct mp_info {
    bool found;
    u32 lapic_addr;
    int ncpus;
    u8 cpu_apic[MAX_CPUS];
    int nioapics;
    struct mp_ioapic ioapic[8];
};
extern struct mp_info mp;
void mptable_parse(void);
u32 mp_isa_irq_to_gsi(u8 irq);

/* smp.c */
extern int cpus_online;
void smp_boot(void);
void ap_main(void);

/* virtio_mmio.c / virtio_blk.c / virtio_net.c / virtio_balloon.c */
/* pci.c: ECAM, found through the ACPI MCFG */
struct pci_ecam {
    u64 base;
    u8 first_bus, last_bus;
};
bool pci_ecam(struct pci_ecam *out);
u32 pci_read32(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 reg);
void pci_write32(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 reg, u32 value);
void pci_scan(void);
/* Calls visit for each function present on `bus`, in scan order. */
typedef void (*pci_visit)(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 id, void *ctx);
void pci_each_function(const struct pci_ecam *e, u32 bus, pci_visit visit, void *ctx);
/* The same, and behind each bridge found, its secondary bus. */
void pci_each_function_below(const struct pci_ecam *e, u32 bus, pci_visit visit, void *ctx);
/* `pci slot BB:DD.F [arm|ack|on|off]`: a root port's hot-plug slot. */
void pci_slot(u32 bus, u32 dev, u32 fn, const char *action);
/* The hot-plug MSI's pseudo-GSI (delivered on VEC_GSI_BASE + this). */
#define PCI_SLOT_IRQ 0x5f
void pci_slot_irq(void);
/* `pci show BB:DD.F`: its BARs and capabilities. */
void pci_show(u32 bus, u32 dev, u32 fn);
/* BAR `bar`'s address as programmed (0 for an I/O BAR). */
u64 pci_bar_address(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 bar);
/* virtio_pci.c: drives the virtio-blk functions on bus 0 and behind its root ports. */
void virtio_pci_probe(void);

void virtio_probe_cmdline(const char *cmdline);
void virtio_irq(u32 gsi);
bool virtio_mmio_latency(int slot, u64 count, u64 *cycles);
int virtio_blk_count(void);
/* Re-reads the capacity of disk n (< virtio_blk_count()). */
void virtio_blk_info(int n, u64 *capacity, bool *ro, u32 *changes);
/* Returns the virtio status byte (0 = OK) or -1 on timeout. */
int virtio_blk_rw(int n, bool write, u64 sector, u8 *buf);
int virtio_blk_flush(int n);
int virtio_net_count(void);
/* "aa:bb:cc:dd:ee:ff" and a NUL into out[18]. */
void format_mac(char *out, const u8 mac[6]);
struct net_info {
    u8 mac[6];
    bool link_up;
    u32 changes;   /* configuration-change interrupts seen */
};
void virtio_net_info(int n, struct net_info *out);
/* Sends one frame (14-byte header + pattern payload); false on timeout. */
bool virtio_net_send(int n, const u8 dst[6], u16 ethertype, u32 frame_len, u32 seed);
struct net_frame {
    u32 len;          /* whole frame, header included */
    const u8 *data;   /* valid until the next receive */
};
/* Waits for a frame (of `ethertype` unless it is 0; others are dropped and
 * their buffers reposted); false on timeout. */
bool virtio_net_recv(int n, u32 timeout_us, u16 ethertype, struct net_frame *out);
bool virtio_balloon_present(void);
u32 virtio_balloon_pages(void);   /* pages in the balloon (0 without one) */
/* Finishes the adjustment in progress (up to timeout_us), then reports. */
void virtio_balloon_info(u32 timeout_us, u32 *target, u32 *actual);

/* mempool.c: free RAM above the image, the pages the balloon takes. */
void mempool_init(void);
u64 mempool_pages(void);
/* Page numbers of pool pages first..first+n-1. */
void mempool_pfns(u32 *out, u64 first, u32 n);
/* Writes one word per page to `pages` free pages not in the balloon (the
 * ones it takes next); false, with how many there are, if fewer are free
 * below 4 GiB. */
bool mem_touch(u64 pages, u64 *free_pages);
bool mem_fill(u64 pages, u64 seed, u64 *free_pages);
bool mem_sum(u64 pages, u64 *sum, u64 *free_pages);
bool mem_dirty_begin(u64 pages, u64 *free_pages);
void mem_dirty_step(u64 count);
void mem_dirty_where(u64 *pass, u64 *pos);
i64 mem_dirty_check(u64 *holds, u64 *wants);

/* shell.c / power.c */
void shell_run(void) __attribute__((noreturn));
void print_info_markers(void);
void power_off(void) __attribute__((noreturn));
void power_reboot(void) __attribute__((noreturn));
void power_reboot_cf9(void) __attribute__((noreturn));
void power_crash(void) __attribute__((noreturn));
void halt_forever(void) __attribute__((noreturn));
