/* virga-io: the I/O measurements of the nested harness (README.md beside
 * this file). Shared helpers; each concern has its own file. */
#ifndef VIRGA_IO_H
#define VIRGA_IO_H

#include <stddef.h>
#include <stdint.h>

/* Prints "virga-io: <what>: <message>" on stderr and exits with status 1. */
void die(const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* A non-negative decimal number, or dies naming the argument. */
uint64_t parse_count(const char *name, const char *text);

/* A size in bytes with an optional K/M/G suffix (powers of 1024). */
uint64_t parse_size(const char *name, const char *text);

/* A page-aligned buffer, as O_DIRECT needs, filled with a fixed pattern. */
void *aligned_buffer(size_t bytes);

/* Size of a block device or regular file in bytes. */
uint64_t device_bytes(int fd, const char *path);

/* One result line on stdout, flushed at once: "VIRGA-IO <name> <fields>". */
void report(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decimal megabytes (10^6) per second. */
double mb_per_s(uint64_t bytes, uint64_t ns);

int cmd_tcp_send(int argc, char **argv);
int cmd_tcp_recv(int argc, char **argv);
int cmd_seq_read(int argc, char **argv);
int cmd_seq_write(int argc, char **argv);
int cmd_rand_read(int argc, char **argv);
int cmd_mmio_lat(int argc, char **argv);
int cmd_dirty(int argc, char **argv);
int cmd_pci_reg(int argc, char **argv);
int cmd_pci_cfg(int argc, char **argv);
int cmd_edu_dma(int argc, char **argv);

/* Background load for mmio-lat: 64 KiB O_DIRECT sequential reads of a
 * device, from a thread, until load_stop(); returns the bytes read. */
struct load;
struct load *load_start(const char *path);
uint64_t load_stop(struct load *load, uint64_t *elapsed_ns);

#endif
