/*
 * hatoba-shim: the tiny per-container supervisor of hatoba's process driver.
 *
 * Why it exists: containers must outlive the Python control plane (even `kill -9`), their
 * exit codes must be recorded while nobody watches, and no log line may be lost. A Python
 * process per container would cost tens of MiB; this costs well under one.
 *
 *   hatoba-shim run --dir STATE_DIR --log LOG_PATH [--max-line BYTES] [--cgroup-procs FILE]...
 *                   [--uid N --gid N [--groups a,b]] [--cwd DIR] [--rlimit NAME=SOFT:HARD]...
 *                   -- ARGV...
 *   hatoba-shim exec [--tty] [same setup options] -- ARGV...
 *
 * run:  creates STATE_DIR (clearing a previous run's state files), forks the workload (own
 *       process group, joined cgroups, rlimits, user, cwd), prints "started <pid>
 *       <starttime> <shim starttime>" or "failed <stage> <errno> <message>" on stdout (its
 *       stderr goes to the same pipe until then, to STATE_DIR/shim.err, created on the
 *       first complaint, after), then writes STATE_DIR/pid, copies
 *       stdout/stderr into LOG_PATH as framed records (see hatoba/logs/records.py), and once
 *       the main process is gone (its group killed, pipes drained, log fsync'ed) writes
 *       STATE_DIR/exit ("exited N" / "signaled N") atomically.
 * exec: applies the same setup to itself and execs in place (hatoba exec, health checks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 64
#define READ_CHUNK (64 * 1024)
#define OUT_CAP (256 * 1024)
#define HEADER_SIZE 16
#define FLAG_PARTIAL 1
#define FLAG_NO_EOL 2
#define DRAIN_MS 2000

struct rlim_opt { int resource; rlim_t soft, hard; };

struct opts {
    int exec_mode, tty;
    const char *dir, *log, *cwd, *groups;
    size_t max_line;
    const char *procs[MAX_LIST];
    int nprocs;
    struct rlim_opt rlimits[MAX_LIST];
    int nrlimits;
    int has_user;
    uid_t uid;
    gid_t gid;
    char **argv;
};

static const struct { const char *name; int resource; } RLIMIT_NAMES[] = {
    {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

/* Where run mode's complaints go once the report is out: STATE_DIR/shim.err, opened on
 * first use (most containers never need it, and creating a file is not free). */
static const char *err_path;
static int err_ready = 1; /* until the report, stderr is the control plane's pipe */

static void err_open(void) {
    if (err_ready) return;
    int saved = errno;
    err_ready = 1;
    int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) {
        dup2(fd, 2); /* dup2 clears CLOEXEC on the copy */
        close(fd);
    }
    errno = saved;
}

#define COMPLAIN(...) (err_open(), fprintf(stderr, __VA_ARGS__))

static void die_usage(const char *msg) {
    fprintf(stderr, "hatoba-shim: %s\n", msg);
    exit(2);
}

static rlim_t parse_rlim(const char *s) {
    if (strcmp(s, "unlimited") == 0 || strcmp(s, "-1") == 0) return RLIM_INFINITY;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) die_usage("bad rlimit value");
    return (rlim_t)v;
}

static void parse_rlimit(struct opts *o, char *arg) {
    char *eq = strchr(arg, '='), *colon = eq ? strchr(eq, ':') : NULL;
    if (!eq || !colon || o->nrlimits >= MAX_LIST) die_usage("bad --rlimit, want NAME=SOFT:HARD");
    *eq = *colon = '\0';
    struct rlim_opt *r = &o->rlimits[o->nrlimits++];
    r->resource = -1;
    for (size_t i = 0; i < sizeof RLIMIT_NAMES / sizeof RLIMIT_NAMES[0]; i++)
        if (strcmp(arg, RLIMIT_NAMES[i].name) == 0) r->resource = RLIMIT_NAMES[i].resource;
    if (r->resource < 0) die_usage("unknown rlimit name");
    r->soft = parse_rlim(eq + 1);
    r->hard = parse_rlim(colon + 1);
}

