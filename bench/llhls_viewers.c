/* The LL-HLS benchmark's viewers (bench/llhls_load.py builds and runs this).
 *
 * One process, non-blocking sockets on epoll: Python spends 40 us or more per answer
 * received, so it could not play 5000 viewers (50 000 answers a second) on one core.
 *
 *   llhls_viewers PORT VIEWERS MODE SETTLE MEASURE GRACE PERIOD ARRIVALS
 *
 * MODE "ll": each viewer holds a blocking playlist request for the next part on one
 * connection (_HLS_msn/_HLS_part/_HLS_skip=YES, asked again as soon as it is answered)
 * and fetches every part in turn on a second one (the next is held until it lands).
 * MODE "poll": each viewer asks for the playlist every PERIOD s (phases spread evenly)
 * and fetches, on its second connection, every part listed that it has not had.
 *
 * Viewers join in batches, SETTLE s pass, then "measuring" is printed and MEASURE s are
 * measured; GRACE s later it stops. Every part received after the settling is written to
 * ARRIVALS as "viewer part arrived read" (CLOCK_MONOTONIC seconds, as Python's
 * time.monotonic): "arrived" is when its last bytes reached the viewer's socket (the
 * kernel's receive timestamp, SO_TIMESTAMPING), "read" when this process read them,
 * later by however long 5000 viewers sharing one process and one core took to get to
 * it. The last line on stdout is JSON: the window, the process's CPU share over it,
 * errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 250
#define BATCH_PAUSE 0.02
#define SLOTS 20
#define HEAD_MAX 4096
#define BODY_MAX 65536

typedef struct {
    int fd, viewer, is_part, busy, in_head, keep;
    int status;
    double arrived; /* kernel receive time of the last bytes read (CLOCK_MONOTONIC s) */
    long need;
    int head_len, body_len;
    char head[HEAD_MAX];
    char *body;
} Conn;

typedef struct {
    long want, last;
    long msn, parts;
    int started;
} Viewer;

static Conn *conns;
static Viewer *viewers;
static int port, count, poll_mode;
static double period;
static int ep;
static long err_lost, err_part, err_playlist, err_part503, err_playlist503;
static FILE *arrivals;
static int recording;

/* CLOCK_REALTIME - CLOCK_MONOTONIC, to put the kernel's receive stamps on the monotonic clock */
static double realtime_offset;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static void get(Conn *c, const char *path) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: ll-bench\r\n\r\n", path);
    c->busy = 1;
    c->in_head = 1;
    c->head_len = 0;
    c->body_len = 0;
    if (send(c->fd, req, n, 0) != n) err_lost++;
}

static void get_part(Viewer *v, Conn *c) {
    char path[128];
    snprintf(path, sizeof path, "/hls/0/part%ld.m4s", v->want);
    get(c, path);
}

static void get_playlist(Viewer *v, Conn *c) {
    char path[256];
    if (!poll_mode && v->started)
        snprintf(path, sizeof path,
                 "/hls/0/stream.m3u8?_HLS_msn=%ld&_HLS_part=%ld&_HLS_skip=YES", v->msn, v->parts);
    else
        snprintf(path, sizeof path, "/hls/0/stream.m3u8");
    get(c, path);
}

static const char *last_of(const char *hay, int len, const char *needle) {
    const char *found = NULL, *at = hay;
    size_t n = strlen(needle);
    while ((at = memmem(at, len - (at - hay), needle, n)) != NULL) found = at++;
    return found;
}

/* (open segment, its parts, the preload-hint part) of a media playlist; 0 if unreadable */
static int position(const char *b, int len, long *msn, long *parts, long *hint) {
    static const char H[] = "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part";
    static const char S[] = "#EXT-X-MEDIA-SEQUENCE:";
    static const char K[] = "#EXT-X-SKIP:SKIPPED-SEGMENTS=";
    const char *at = last_of(b, len, H);
    if (!at) return 0;
    *hint = strtol(at + sizeof H - 1, NULL, 10);
    at = memmem(b, len, S, sizeof S - 1);
    if (!at) return 0;
    *msn = strtol(at + sizeof S - 1, NULL, 10);
    at = memmem(b, len, K, sizeof K - 1);
    if (at) *msn += strtol(at + sizeof K - 1, NULL, 10);
    const char *last = NULL;
    for (at = b; (at = memmem(at, len - (at - b), "#EXTINF", 7)) != NULL; at++) {
        (*msn)++;
        last = at;
    }
    *parts = 0;
    for (at = last ? last : b; (at = memmem(at, len - (at - b), "#EXT-X-PART:", 12)) != NULL; at++)
        (*parts)++;
    return 1;
}

static void part_done(Conn *c) {
    Viewer *v = &viewers[c->viewer];
    if (c->status == 200) {
        if (recording) fprintf(arrivals, "%d %ld %.6f %.6f\n", c->viewer, v->want, c->arrived, now());
        v->want++;
    } else if (c->status == 503) {
        err_part503++;
    } else {
        err_part++;
        v->want = v->last + 1;
    }
    if (!poll_mode || v->want <= v->last) get_part(v, c);
}

static void playlist_done(Conn *c) {
    Viewer *v = &viewers[c->viewer];
    Conn *parts = &conns[2 * c->viewer + 1];
    long msn, count_, hint;
    if (c->status != 200 || !position(c->body, c->body_len, &msn, &count_, &hint)) {
        if (c->status == 503) err_playlist503++;
        else err_playlist++;
        if (!poll_mode) get_playlist(v, c);
        return;
    }
    v->last = hint - 1;
    if (!v->started) {
        v->want = hint;
        v->started = 1;
        if (!poll_mode) get_part(v, parts);
    } else if (poll_mode && !parts->busy && v->want < hint) {
        get_part(v, parts);
    }
    if (!poll_mode) {
        v->msn = msn;
        v->parts = count_;
        get_playlist(v, c);
    }
}

