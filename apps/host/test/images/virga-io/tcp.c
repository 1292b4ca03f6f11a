/* TCP stream throughput: one connection, one direction. The receiver's
 * figure (first byte to end of stream) is the one to quote: the sender's
 * also counts connection set-up and waits for the receiver to close, so
 * that the last bytes are delivered, not just queued, when its clock stops. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CHUNK = 128 * 1024 };

static uint16_t parse_port(const char *text)
{
    uint64_t port = parse_count("PORT", text);
    if (port == 0 || port > 65535) die("PORT", "expected 1..65535, got '%s'", text);
    return (uint16_t)port;
}

int cmd_tcp_recv(int argc, char **argv)
{
    if (argc != 1) die("tcp-recv", "usage: tcp-recv PORT");
    uint16_t port = parse_port(argv[0]);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) die("tcp-recv", "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("tcp-recv", "bind port %u: %s", port, strerror(errno));
    if (listen(ls, 1) != 0) die("tcp-recv", "listen: %s", strerror(errno));
    /* The peer may start its sender once this line is out. */
    report("tcp-recv", "listening port=%u", port);

    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int s = accept(ls, (struct sockaddr *)&peer, &plen);
    if (s < 0) die("tcp-recv", "accept: %s", strerror(errno));
    close(ls);
    char *buf = aligned_buffer(CHUNK);
    uint64_t bytes = 0, first = 0;
    for (;;) {
        ssize_t n = read(s, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("tcp-recv", "read after %llu bytes: %s", (unsigned long long)bytes, strerror(errno));
        if (n == 0) break;
        if (bytes == 0) first = now_ns();
        bytes += (uint64_t)n;
    }
    uint64_t ns = bytes == 0 ? 0 : now_ns() - first;
    close(s);
    report("tcp-recv", "bytes=%llu seconds=%.3f MB/s=%.1f from=%s", (unsigned long long)bytes, ns / 1e9,
           mb_per_s(bytes, ns), inet_ntoa(peer.sin_addr));
    return 0;
}

int cmd_tcp_send(int argc, char **argv)
{
    if (argc != 3) die("tcp-send", "usage: tcp-send IP PORT MIB");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(parse_port(argv[1]))};
    if (inet_pton(AF_INET, argv[0], &addr.sin_addr) != 1)
        die("IP", "expected an IPv4 address, got '%s'", argv[0]);
    uint64_t total = parse_count("MIB", argv[2]) << 20;

    /* The receiver may still be starting (another machine's boot): retry. */
    int s = -1;
    uint64_t deadline = now_ns() + 30ull * 1000000000u;
    for (;;) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) die("tcp-send", "socket: %s", strerror(errno));
        if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0) break;
        int err = errno;
        close(s);
        if ((err != ECONNREFUSED && err != ENETUNREACH && err != EHOSTUNREACH) || now_ns() > deadline)
            die("tcp-send", "connect %s:%s: %s", argv[0], argv[1], strerror(err));
        usleep(100000);
    }
    char *buf = aligned_buffer(CHUNK);
    uint64_t start = now_ns(), sent = 0;
    while (sent < total) {
        size_t want = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;
        ssize_t n = write(s, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("tcp-send", "write after %llu bytes: %s", (unsigned long long)sent, strerror(errno));
        sent += (uint64_t)n;
    }
    shutdown(s, SHUT_WR);
    while (read(s, buf, CHUNK) > 0) {
    }
    uint64_t ns = now_ns() - start;
    close(s);
    report("tcp-send", "bytes=%llu seconds=%.3f MB/s=%.1f to=%s", (unsigned long long)sent, ns / 1e9,
           mb_per_s(sent, ns), argv[0]);
    return 0;
}
