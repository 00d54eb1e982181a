#define _GNU_SOURCE
#include "ft_process.h"
#include <errno.h>
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
static int installed = 0;
static volatile sig_atomic_t graceful = 0, interrupted = 0;

static void kill_all_groups(int sig) {
    for (int i = 0; i < FT_MAX_GROUPS; i++) if (groups[i] > 0) kill(-(pid_t)groups[i], sig);
}

static void at_exit_cleanup(void) {
    int any = 0;
    for (int i = 0; i < FT_MAX_GROUPS; i++) if (groups[i] > 0) any = 1;
    if (!any) return;
    kill_all_groups(SIGTERM);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill_all_groups(SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

static void on_signal(int sig) {
    if (graceful && !interrupted && (sig == SIGINT || sig == SIGTERM)) { interrupted = sig; return; }
    kill_all_groups(SIGTERM);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
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
            sa.sa_handler = on_signal;
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
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]); close(out[1]);
    if (rc != 0) { close(in[1]); close(out[0]); errno = rc; return -1; }
    set_group(pid, pid);
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
    kill(-pgid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 10) {
        if (waitpid(pgid, &st, WNOHANG) == pgid) status = st;
        reap_orphans(pgid);
        if (!group_alive(pgid)) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (group_alive(pgid)) kill(-pgid, SIGKILL);
    if (waitpid(pgid, &st, 0) == pgid) status = st;
    /* the killed descendants are our children now (subreaper): reap them until none of the group is left */
    for (int i = 0; i < 200 && group_alive(pgid); i++) {
        reap_orphans(pgid);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    reap_orphans(pgid);
    set_group(pgid, 0);
    return status;
}
