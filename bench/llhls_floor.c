/* A floor for the LL-HLS held-request benchmark (bench/llhls_load.py): the cost on this
 * machine of the same answers as our server's, with no HTTP parsing to speak of and no
 * interpreter. Not part of `make bench`; run by hand beside it to learn how much of a
 * core the kernel's loopback TCP alone takes for N held viewers.
 *
 *   gcc -O2 -Wall -o llhls_floor bench/llhls_floor.c
 *   llhls_floor PORT RECORDING STAMPS
 *
 * One thread, epoll, keep-alive HTTP/1.1 on 127.0.0.1:PORT for bench/llhls_viewers.c.
 * The recording's fragments (moof+mdat, about 20 KB) become parts on a fixed schedule:
 * one every 0.2 s, five to a 1 s segment (the recording's own timing is not followed),
 * cycling through the recording. Each part's creation is appended to STAMPS as
 * "index due fed" (CLOCK_MONOTONIC seconds), as bench/llhls_server.py's Replay writes
 * it, so bench.llhls_load.summarize applies unchanged.
 *
 * Served under /hls/0/: stream.m3u8 (at once without _HLS_msn; with _HLS_msn/_HLS_part
 * at once if that part exists, else held until it lands; _HLS_skip=YES gives a delta
 * update) and part<k>.m4s (at once for the last 60 parts, held for the next one, 404
 * otherwise). When a part lands its answer goes to every held part request first, then
 * the playlist (built once per part) to every held playlist request: one send() of
 * precomputed bytes (headers as ours sends them, then the body) per socket.
 *
 * On stderr, per part: "land INDEX HELD_PARTS PARTS_MS HELD_PLAYLISTS ALL_MS" (ms after
 * it was fed until its part answers, then all answers, were handed to the kernel: on
 * loopback send() also does the receiving socket's TCP work), and on SIGTERM how many
 * send() calls there were and how many answers did not fit in one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PART_SECONDS 0.2
#define PER_SEGMENT 5
#define WINDOW 12      /* segments listed */
#define PARTS_KEPT 3   /* closed segments whose parts are listed */
#define SKIP_UNTIL 6   /* segments a delta update keeps */
#define RING 64        /* part answers kept; 60 served */
#define SERVED 60
#define AHEAD 32       /* playlist holds: at most this many parts ahead */
#define IN_MAX 4096
#define LISTENER (-1)
#define TIMER (-2)

/* Refcounted immutable answer bytes: a slow socket may still be sending an old one. */
typedef struct {
    int refs;
    size_t len;
    char data[];
} Buf;

typedef struct {
    int fd, held, skip;
    unsigned gen;
    long target;
    int in_len;
    Buf *out;
    size_t off;
    char in[IN_MAX];
} Conn;

typedef struct {
    int fd;
    unsigned gen;
} Ref;

typedef struct {
    Ref *at;
    int n, cap;
} List;

static Conn **conns;
static int ep, nconns;
static long next_part;
static Buf *parts[RING], *full, *delta;
static List held_parts, held_playlists[AHEAD];
static char **frags;
static size_t *frag_len;
static int nfrags;
static char date[64];
static long sends, partial, resumed;
static volatile sig_atomic_t stopping;

static void on_term(int sig) {
    (void)sig;
    stopping = 1;
}

static const char SECURITY[] =
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: same-origin\r\n"
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: https:; media-src 'self' blob:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "form-action 'self'\r\n"
    "Access-Control-Allow-Origin: *\r\n";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void unref(Buf *b) {
    if (b && --b->refs == 0) free(b);
}

static Buf *answer(const char *status, const char *type, const char *cache, const char *body,
                   size_t len) {
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nDate: %s\r\nServer: TwistedWeb/26.10.0\r\n%s"
                     "Content-Type: %s\r\nCache-Control: %s\r\nContent-Length: %zu\r\n\r\n",
                     status, date, SECURITY, type, cache, len);
    Buf *b = malloc(sizeof(Buf) + n + len);
    b->refs = 1;
    b->len = n + len;
    memcpy(b->data, head, n);
    memcpy(b->data + n, body, len);
    return b;
}

static Buf *not_found, *bad_request;

static void set_date(void) {
    time_t t = time(NULL);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
}

