/*
 * The guest's free memory: all e820 RAM above the probe's own image (the
 * probe uses nothing there), as page-number ranges in address order. The
 * balloon always holds the first pages of it, so "which pages are in the
 * balloon" is a count, and `mem touch` dirties the pages the balloon takes
 * next: touching then inflating the same amount frees what was touched.
 */
#include "probe.h"

#define PAGE_SHIFT 12
#define PFN_4G (1ull << (32 - PAGE_SHIFT))

/* .noinit: only the first n_pool are read, and every 8 bytes .bss clears
 * at boot is an emulated instruction under PVM. */
static struct {
    u64 pfn;
    u64 n;
} pool[MAX_E820] __attribute__((section(".noinit")));
static int n_pool;
static u64 n_pages;

extern char __image_end[];

void mempool_init(void)
{
    u64 low = ((u64)__image_end + 4095) >> PAGE_SHIFT;
    for (int i = 0; i < boot.n_e820; i++) {
        const struct e820_entry *e = &boot.e820[i];
        u64 s = (e->start + 4095) >> PAGE_SHIFT, t = e->end >> PAGE_SHIFT;
        if (s < low)
            s = low;
        if (e->type != 1 || s >= t)
            continue;
        pool[n_pool].pfn = s;
        pool[n_pool].n = t - s;
        n_pool++;
        n_pages += t - s;
    }
}

u64 mempool_pages(void) { return n_pages; }

/* Range r and the page number of pool page i. */
static int locate(u64 i, u64 *pfn)
{
    int r = 0;
    while (r < n_pool - 1 && i >= pool[r].n)
        i -= pool[r++].n;
    *pfn = pool[r].pfn + i;
    return r;
}

void mempool_pfns(u32 *out, u64 first, u32 n)
{
    u64 pfn;
    int r = locate(first, &pfn);
    while (n && r < n_pool) {
        u64 run = pool[r].pfn + pool[r].n - pfn;
        u32 k = run < n ? (u32)run : n;
        n -= k;
        if (k && ((u64)out & 4)) {   /* then pairs of 8-byte stores */
            *out++ = (u32)pfn++;
            k--;
        }
        /* Two entries per store: every iteration is emulated under PVM. */
        u64 *o = (u64 *)out;
        u64 pair = (pfn & 0xffffffffu) | ((pfn + 1) << 32);
        for (u32 j = 0; j + 1 < k; j += 2) {
            *o++ = pair;
            pair += 0x0000000200000002ull;
        }
        out = (u32 *)o;
        pfn += k & ~1u;
        if (k & 1)
            *out++ = (u32)pfn++;
        if (++r < n_pool)
            pfn = pool[r].pfn;
    }
}

/* One word per page over the `pages` pool pages after the balloon's,
 * below 4 GiB (the identity map): op 0 writes `seed`-derived words (touch
 * writes the page number), op 1 adds them up into *sum. False, with the
 * pages there are in *free_pages, when there are fewer. */
static bool mem_walk(u64 pages, u64 *free_pages, int op, u64 seed, u64 *sum)
{
    u64 first = virtio_balloon_pages(), avail = 0, pfn;
    int r0 = locate(first, &pfn);
    for (int r = r0; r < n_pool && n_pages > first; r++) {
        u64 s = r == r0 ? pfn : pool[r].pfn, e = pool[r].pfn + pool[r].n;
        if (e > PFN_4G)
            e = PFN_4G;
        avail += e > s ? e - s : 0;
    }
    *free_pages = avail;
    if (pages > avail)
        return false;
    for (int r = r0; pages; r++) {
        u64 s = r == r0 ? pfn : pool[r].pfn, e = pool[r].pfn + pool[r].n;
        u64 n = e - s < pages ? e - s : pages;
        pages -= n;
        volatile u64 *p = phys(s << PAGE_SHIFT);
        if (op == 2) {
            /* only counting */
        } else if (op == 0) {
            for (u64 i = 0; i < n; i++, p += 4096 / 8)
                *p = (s + i) ^ seed;
        } else {
            for (u64 i = 0; i < n; i++, p += 4096 / 8)
                *sum = *sum * 31 + *p;
        }
    }
    return true;
}

bool mem_touch(u64 pages, u64 *free_pages) { return mem_walk(pages, free_pages, 0, 0, 0); }

/* A pattern that depends on the seed, so a page that lost its contents or
 * came back from elsewhere changes the sum. */
bool mem_fill(u64 pages, u64 seed, u64 *free_pages)
{
    return mem_walk(pages, free_pages, 0, seed * 0x9e3779b97f4a7c15ull, 0);
}

bool mem_sum(u64 pages, u64 *sum, u64 *free_pages)
{
    *sum = 0;
    return mem_walk(pages, free_pages, 1, 0, sum);
}

/* The dirtier (`mem dirty`): writes the first word of each page over a
 * region in order, pass after pass, a value from the page number and the
 * pass; `mem check` then knows what every page must hold. A migration that
 * misses a page the guest wrote (a dirty page it did not send again) shows
 * up as a page holding an older pass. */
static u64 dirty_first, dirty_pages, dirty_pass, dirty_pos;

static u64 dirty_value(u64 pfn, u64 pass) { return pfn ^ ((pass + 1) * 0x9e3779b97f4a7c15ull); }

bool mem_dirty_begin(u64 pages, u64 *free_pages)
{
    u64 sum;
    /* The same pages `mem touch` and `mem fill` use; checks they exist. */
    if (!mem_walk(pages, free_pages, 2, 0, &sum))
        return false;
    dirty_first = virtio_balloon_pages();
    dirty_pages = pages;
    dirty_pass = 0;
    dirty_pos = 0;
    return true;
}

void mem_dirty_step(u64 count)
{
    while (count--) {
        u64 pfn;
        locate(dirty_first + dirty_pos, &pfn);
        *(volatile u64 *)phys(pfn << PAGE_SHIFT) = dirty_value(pfn, dirty_pass);
        if (++dirty_pos == dirty_pages) {
            dirty_pos = 0;
            dirty_pass++;
        }
    }
}

void mem_dirty_where(u64 *pass, u64 *pos)
{
    *pass = dirty_pass;
    *pos = dirty_pos;
}

/* -1 when every page holds what the dirtier last wrote there, else the
 * first page that does not (pages it never reached are not checked). */
i64 mem_dirty_check(u64 *holds, u64 *wants)
{
    for (u64 i = 0; i < dirty_pages; i++) {
        if (i >= dirty_pos && dirty_pass == 0)
            break;
        u64 pfn;
        locate(dirty_first + i, &pfn);
        u64 want = dirty_value(pfn, i < dirty_pos ? dirty_pass : dirty_pass - 1);
        u64 got = *(volatile u64 *)phys(pfn << PAGE_SHIFT);
        if (got != want) {
            *holds = got;
            *wants = want;
            return (i64)i;
        }
    }
    return -1;
}
