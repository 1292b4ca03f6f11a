/*
 * The test pattern of disk sectors and frame payloads: byte i of a buffer
 * with key k is (i * 7 + k) & 0xff. It repeats every 256 bytes, so one
 * 256-byte block is built per key (eight bytes per step) and then copied
 * or compared by string instructions: a byte loop over a 1.5 KiB frame
 * would be thousands of emulated instructions under PVM.
 */
#include "probe.h"

#define H 0x8080808080808080ull

/* Bytewise a + b mod 256 in each of the eight lanes, no carries between. */
static u64 add_bytes(u64 a, u64 b)
{
    return ((a & ~H) + (b & ~H)) ^ ((a ^ b) & H);
}

static u64 block[32] __attribute__((section(".noinit")));   /* see block_key */
static u32 block_key = ~0u;

static const u8 *block_for(u32 k)
{
    k &= 0xff;
    if (k != block_key) {
        /* Lanes of word w hold 7 * (8w + b) + k = (7b) + (56w + k). */
        const u64 steps = 0x312a231c150e0700ull;   /* 0, 7, 14, ... 49 */
        for (u32 w = 0; w < 32; w++)
            block[w] = add_bytes(steps, 0x0101010101010101ull * ((56 * w + k) & 0xff));
        block_key = k;
    }
    return (const u8 *)block;
}

void pattern_fill(u8 *buf, size_t len, u32 k)
{
    const u8 *b = block_for(k);
    for (size_t off = 0; off < len; off += 256)
        memcpy(buf + off, b, len - off < 256 ? len - off : 256);
}

size_t mem_diff(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    size_t words = n / 8, left = words, start = words * 8;
    if (words) {
        const u8 *p = x, *q = y;
        __asm__ volatile("repe cmpsq" : "+S"(p), "+D"(q), "+c"(left) : : "memory", "cc");
        size_t done = words - left;
        u64 u, v;
        __builtin_memcpy(&u, x + 8 * (done - 1), 8);
        __builtin_memcpy(&v, y + 8 * (done - 1), 8);
        if (u != v)
            start = 8 * (done - 1);
    }
    for (size_t i = start; i < n; i++)
        if (x[i] != y[i])
            return i;
    return n;
}

long pattern_mismatch(const u8 *buf, size_t len, u32 k)
{
    const u8 *b = block_for(k);
    for (size_t off = 0; off < len; off += 256) {
        size_t n = len - off < 256 ? len - off : 256;
        size_t d = mem_diff(buf + off, b, n);
        if (d < n)
            return (long)(off + d);
    }
    return -1;
}