/* The media playlist after next_part parts; skip: the delta update. */
static Buf *playlist(int skip) {
    static char text[16384];
    long closed = next_part / PER_SEGMENT, first = closed > WINDOW ? closed - WINDOW : 0;
    int n = snprintf(text, sizeof text,
                     "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
                     "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,"
                     "PART-HOLD-BACK=0.750\n#EXT-X-PART-INF:PART-TARGET=0.250\n"
                     "#EXT-X-MEDIA-SEQUENCE:%ld\n#EXT-X-MAP:URI=\"init0.mp4\"\n",
                     first);
    long from = first;
    if (skip && closed - first > SKIP_UNTIL) {
        from = closed - SKIP_UNTIL;
        n += snprintf(text + n, sizeof text - n, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%ld\n", from - first);
    }
    for (long s = from; s <= closed; s++) {
        long upto = s == closed ? next_part : (s + 1) * PER_SEGMENT;
        if (s >= closed - PARTS_KEPT)
            for (long p = s * PER_SEGMENT; p < upto; p++)
                n += snprintf(text + n, sizeof text - n,
                              "#EXT-X-PART:DURATION=0.20000,URI=\"part%ld.m4s\"%s\n", p,
                              p % PER_SEGMENT ? "" : ",INDEPENDENT=YES");
        if (s < closed) n += snprintf(text + n, sizeof text - n, "#EXTINF:1.00000,\nseg%ld.m4s\n", s);
    }
    n += snprintf(text + n, sizeof text - n, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part%ld.m4s\"\n",
                  next_part);
    return answer("200 OK", "application/vnd.apple.mpegurl", "no-cache", text, n);
}

static void watch(Conn *c, int out) {
    struct epoll_event e = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void drop(Conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    unref(c->out);
    c->out = NULL;
    c->held = 0;
    c->in_len = 0;
    c->gen++;
    c->fd = -1;
}

/* One send() of b; what it could not take waits for EPOLLOUT. 0 if c is gone. */
static int reply(Conn *c, Buf *b) {
    ssize_t n = send(c->fd, b->data, b->len, MSG_NOSIGNAL);
    sends++;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            drop(c);
            return 0;
        }
        n = 0;
    }
    if ((size_t)n < b->len) {
        partial++;
        b->refs++;
        c->out = b;
        c->off = n;
        watch(c, 1);
    }
    return 1;
}

static void hold(List *l, Conn *c) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->at = realloc(l->at, l->cap * sizeof(Ref));
    }
    l->at[l->n++] = (Ref){c->fd, c->gen};
}

static long param(const char *query, const char *name, long otherwise) {
    const char *at = query ? strstr(query, name) : NULL;
    return at ? strtol(at + strlen(name), NULL, 10) : otherwise;
}

/* Answer (or hold) one request; 0 if c is gone. */
static int request(Conn *c, char *line) {
    if (strncmp(line, "GET /hls/0/", 11) != 0) return reply(c, not_found);
    char *path = line + 11, *end = strchr(path, ' ');
    if (!end) return reply(c, bad_request);
    *end = 0;
    char *query = strchr(path, '?');
    if (query) *query++ = 0;
    if (strcmp(path, "stream.m3u8") == 0) {
        c->skip = query && strstr(query, "_HLS_skip=YES") != NULL;
        long msn = param(query, "_HLS_msn=", -1);
        if (msn < 0) return reply(c, c->skip ? delta : full);
        long target = msn * PER_SEGMENT + param(query, "_HLS_part=", PER_SEGMENT - 1);
        if (target < next_part) return reply(c, c->skip ? delta : full);
        if (target >= next_part + AHEAD - 1) return reply(c, bad_request);
        c->held = 2;
        c->target = target;
        hold(&held_playlists[target % AHEAD], c);
        return 1;
    }
    long k;
    char tail[16];
    if (sscanf(path, "part%ld%15s", &k, tail) == 2 && strcmp(tail, ".m4s") == 0) {
        if (k < next_part && k >= next_part - SERVED) return reply(c, parts[k % RING]);
        if (k == next_part) {
            c->held = 1;
            hold(&held_parts, c);
            return 1;
        }
    }
    return reply(c, not_found);
}

/* Requests read and not yet answered, in turn, while nothing is held or being sent. */
static void serve(Conn *c) {
    while (c->fd >= 0 && !c->held && !c->out) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) return;
        int used = end + 4 - c->in;
        end[2] = 0;
        char line[IN_MAX];
        snprintf(line, sizeof line, "%s", c->in);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (!request(c, line)) return;
    }
}

static void readable(Conn *c) {
    for (;;) {
        if (c->in_len == IN_MAX) {
            drop(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            drop(c);
            return;
        }
        if (n < 0) break;
        c->in_len += n;
    }
    serve(c);
}

static void writable(Conn *c) {
    ssize_t n = send(c->fd, c->out->data + c->off, c->out->len - c->off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) drop(c);
        return;
    }
    c->off += n;
    resumed++;
    if (c->off < c->out->len) return;
    unref(c->out);
    c->out = NULL;
    watch(c, 0);
    serve(c);
}

static Conn *live(Ref r) {
    Conn *c = r.fd < nconns ? conns[r.fd] : NULL;
    return c && c->fd == r.fd && c->gen == r.gen ? c : NULL;
}

