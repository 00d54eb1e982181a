#define _GNU_SOURCE
#include "ft_process.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Live groups, for the exit and signal clean-up (a fixed table: signal handlers cannot lock). */
#define FT_MAX_GROUPS 64
static volatile sig_atomic_t groups[FT_MAX_GROUPS];
/* Each group's mark: FLOWTUNE_SCORER=<our pid>.<n> in the environment of everything it starts,
 * which finds its descendants even after their parents died and they left the group. */
static int marks[FT_MAX_GROUPS];
static int next_mark = 0;
static int installed = 0;
static volatile sig_atomic_t graceful = 0, interrupted = 0;

static void kill_all_groups(int sig) {
    for (int i = 0; i < FT_MAX_GROUPS; i++) if (groups[i] > 0) kill(-(pid_t)groups[i], sig);
}

/* The pids of every process, from /proc; at most `max`. */
static int list_pids(pid_t *out, int max) {
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end == 0 && pid > 0) out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* /proc/PID/WHAT into buf (NUL-terminated); its length, or -1. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t len = read(fd, buf, size - 1);
    close(fd);
    if (len < 0) return -1;
    buf[len] = 0;
    return len;
}

enum { FT_MAX_PROCS = 65536 };
static pid_t all_pids[FT_MAX_PROCS];

/* Every descendant of `root` (children, their children, ..., whatever session or group they
 * moved to), from the parent pids in /proc; at most `max`. Returns the count. */
static int descendants(pid_t root, pid_t *out, int max) {
    static pid_t parents[FT_MAX_PROCS];
    int n = list_pids(all_pids, FT_MAX_PROCS);
    for (int i = 0; i < n; i++) {
        char buf[512];
        char *paren = read_proc(all_pids[i], "stat", buf, sizeof buf) > 0 ? strrchr(buf, ')') : NULL;   /* the name may hold ')' */
        char state;
        long ppid = 0;
        if (!paren || sscanf(paren + 1, " %c %ld", &state, &ppid) != 2) all_pids[i] = 0;
        parents[i] = (pid_t)ppid;
    }
    int count = 0;
    for (int changed = 1; changed;) {             /* one generation a pass */
        changed = 0;
        for (int i = 0; i < n; i++) {
            if (all_pids[i] == 0) continue;
            int mine = parents[i] == root;
            for (int j = 0; j < count && !mine; j++) mine = parents[i] == out[j];
            if (mine && count < max) { out[count++] = all_pids[i]; all_pids[i] = 0; changed = 1; }
        }
    }
    return count;
}

/* The processes whose environment holds `entry` (a whole NUL-separated entry); at most `max`. */
static int marked(const char *entry, pid_t *out, int max) {
    static char buf[1 << 16];
    size_t len = strlen(entry);
    int count = 0, n = list_pids(all_pids, FT_MAX_PROCS);
    for (int k = 0; k < n && count < max; k++) {
        if (all_pids[k] == getpid()) continue;
        ssize_t size = read_proc(all_pids[k], "environ", buf, sizeof buf);
        for (ssize_t i = 0; i < size; i += (ssize_t)strlen(buf + i) + 1) {
            if (strlen(buf + i) == len && memcmp(buf + i, entry, len) == 0) { out[count++] = all_pids[k]; break; }
        }
    }
    return count;
}

static void mark_entry(int mark, char *entry, size_t size) { snprintf(entry, size, "FLOWTUNE_SCORER=%d.%d", (int)getpid(), mark); }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Whether `pid` still runs; reaps it first if it has ended as our child (a subreaper's orphans are). */
static int still_running(pid_t pid) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return 0;
    return kill(pid, 0) == 0;
}

/* Ends the processes of `list`: SIGTERM, up to `grace_ms` for them to exit, SIGKILL to whatever
 * is left, then a second at most to reap them. */
static void end_pids(const pid_t *list, int n, int grace_ms) {
    for (int i = 0; i < n; i++) kill(list[i], SIGTERM);
    for (int round = 0; round < 2; round++) {
        for (int waited = 0;; waited += 5) {
            int alive = 0;
            for (int i = 0; i < n; i++) alive |= still_running(list[i]);
            if (!alive) return;
            if (waited >= (round == 0 ? grace_ms : 1000)) break;
            sleep_ms(5);
        }
        if (round == 0) for (int i = 0; i < n; i++) kill(list[i], SIGKILL);
    }
}

/* Ends every descendant of this process, then any that one of them started meanwhile. */
static void end_descendants(int grace_ms) {
    static pid_t list[4096];
    for (int pass = 0; pass < 2; pass++) end_pids(list, descendants(getpid(), list, 4096), pass == 0 ? grace_ms : 0);
}

static void at_exit_cleanup(void) {
    /* every scorer group is made of our descendants, and so is whatever a scorer started in a
     * session of its own (setsid) */
    end_descendants(100);
}

/* The first stop request: its signal, its sender (SI_USER: a kill(2) by that process; 0 for the
 * terminal or the kernel) and when it came. */
static volatile sig_atomic_t first_sender = 0;
static struct timespec first_time;

static int duplicate(int sig, const siginfo_t *info) {
    if (sig != interrupted || !info || info->si_code != SI_USER || first_sender <= 0 || info->si_pid != first_sender) return 0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double dt = (double)(t.tv_sec - first_time.tv_sec) + 1e-9 * (double)(t.tv_nsec - first_time.tv_nsec);
    return dt < 2.0;
}

