/* The few libc routines gcc may call even in freestanding code. */
#include "probe.h"

/* One string instruction instead of a byte loop: under an emulating
 * hypervisor (PVM) every guest instruction costs, and a 4 KiB byte loop
 * took milliseconds. */
/* Under PVM every iteration of a string instruction is emulated like one
 * instruction, so the bulk goes 8 bytes per iteration and only the tail by
 * bytes. */
void *memset(void *d, int c, size_t n)
{
    void *p = d;
    size_t q = n / 8, tail = n % 8;
    u64 pattern = 0x0101010101010101ull * (u8)c;
    __asm__ volatile("rep stosq" : "+D"(p), "+c"(q) : "a"(pattern) : "memory");
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(tail) : "a"(pattern) : "memory");
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    void *dp = d;
    size_t q = n / 8, tail = n % 8;
    __asm__ volatile("rep movsq" : "+D"(dp), "+S"(s), "+c"(q) : : "memory");
    __asm__ volatile("rep movsb" : "+D"(dp), "+S"(s), "+c"(tail) : : "memory");
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;
    if (dp < sp) {
        while (n--)
            *dp++ = *sp++;
    } else {
        while (n--)
            dp[n] = sp[n];
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* repne scasb: one emulated iteration per byte instead of a loop's three
 * or four instructions. */
size_t strnlen(const char *s, size_t max)
{
    const char *p = s;
    size_t left = max;
    if (!max)
        return 0;
    __asm__ volatile("repne scasb" : "+D"(p), "+c"(left) : "a"(0) : "memory", "cc");
    size_t n = (size_t)(p - s);
    return p[-1] == 0 ? n - 1 : n;
}

size_t strlen(const char *s)
{
    return strnlen(s, (size_t)-1);
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return (u8)a[i] < (u8)b[i] ? -1 : 1;
        if (!a[i])
            return 0;
    }
    return 0;
}

int strcmp(const char *a, const char *b)
{
    return strncmp(a, b, (size_t)-1);
}

int parse_u64(const char *s, u64 *out)
{
    const char *p = s;
    u64 v = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        const char *start = p;
        for (;; p++) {
            int d;
            if (*p >= '0' && *p <= '9')
                d = *p - '0';
            else if (*p >= 'a' && *p <= 'f')
                d = *p - 'a' + 10;
            else if (*p >= 'A' && *p <= 'F')
                d = *p - 'A' + 10;
            else
                break;
            v = (v << 4) | (u64)d;
        }
        if (p == start)
            return 0;
    } else {
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            v = v * 10 + (u64)(*p++ - '0');
    }
    *out = v;
    return (int)(p - s);
}