static void parse_args(struct opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->max_line = 1024 * 1024;
    if (argc < 2) die_usage("usage: hatoba-shim run|exec [options] -- ARGV...");
    if (strcmp(argv[1], "exec") == 0) o->exec_mode = 1;
    else if (strcmp(argv[1], "run") != 0) die_usage("first argument must be run or exec");
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tty") == 0) { o->tty = 1; continue; }
        if (i + 1 >= argc) die_usage("option needs a value");
        char *v = argv[++i];
        if (strcmp(a, "--dir") == 0) o->dir = v;
        else if (strcmp(a, "--log") == 0) o->log = v;
        else if (strcmp(a, "--cwd") == 0) o->cwd = v;
        else if (strcmp(a, "--groups") == 0) o->groups = v;
        else if (strcmp(a, "--max-line") == 0) o->max_line = strtoul(v, NULL, 10);
        else if (strcmp(a, "--uid") == 0) { o->uid = (uid_t)strtoul(v, NULL, 10); o->has_user = 1; }
        else if (strcmp(a, "--gid") == 0) o->gid = (gid_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--rlimit") == 0) parse_rlimit(o, v);
        else if (strcmp(a, "--cgroup-procs") == 0) {
            if (o->nprocs >= MAX_LIST) die_usage("too many --cgroup-procs");
            o->procs[o->nprocs++] = v;
        } else die_usage("unknown option");
    }
    if (i + 1 >= argc) die_usage("missing -- ARGV");
    o->argv = &argv[i + 1];
    if (!o->exec_mode && (!o->dir || !o->log)) die_usage("run needs --dir and --log");
    if (o->max_line == 0) die_usage("--max-line must be positive");
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- workload setup, shared by run (in the forked child) and exec (in place) ---- */

/* Reports a setup failure to the run-mode parent (errfd) or stderr (exec mode), then exits. */
static void setup_fail(int errfd, const char *stage, int err) {
    if (errfd >= 0) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "%s %d", stage, err);
        if (write_all(errfd, msg, (size_t)n) < 0) { /* nothing more we can do */ }
    } else {
        fprintf(stderr, "hatoba-shim: %s: %s\n", stage, strerror(err));
    }
    _exit(err == ENOENT ? 127 : 126);
}

static void set_groups(const struct opts *o, int errfd) {
    gid_t list[MAX_LIST];
    size_t n = 0;
    if (o->groups && *o->groups) {
        const char *p = o->groups;
        while (*p && n < MAX_LIST) {
            list[n++] = (gid_t)strtoul(p, (char **)&p, 10);
            if (*p == ',') p++;
        }
    } else {
        list[n++] = o->gid;
    }
    if (setgroups(n, list) < 0) setup_fail(errfd, "setgroups", errno);
}

static void setup_workload(const struct opts *o, int errfd) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (o->tty) {
        if (getsid(0) != getpid() && setsid() < 0) setup_fail(errfd, "setsid", errno);
        if (ioctl(0, TIOCSCTTY, 0) < 0) setup_fail(errfd, "tty", errno);
    }
    for (int i = 0; i < o->nprocs; i++) {
        int fd = open(o->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all(fd, "0", 1) < 0) setup_fail(errfd, "cgroup", errno);
        close(fd);
    }
    for (int i = 0; i < o->nrlimits; i++) {
        struct rlimit rl = {o->rlimits[i].soft, o->rlimits[i].hard};
        if (setrlimit(o->rlimits[i].resource, &rl) < 0) setup_fail(errfd, "rlimit", errno);
    }
    if (o->has_user) {
        set_groups(o, errfd);
        if (setgid(o->gid) < 0) setup_fail(errfd, "setgid", errno);
        if (setuid(o->uid) < 0) setup_fail(errfd, "setuid", errno);
    }
    if (o->cwd && chdir(o->cwd) < 0) setup_fail(errfd, "chdir", errno);
    /* Every inherited descriptor except 0-2 (and errfd, CLOEXEC already) closes at exec. */
    if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < max; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execvp(o->argv[0], o->argv);
    if (errfd < 0 && errno == ENOENT) {
        fprintf(stderr, "exec: \"%s\": executable file not found in $PATH\n", o->argv[0]);
        _exit(127);
    }
    setup_fail(errfd, "exec", errno);
}

/* ---- run mode: supervise, log, record the exit ---- */