/* Part next_part lands: its answer to the held part requests, then the playlist. */
static void land(FILE *stamps, double due) {
    double fed = now();
    long k = next_part;
    set_date();
    unref(parts[k % RING]);
    parts[k % RING] = answer("200 OK", "video/mp4", "public, max-age=31536000, immutable",
                             frags[k % nfrags], frag_len[k % nfrags]);
    next_part++;
    unref(full);
    unref(delta);
    full = playlist(0);
    delta = playlist(1);
    fprintf(stamps, "%ld %.6f %.6f\n", k, due, fed);
    fflush(stamps);
    List waiting = held_parts;
    held_parts = (List){0};
    for (int i = 0; i < waiting.n; i++) {
        Conn *c = live(waiting.at[i]);
        if (c && c->held == 1) {
            c->held = 0;
            if (reply(c, parts[k % RING])) serve(c);
        }
    }
    free(waiting.at);
    double parts_done = now();
    List *l = &held_playlists[k % AHEAD];
    int kept = 0, answered = 0;
    for (int i = 0; i < l->n; i++) {
        Conn *c = live(l->at[i]);
        if (!c || c->held != 2) continue;
        if (c->target > k) {
            l->at[kept++] = l->at[i];
            continue;
        }
        c->held = 0;
        answered++;
        if (reply(c, c->skip ? delta : full)) serve(c);
    }
    l->n = kept;
    /* Where the time goes: the part answers' burst, then the playlists' (ms after fed). */
    fprintf(stderr, "land %ld %d %.3f %d %.3f\n", k, waiting.n, (parts_done - fed) * 1e3,
            answered, (now() - fed) * 1e3);
}

/* The recording's fragments: each moof with the boxes after it up to the next moof. */
static int load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *data = malloc(size);
    if (fread(data, 1, size, f) != (size_t)size) return -1;
    fclose(f);
    long starts[4096];
    int n = 0;
    for (long at = 0; at + 8 <= size;) {
        unsigned long box = ((unsigned char)data[at] << 24 | (unsigned char)data[at + 1] << 16 |
                             (unsigned char)data[at + 2] << 8 | (unsigned char)data[at + 3]);
        if (box < 8) return -1;
        if (memcmp(data + at + 4, "moof", 4) == 0 && n < 4095) starts[n++] = at;
        at += box;
    }
    if (n == 0) return -1;
    starts[n] = size;
    frags = malloc(n * sizeof(char *));
    frag_len = malloc(n * sizeof(size_t));
    for (int i = 0; i < n; i++) {
        frags[i] = data + starts[i];
        frag_len[i] = starts[i + 1] - starts[i];
    }
    nfrags = n;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT RECORDING STAMPS\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    if (load(argv[2]) < 0) {
        fprintf(stderr, "cannot read fragments from %s\n", argv[2]);
        return 1;
    }
    FILE *stamps = fopen(argv[3], "a");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns = rl.rlim_cur;
    conns = calloc(nconns, sizeof(Conn *));
    set_date();
    not_found = answer("404 Not Found", "text/plain; charset=utf-8", "no-cache", "not found", 9);
    bad_request =
        answer("400 Bad Request", "text/plain; charset=utf-8", "no-cache", "bad request", 11);
    full = playlist(0);
    delta = playlist(1);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!stamps || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = LISTENER};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    e.data.fd = TIMER;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e);
    double due;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct itimerspec it = {.it_value = ts, .it_interval = {0, (long)(PART_SECONDS * 1e9)}};
    it.it_value.tv_nsec += (long)(PART_SECONDS * 1e9);
    if (it.it_value.tv_nsec >= 1000000000L) {
        it.it_value.tv_sec++;
        it.it_value.tv_nsec -= 1000000000L;
    }
    due = it.it_value.tv_sec + it.it_value.tv_nsec / 1e9;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &it, NULL);

    struct epoll_event events[1024];
    while (!stopping) {
        int n = epoll_wait(ep, events, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == TIMER) {
                unsigned long long ticks;
                if (read(tfd, &ticks, sizeof ticks) != sizeof ticks) continue;
                while (ticks--) {
                    land(stamps, due);
                    due += PART_SECONDS;
                }
            } else if (fd == LISTENER) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= nconns) {
                        close(cfd);
                        continue;
                    }
                    if (!conns[cfd]) conns[cfd] = calloc(1, sizeof(Conn));
                    Conn *c = conns[cfd];
                    c->fd = cfd;
                    c->held = 0;
                    c->in_len = 0;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
                }
            } else {
                Conn *c = conns[fd];
                if (c->fd < 0) continue;
                if (events[i].events & EPOLLOUT && c->out) writable(c);
                if (c->fd >= 0 && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(c);
            }
        }
    }
    /* On SIGTERM: how many answers needed more than the one send(). */
    fprintf(stderr, "sends %ld partial %ld resumed %ld\n", sends, partial, resumed);
    return 0;
}
