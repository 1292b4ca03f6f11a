/*
 * Minimal printf to COM1. Output of one call is contiguous on the wire: the
 * BSP and the APs share the UART, so each call holds a spinlock (xchg, which
 * every x86 emulator handles) while its bytes go out.
 */
#include "probe.h"
#include "io.h"

static volatile int print_lock;

static void lock(void)
{
    while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
        while (print_lock)
            cpu_relax();
}

static void unlock(void)
{
    __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

struct outbuf {
    char buf[128];
    size_t len;
};

static void out_flush(struct outbuf *o)
{
    serial_write(o->buf, o->len);
    o->len = 0;
}

static void out_char(struct outbuf *o, char c)
{
    if (o->len == sizeof(o->buf))
        out_flush(o);
    o->buf[o->len++] = c;
}

/* Runs of text go in by memcpy: per character work is what costs under
 * PVM, where every guest instruction is emulated. */
static void out_str(struct outbuf *o, const char *s, size_t n)
{
    while (n) {
        if (o->len == sizeof(o->buf))
            out_flush(o);
        size_t k = sizeof(o->buf) - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static void out_num(struct outbuf *o, u64 v, unsigned base, int width, char pad)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[24];
    int start = sizeof(tmp);
    /* Shifts for hex and a constant divisor for decimal (which the compiler
     * turns into a multiply): a variable-base div is a slow instruction to
     * emulate. */
    if (base == 16) {
        do {
            tmp[--start] = digits[v & 15];
            v >>= 4;
        } while (v);
    } else {
        do {
            tmp[--start] = digits[v % 10];
            v /= 10;
        } while (v);
    }
    for (int n = (int)sizeof(tmp) - start; width > n; width--)
        out_char(o, pad);
    while (start < (int)sizeof(tmp))
        out_char(o, tmp[start++]);
}

/* The first c in [p, end), or end: one emulated iteration per byte. */
static const char *find_char(const char *p, const char *end, char c)
{
    size_t n = (size_t)(end - p);
    if (n == 0)
        return end;
    __asm__ volatile("repne scasb" : "+D"(p), "+c"(n) : "a"(c) : "memory", "cc");
    return p[-1] == c ? p - 1 : end;
}

static void vformat(struct outbuf *o, const char *fmt, va_list ap)
{
    /* Literal runs are found by string instructions (one emulated
     * iteration per byte) rather than a loop of six per byte. */
    const char *end = fmt + strlen(fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *run = p;
            p = find_char(p, end, '%') - 1;
            out_str(o, run, (size_t)(p + 1 - run));
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        while (*p == 'l') {
            lng++;
            p++;
        }
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            out_str(o, s, strlen(s));
            break;
        }
        case 'c':
            out_char(o, (char)va_arg(ap, int));
            break;
        case 'd': {
            long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            if (v < 0) {
                out_char(o, '-');
                v = -v;
            }
            out_num(o, (u64)v, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            u64 v = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            out_num(o, v, *p == 'u' ? 10 : 16, width, pad);
            break;
        }
        case '%':
            out_char(o, '%');
            break;
        default:
            out_char(o, '?');
            break;
        }
    }
}

void kprintf(const char *fmt, ...)
{
    struct outbuf o;
    o.len = 0;
    va_list ap;
    va_start(ap, fmt);
    lock();
    vformat(&o, fmt, ap);
    out_flush(&o);
    unlock();
    va_end(ap);
}

/* For the exception path, which must not wait on a lock its own CPU holds. */
void kprintf_nolock(const char *fmt, ...)
{
    struct outbuf o;
    o.len = 0;
    va_list ap;
    va_start(ap, fmt);
    vformat(&o, fmt, ap);
    out_flush(&o);
    va_end(ap);
}