/* Bytes arrived on c: 0 when it is gone. */
static int readable(Conn *c) {
    static char buf[1 << 18];
    static char control[256];
    for (;;) {
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (c->is_part) {
            m.msg_control = control;
            m.msg_controllen = sizeof control;
        }
        ssize_t n = recvmsg(c->fd, &m, 0);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0) return 0;
        c->arrived = 0;
        for (struct cmsghdr *h = c->is_part ? CMSG_FIRSTHDR(&m) : NULL; h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPING) {
                struct scm_timestamping *t = (struct scm_timestamping *)CMSG_DATA(h);
                c->arrived = t->ts[0].tv_sec + t->ts[0].tv_nsec / 1e9 - realtime_offset;
            }
        if (c->arrived == 0) c->arrived = now(); /* no stamp: when it was read */
        char *p = buf;
        while (n > 0) {
            if (c->in_head) {
                int take = n < HEAD_MAX - c->head_len ? n : HEAD_MAX - c->head_len;
                memcpy(c->head + c->head_len, p, take);
                char *end = memmem(c->head, c->head_len + take, "\r\n\r\n", 4);
                if (!end) {
                    c->head_len += take;
                    if (c->head_len >= HEAD_MAX) return 0;
                    n = 0;
                    break;
                }
                int used = (int)(end + 4 - c->head) - c->head_len;
                c->head_len += used;
                p += used;
                n -= used;
                c->status = atoi(c->head + 9);
                char *cl = memmem(c->head, c->head_len, "Content-Length: ", 16);
                if (!cl) cl = memmem(c->head, c->head_len, "content-length: ", 16);
                if (!cl) return 0;
                c->need = strtol(cl + 16, NULL, 10);
                c->in_head = 0;
            }
            long take = n < c->need ? n : c->need;
            if (!c->is_part && c->body_len + take <= BODY_MAX) {
                memcpy(c->body + c->body_len, p, take);
                c->body_len += take;
            }
            c->need -= take;
            p += take;
            n -= take;
            if (c->need == 0) {
                c->busy = 0;
                if (c->is_part) part_done(c);
                else playlist_done(c);
            }
        }
    }
}

static int connect_one(int viewer, int is_part) {
    Conn *c = &conns[2 * viewer + is_part];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (is_part) { /* the kernel stamps each packet as it reaches the socket */
        int stamps = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
        setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPING, &stamps, sizeof stamps);
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->viewer = viewer;
    c->is_part = is_part;
    if (!is_part) c->body = malloc(BODY_MAX);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 2 * viewer + is_part};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s PORT VIEWERS ll|poll SETTLE MEASURE GRACE PERIOD ARRIVALS\n",
                argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    count = atoi(argv[2]);
    poll_mode = strcmp(argv[3], "poll") == 0;
    double settle = atof(argv[4]), measure = atof(argv[5]), grace = atof(argv[6]);
    period = atof(argv[7]);
    arrivals = fopen(argv[8], "w");
    conns = calloc(2 * count, sizeof(Conn));
    viewers = calloc(count, sizeof(Viewer));
    ep = epoll_create1(0);
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    realtime_offset = (rt.tv_sec - mono.tv_sec) + (rt.tv_nsec - mono.tv_nsec) / 1e9;
    if (!arrivals || !conns || !viewers || ep < 0) return 1;
    double started = now(), tick = started, settled = 0, start = 0, end = 0, cpu0 = 0, busy = 0;
    int joined = 0, slot = 0, measured = 0;
    struct epoll_event events[1024];
    for (;;) {
        double t = now();
        if (joined < count && t >= tick) {
            int upto = joined + BATCH < count ? joined + BATCH : count;
            for (; joined < upto; joined++) {
                if (connect_one(joined, 0) < 0 || connect_one(joined, 1) < 0) {
                    perror("connect");
                    return 1;
                }
                get_playlist(&viewers[joined], &conns[2 * joined]);
            }
            tick = t + BATCH_PAUSE;
            if (joined == count) settled = t + settle;
        }
        if (joined == count && !start && t >= settled) {
            start = t;
            end = t + measure;
            cpu0 = cpu();
            recording = 1;
            printf("measuring\n");
            fflush(stdout);
        }
        if (start && !measured && t >= end) {
            busy = (cpu() - cpu0) / (t - start);
            measured = 1;
        }
        if (start && t >= end + grace) break;
        if (poll_mode && t >= started + slot * period / SLOTS) {
            for (int v = slot % SLOTS; v < joined; v += SLOTS)
                if (!conns[2 * v].busy) get_playlist(&viewers[v], &conns[2 * v]);
            slot++;
        }
        int n = epoll_wait(ep, events, 1024, 2);
        for (int i = 0; i < n; i++) {
            Conn *c = &conns[events[i].data.u32];
            if (!readable(c)) {
                err_lost++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
            }
        }
    }
    fclose(arrivals);
    printf("{\"window\": [%.6f, %.6f], \"generator_busy\": %.4f, \"errors\": {", start, end, busy);
    const char *names[] = {"connection lost", "part not 200/503", "part 503",
                           "playlist not 200/503", "playlist 503"};
    long values[] = {err_lost, err_part, err_part503, err_playlist, err_playlist503};
    int first = 1;
    for (int i = 0; i < 5; i++)
        if (values[i]) {
            printf("%s\"%s\": %ld", first ? "" : ", ", names[i], values[i]);
            first = 0;
        }
    printf("}}\n");
    return 0;
}