static void on_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (graceful && (sig == SIGINT || sig == SIGTERM)) {
        if (!interrupted) {
            interrupted = sig;
            first_sender = info && info->si_code == SI_USER ? info->si_pid : 0;
            clock_gettime(CLOCK_MONOTONIC, &first_time);
            return;
        }
        /* one request delivered twice by one sender (GNU timeout signals its child, then the
         * child's whole group) is one request: only a second request stops at once */
        if (duplicate(sig, info)) return;
    }
    kill_all_groups(SIGTERM);
    sleep_ms(100);
    kill_all_groups(SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install(void) {
    if (installed) return;
    installed = 1;
    atexit(at_exit_cleanup);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = on_signal;
            sa.sa_flags = SA_SIGINFO;
            sigemptyset(&sa.sa_mask);
            sigaction(sigs[i], &sa, NULL);
        }
    }
    /* A parent may have started us with these blocked (Foundation's Process passes its
     * threads' mask on): unblock them on this thread, so that they reach the handlers. */
    sigset_t handled;
    sigemptyset(&handled);
    for (int i = 0; i < 3; i++) sigaddset(&handled, sigs[i]);
    pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a dead child must give EPIPE, not kill us */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static void set_group(pid_t pgid, pid_t value) {
    for (int i = 0; i < FT_MAX_GROUPS; i++) {
        if (groups[i] == (value == 0 ? pgid : 0)) { groups[i] = value; return; }
    }
}

void ft_enable_graceful_interrupt(void) { install(); graceful = 1; }

void ft_standard_streams(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        /* open returns the lowest free descriptor: this one */
        int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got >= 0 && got != fd) { dup2(got, fd); close(got); }
    }
    signal(SIGPIPE, SIG_IGN);       /* a reader that left gives EPIPE, not death */
}

int ft_interrupted(void) { return interrupted; }

pid_t ft_spawn_group(const char *command, int *to_child, int *from_child) {
    install();
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return -1;
    if (pipe2(out, O_CLOEXEC) != 0) { close(in[0]); close(in[1]); return -1; }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE); sigaddset(&def, SIGINT); sigaddset(&def, SIGTERM); sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigdefault(&attr, &def);
    sigset_t none;                  /* the scorer starts with no signal blocked, whatever ours are */
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    int mark = ++next_mark;
    char entry[64];
    mark_entry(mark, entry, sizeof entry);
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    char **env = calloc(n_env + 2, sizeof(char *));
    if (!env) { close(in[0]); close(in[1]); close(out[0]); close(out[1]); errno = ENOMEM; return -1; }
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) if (strncmp(environ[i], "FLOWTUNE_SCORER=", 16) != 0) env[k++] = environ[i];
    env[k++] = entry;
    env[k] = NULL;
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]); close(out[1]);
    if (rc != 0) { close(in[1]); close(out[0]); errno = rc; return -1; }
    set_group(pid, pid);
    for (int i = 0; i < FT_MAX_GROUPS; i++) if (groups[i] == pid) marks[i] = mark;
    *to_child = in[1];
    *from_child = out[0];
    return pid;
}

/* Reaps the exited members of the group (orphans reparented to us, since we are the
 * subreaper); other children of the process are left to whoever started them. */
static void reap_orphans(pid_t pgid) {
    int st;
    while (waitpid(-pgid, &st, WNOHANG | __WALL) > 0) {}
}

int ft_group_leader_running(pid_t pgid, int *status) {
    int st = 0;
    pid_t r = waitpid(pgid, &st, WNOHANG);
    if (r == 0) return 1;
    if (r == pgid && status) *status = st;
    return 0;
}

static int group_alive(pid_t pgid) { return kill(-pgid, 0) == 0 || errno == EPERM; }

int ft_stop_group(pid_t pgid, int grace_ms) {
    int status = -1, st;
    /* what the group started that left it (setsid, setpgid), found by its parents and by its
     * mark (a parent may have died first), is stopped with it */
    pid_t escaped[1024];
    int n_escaped = descendants(pgid, escaped, 512);
    for (int i = 0; i < FT_MAX_GROUPS; i++) {
        if (groups[i] != pgid || marks[i] == 0) continue;
        char entry[64];
        mark_entry(marks[i], entry, sizeof entry);
        n_escaped += marked(entry, escaped + n_escaped, 1024 - n_escaped);
    }
    kill(-pgid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 10) {
        if (waitpid(pgid, &st, WNOHANG) == pgid) status = st;
        reap_orphans(pgid);
        if (!group_alive(pgid)) break;
        sleep_ms(10);
    }
    if (group_alive(pgid)) kill(-pgid, SIGKILL);
    if (waitpid(pgid, &st, 0) == pgid) status = st;
    /* the killed descendants are our children now (subreaper): reap them until none of the group is left */
    for (int i = 0; i < 200 && group_alive(pgid); i++) {
        reap_orphans(pgid);
        sleep_ms(5);
    }
    reap_orphans(pgid);
    /* and what left the group, orphaned to us by now */
    end_pids(escaped, n_escaped, grace_ms);
    set_group(pgid, 0);
    return status;
}
