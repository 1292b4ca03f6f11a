/* A memory writer for live-migration measurements: keeps rewriting a region
 * at a set rate, so a migration meets a known dirty rate. Whole pages are
 * written (not one byte each), as a real workload would, and the contents
 * change every pass so no page is ever all zeros. Pacing is by the clock:
 * every 10 ms it writes what the rate allows for the time gone by, at most
 * two ticks' share, so time spent descheduled (or paused for a migration's
 * final copy) lowers the rate it reports instead of coming back as a burst. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { PAGE = 4096, TICK_NS = 10 * 1000 * 1000 };

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int cmd_dirty(int argc, char **argv)
{
    if (argc < 2 || argc > 3) die("dirty", "usage: dirty SIZE MIB_PER_S [SECONDS]");
    uint64_t bytes = parse_size("SIZE", argv[0]) & ~(uint64_t)(PAGE - 1);
    uint64_t rate = parse_count("MIB_PER_S", argv[1]);
    uint64_t seconds = argc > 2 ? parse_count("SECONDS", argv[2]) : 0;
    if (bytes == 0) die("SIZE", "expected at least one page");
    if (rate == 0 || rate > 100000) die("MIB_PER_S", "expected 1..100000");

    unsigned char *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) die("dirty", "mmap %llu bytes: %s", (unsigned long long)bytes, strerror(errno));
    /* Backed before the clock starts: the first pass costs page faults. */
    memset(region, 0x5a, bytes);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    uint64_t pages = bytes / PAGE, next = 0, written = 0, passes = 0;
    const double per_ns = (double)(rate << 20) / 1e9;
    const double tick_bytes = per_ns * TICK_NS;
    report("dirty", "started bytes=%llu MiB/s=%llu", (unsigned long long)bytes, (unsigned long long)rate);
    uint64_t start = now_ns(), last = start;
    double budget = 0;
    while (!stop_requested) {
        uint64_t now = now_ns();
        if (seconds != 0 && now - start >= seconds * 1000000000u) break;
        budget += per_ns * (double)(now - last);
        last = now;
        /* After a stall, two ticks' share at most (one tick and the sleep's
         * overshoot): the rate falls rather than bursts. */
        if (budget > 2 * tick_bytes) budget = 2 * tick_bytes;
        while (budget >= PAGE) {
            memset(region + next * PAGE, (int)(passes * 2 + 1), PAGE);
            budget -= PAGE;
            written += PAGE;
            if (++next == pages) {
                next = 0;
                passes++;
            }
        }
        struct timespec tick = {0, TICK_NS};
        nanosleep(&tick, NULL);
    }
    uint64_t ns = now_ns() - start;
    report("dirty", "bytes=%llu seconds=%.2f MiB/s=%.1f passes=%llu", (unsigned long long)bytes, (double)ns / 1e9,
           (double)written / 1048576.0 / ((double)ns / 1e9), (unsigned long long)passes);
    return 0;
}
