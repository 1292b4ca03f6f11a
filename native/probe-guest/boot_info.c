/*
 * Boot protocol structures. Everything we need is copied out at once: the
 * zero page / start_info live in low memory that the AP trampoline may reuse.
 */
#include "probe.h"

struct boot_info boot;

/* Linux struct boot_params (zero page) offsets, arch/x86/include/uapi/asm/bootparam.h. */
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES     0x1e8   /* u8 */
#define BP_CMD_LINE_PTR     0x228   /* hdr.cmd_line_ptr, u32 */
#define BP_E820_TABLE       0x2d0   /* 128 x {u64 addr, u64 size, u32 type}, packed */
#define BP_E820_MAX         128

/* Xen struct hvm_start_info, xen/include/public/arch-x86/hvm/start_info.h. */
#define HVM_START_MAGIC  0x336ec578
#define SI_MAGIC          0    /* u32 */
#define SI_VERSION        4    /* u32 */
#define SI_FLAGS          8    /* u32 */
#define SI_NR_MODULES    12    /* u32 */
#define SI_MODLIST_PADDR 16    /* u64 */
#define SI_CMDLINE_PADDR 24    /* u64 */
#define SI_RSDP_PADDR    32    /* u64 */
#define SI_MEMMAP_PADDR  40    /* u64, version >= 1 */
#define SI_MEMMAP_ENTRIES 48   /* u32, version >= 1 */
#define SI_MEMMAP_ENTRY_SIZE 24 /* {u64 addr, u64 size, u32 type, u32 reserved} */

/* Only the identity-mapped first 4 GiB is addressable. */
static bool mapped(u64 addr, u64 len)
{
    return addr && addr < (1ull << 32) && len <= (1ull << 32) - addr;
}

static u32 rd32(u64 a) { u32 v; __builtin_memcpy(&v, (const void *)a, 4); return v; }
static u64 rd64(u64 a) { u64 v; __builtin_memcpy(&v, (const void *)a, 8); return v; }

static void copy_cmdline(u64 addr)
{
    if (!mapped(addr, 1))
        return;
    size_t limit = CMDLINE_MAX - 1;
    if ((1ull << 32) - addr < limit)
        limit = (size_t)((1ull << 32) - addr);
    size_t n = strnlen((const char *)addr, limit);
    memcpy(boot.cmdline, (const char *)addr, n);
    boot.cmdline[n] = 0;
}

static void add_e820(u64 start, u64 size, u32 type)
{
    /* qboot's PVH memmap ends with an all-zero entry; skip empty ranges. */
    if (boot.n_e820 >= MAX_E820 || size == 0)
        return;
    struct e820_entry *e = &boot.e820[boot.n_e820++];
    e->start = start;
    e->end = start + size;
    e->type = type;
    if (type == 1)
        boot.mem_usable += size;
}

void boot_info_parse(int entry, u64 ptr)
{
    boot.entry = entry;
    if (entry == BOOT_LINUX64) {
        if (!mapped(ptr, 4096))
            return;
        boot.valid = true;
        copy_cmdline(rd32(ptr + BP_CMD_LINE_PTR) |
                     ((u64)rd32(ptr + BP_EXT_CMD_LINE_PTR) << 32));
        unsigned n = *(const u8 *)(ptr + BP_E820_ENTRIES);
        if (n > BP_E820_MAX)
            n = BP_E820_MAX;
        for (unsigned i = 0; i < n; i++) {
            u64 e = ptr + BP_E820_TABLE + 20 * i;
            add_e820(rd64(e), rd64(e + 8), rd32(e + 16));
        }
    } else {
        if (!mapped(ptr, 56) || rd32(ptr + SI_MAGIC) != HVM_START_MAGIC)
            return;
        boot.valid = true;
        copy_cmdline(rd64(ptr + SI_CMDLINE_PADDR));
        if (rd32(ptr + SI_VERSION) >= 1) {
            u64 map = rd64(ptr + SI_MEMMAP_PADDR);
            u32 n = rd32(ptr + SI_MEMMAP_ENTRIES);
            if (n > MAX_E820)
                n = MAX_E820;
            if (mapped(map, (u64)n * SI_MEMMAP_ENTRY_SIZE))
                for (u32 i = 0; i < n; i++) {
                    u64 e = map + SI_MEMMAP_ENTRY_SIZE * i;
                    add_e820(rd64(e), rd64(e + 8), rd32(e + 16));
                }
        }
    }
}

bool e820_is_ram(u64 start, u64 end)
{
    for (int i = 0; i < boot.n_e820; i++) {
        const struct e820_entry *e = &boot.e820[i];
        if (e->type == 1 && e->start <= start && end <= e->end)
            return true;
    }
    return false;
}