static unsigned long long proc_starttime(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces; fields restart after ')' */
    if (!p) return 0;
    for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Writes DIR/NAME via a temp file and rename: readers see all or nothing. With `durable`
 * the file and DIR are fsynced too (the exit status: it must survive a crash once
 * reported). The pid file is not durable on purpose: after a machine crash the processes
 * it names are gone anyway, and an fsync here would sit on every task's start path. */
static int write_atomic(const char *dir, const char *name, const char *content, int durable) {
    char tmp[PATH_MAX], dst[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int bad = write_all(fd, content, strlen(content)) < 0 || (durable && fsync(fd) < 0);
    bad |= close(fd) < 0;
    if (bad || rename(tmp, dst) < 0) return -1;
    if (!durable) return 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

struct stream {
    int fd, id;
    char *pend; /* bytes of an unfinished line, at most max_line */
    size_t plen, pcap;
};

static int log_fd = -1;
static size_t max_line;
static char out_buf[OUT_CAP];
static size_t out_len;
static int log_broken;

static off_t log_good; /* the log's size after the last complete write */

/* A write failed part-way (ENOSPC, EIO): cut the log back to its last whole record, so
 * the records written once space comes back are still framed correctly. */
static void log_failed(void) {
    int err = errno;
    COMPLAIN("hatoba-shim: writing the log: %s\n", strerror(err));
    if (ftruncate(log_fd, log_good) < 0) log_broken = 1;
    else log_broken = err != ENOSPC && err != EDQUOT; /* space may come back */
}

static void flush_out(void) {
    if (out_len && !log_broken) {
        if (write_all(log_fd, out_buf, out_len) < 0) log_failed();
        else log_good += (off_t)out_len;
    }
    out_len = 0;
}

static void emit(int stream, const char *data, size_t len, int flags, int64_t ts) {
    unsigned char h[HEADER_SIZE] = {0};
    for (int i = 0; i < 8; i++) h[i] = (unsigned char)((uint64_t)ts >> (8 * i));
    for (int i = 0; i < 4; i++) h[8 + i] = (unsigned char)((uint32_t)len >> (8 * i));
    h[12] = (unsigned char)stream;
    h[13] = (unsigned char)flags;
    if (out_len + HEADER_SIZE + len > OUT_CAP) flush_out();
    if (HEADER_SIZE + len > OUT_CAP) { /* a huge line: header and bytes in one writev */
        if (log_broken) return;
        struct iovec iov[2] = {{h, HEADER_SIZE}, {(void *)data, len}};
        size_t total = HEADER_SIZE + len;
        ssize_t w;
        do w = writev(log_fd, iov, 2);
        while (w < 0 && errno == EINTR);
        int bad = w < 0;
        if (!bad && (size_t)w < total) { /* short write: finish the rest plainly */
            if ((size_t)w < HEADER_SIZE) {
                bad = write_all(log_fd, h + w, HEADER_SIZE - (size_t)w) < 0;
                w = HEADER_SIZE;
            }
            if (!bad) bad = write_all(log_fd, data + (w - HEADER_SIZE), total - (size_t)w) < 0;
        }
        if (bad) log_failed();
        else log_good += (off_t)total;
        return;
    }
    memcpy(out_buf + out_len, h, HEADER_SIZE);
    memcpy(out_buf + out_len + HEADER_SIZE, data, len);
    out_len += HEADER_SIZE + len;
}

static void pend_append(struct stream *s, const char *p, size_t n, int64_t ts) {
    while (n > 0) {
        if (s->plen == max_line) { /* full and more bytes follow: cut a PARTIAL record */
            emit(s->id, s->pend, s->plen, FLAG_PARTIAL, ts);
            flush_out();
            s->plen = 0;
        }
        size_t take = max_line - s->plen < n ? max_line - s->plen : n;
        if (s->plen + take > s->pcap) {
            size_t cap = s->pcap ? s->pcap : 4096;
            while (cap < s->plen + take) cap *= 2;
            if (cap > max_line) cap = max_line;
            char *np = realloc(s->pend, cap);
            if (!np) { COMPLAIN("hatoba-shim: realloc: %s\n", strerror(errno)); exit(1); }
            s->pend = np;
            s->pcap = cap;
        }
        memcpy(s->pend + s->plen, p, take);
        s->plen += take;
        p += take;
        n -= take;
    }
}

static void pend_emit(struct stream *s, int flags, int64_t ts) {
    emit(s->id, s->pend, s->plen, flags, ts);
    flush_out();
    s->plen = 0;
    if (s->pcap > READ_CHUNK) { /* give a huge line's memory back */
        free(s->pend);
        s->pend = NULL;
        s->pcap = 0;
    }
}

static void consume(struct stream *s, const char *p, size_t n, int64_t ts) {
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            pend_append(s, p, (size_t)(end - p), ts);
            return;
        }
        size_t len = (size_t)(nl - p);
        if (s->plen) {
            pend_append(s, p, len, ts);
            pend_emit(s, 0, ts);
        } else {
            while (len > max_line) {
                emit(s->id, p, max_line, FLAG_PARTIAL, ts);
                p += max_line;
                len -= max_line;
            }
            emit(s->id, p, len, 0, ts);
        }
        p = nl + 1;
    }
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int64_t mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads what is available; returns 0 at EOF (the stream is then finished), 1 otherwise. */
static int pump(struct stream *s) {
    static char chunk[READ_CHUNK];
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    int64_t ts = now_ns();
    if (n > 0) {
        consume(s, chunk, (size_t)n, ts);
        flush_out();
        return 1;
    }
    if (s->plen) pend_emit(s, FLAG_NO_EOL, ts);
    close(s->fd);
    s->fd = -1;
    return 0;
}

/* SIGKILLs every process still in the container's cgroups (escaped the process group). */
static void kill_cgroups(const struct opts *o) {
    for (int i = 0; i < o->nprocs; i++) {
        FILE *f = fopen(o->procs[i], "re");
        if (!f) continue;
        int pid;
        while (fscanf(f, "%d", &pid) == 1)
            if (pid > 0 && pid != getpid()) kill(pid, SIGKILL);
        fclose(f);
    }
}

/* Reaps the workload's orphaned descendants (we are their subreaper) until none is left or
 * the deadline passes, so no zombie outlives the container. */
static void reap_remaining(int sfd, int64_t deadline) {
    for (;;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r > 0) continue;
        if (r < 0 || mono_ms() >= deadline) return;
        struct pollfd pf = {sfd, POLLIN, 0};
        poll(&pf, 1, 50);
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) > 0) {}
    }
}

/* mkdir -p. The parent first, then the leaf: two calls for a new container directory in
 * a new task directory, the usual case (leaf first would fail once with ENOENT). Returns
 * 0 when created, 1 when it already existed, -1 on error. */
static int mkdir_p(char *path) {
    char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        *slash = '\0';
        int r = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST) r = errno == ENOENT ? mkdir_p(path) : -1;
        *slash = '/';
        if (r < 0) return -1;
    }
    if (mkdir(path, 0755) == 0) return 0;
    return errno == EEXIST ? 1 : -1;
}

static const char *const STALE_STATE[] = {"pid", "exit", "shim.err", ".pid.tmp", ".exit.tmp"};

/* STATE_DIR exists and is ours: a restart of the same container clears the last run's
 * state first (a stale exit file would read as this run's exit). */
static int prepare_state_dir(const struct opts *o) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", o->dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int existed = mkdir_p(path);
    if (existed < 0) return -1;
    for (size_t i = 0; existed && i < sizeof STALE_STATE / sizeof STALE_STATE[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", o->dir, STALE_STATE[i]);
        if (unlink(path) < 0 && errno != ENOENT) return -1;
    }
    static char err[PATH_MAX];
    snprintf(err, sizeof err, "%s/shim.err", o->dir);
    err_path = err;
    return 0;
}

static int run(struct opts *o) {
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans of the workload come back to us */
    signal(SIGHUP, SIG_IGN);
    max_line = o->max_line;
    if (prepare_state_dir(o) < 0) {
        printf("failed statedir %d %s\n", errno, strerror(errno));
        return 1;
    }
    log_fd = open(o->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        printf("failed log %d %s\n", errno, strerror(errno));
        return 1;
    }
    log_good = lseek(log_fd, 0, SEEK_END);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    int outp[2], errp[2], failp[2];
    if (sfd < 0 || pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || pipe2(failp, O_CLOEXEC)) {
        printf("failed pipe %d %s\n", errno, strerror(errno));
        return 1;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        printf("failed fork %d %s\n", errno, strerror(errno));
        return 1;
    }
    if (child == 0) {
        if (setpgid(0, 0) < 0) setup_fail(failp[1], "setpgid", errno);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
            setup_fail(failp[1], "stdio", errno);
        setup_workload(o, failp[1]);
    }
    setpgid(child, child); /* also from this side, so killpg works at once */
    close(outp[1]);
    close(errp[1]);
    close(failp[1]);
    char fail[64] = {0};
    ssize_t fn;
    do fn = read(failp[0], fail, sizeof fail - 1);
    while (fn < 0 && errno == EINTR);
    close(failp[0]);
    if (fn > 0) {
        char stage[32] = "setup";
        int err = 0;
        sscanf(fail, "%31s %d", stage, &err);
        waitpid(child, NULL, 0);
        printf("failed %s %d %s\n", stage, err, strerror(err));
        return 1;
    }
    unsigned long long st = proc_starttime(child), shim_st = proc_starttime(getpid());
    /* Report first, then write the pid file: the report carries everything the control
     * plane needs, and the pid file (for a control plane that dies before recording the
     * report) is four metadata operations that need not delay the start. */
    printf("started %d %llu %llu\n", (int)child, st, shim_st);
    fflush(stdout);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1); /* nobody reads our stdout or stderr pipe any more */
    dup2(null, 2);
    close(null);
    err_ready = 0; /* complaints from here on go to shim.err */
    char info[160];
    snprintf(info, sizeof info, "shim %d %llu\nworkload %d %llu\n", (int)getpid(), shim_st,
             (int)child, st);
    if (write_atomic(o->dir, "pid", info, 0) < 0)
        COMPLAIN("hatoba-shim: writing pid file: %s\n", strerror(errno));

    struct stream streams[2] = {{outp[0], 1, NULL, 0, 0}, {errp[0], 2, NULL, 0, 0}};
    int status = 0, exited = 0;
    int64_t deadline = 0;
    for (;;) {
        struct pollfd pf[3] = {{sfd, POLLIN, 0}, {streams[0].fd, POLLIN, 0}, {streams[1].fd, POLLIN, 0}};
        if (exited && streams[0].fd < 0 && streams[1].fd < 0) break;
        int timeout = -1;
        if (exited) {
            int64_t left = deadline - mono_ms();
            if (left <= 0) {
                COMPLAIN("hatoba-shim: output still open %d ms after exit, giving up\n",
                        DRAIN_MS);
                for (int i = 0; i < 2; i++)
                    if (streams[i].fd >= 0) {
                        if (streams[i].plen) pend_emit(&streams[i], FLAG_NO_EOL, now_ns());
                        close(streams[i].fd);
                        streams[i].fd = -1;
                    }
                break;
            }
            timeout = (int)left;
        }
        if (poll(pf, 3, timeout) < 0 && errno != EINTR) { COMPLAIN("hatoba-shim: poll: %s\n", strerror(errno)); return 1; }
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0 && (pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) pump(&streams[i]);
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            int ws;
            pid_t r;
            while ((r = waitpid(-1, &ws, WNOHANG)) > 0) {
                if (r != child || exited) continue;
                status = ws;
                exited = 1;
                kill(-child, SIGKILL); /* the container is gone with its main process */
                kill_cgroups(o);
                deadline = mono_ms() + DRAIN_MS;
            }
        }
    }
    reap_remaining(sfd, exited ? deadline : mono_ms());
    flush_out();
    if (fsync(log_fd) < 0) COMPLAIN("hatoba-shim: fsync log: %s\n", strerror(errno));
    char ex[64];
    if (WIFSIGNALED(status)) snprintf(ex, sizeof ex, "signaled %d\n", WTERMSIG(status));
    else snprintf(ex, sizeof ex, "exited %d\n", WEXITSTATUS(status));
    if (write_atomic(o->dir, "exit", ex, 1) < 0) {
        COMPLAIN("hatoba-shim: writing exit file: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct opts o;
    parse_args(&o, argc, argv);
    /* The control plane spawns us without closing its descriptors (posix_spawn): nothing
     * it holds open (sockets, the database) may live on in a container's supervisor. */
    if (!o.exec_mode && syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < max; fd++) close(fd);
    }
    if (o.exec_mode) setup_workload(&o, -1); /* does not return */
    return run(&o);
}
