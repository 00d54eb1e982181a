#ifndef FT_PROCESS_H
#define FT_PROCESS_H
#include <sys/types.h>

/* Starts `/bin/sh -c command` as the leader of a new process group, with pipes to its stdin
 * (*to_child, write end) and from its stdout (*from_child, read end); stderr is inherited.
 * Returns the child's pid (= its process group id), or -1 with errno set. The group is
 * registered: if flowtune exits (exit(), SIGINT, SIGTERM, SIGHUP) before ft_stop_group, the
 * whole group is sent SIGTERM and then SIGKILL. flowtune becomes the child subreaper, so the
 * group's orphaned descendants are reparented to it and can be reaped. */
pid_t ft_spawn_group(const char *command, int *to_child, int *from_child);

/* Stops the group: SIGTERM to every member, up to `grace_ms` for them to exit, then SIGKILL;
 * reaps the leader and every descendant reparented to flowtune. Returns the leader's wait
 * status (or -1 if it was already reaped). */
int ft_stop_group(pid_t pgid, int grace_ms);

/* Non-blocking: 1 while the leader runs, 0 once it has exited (its status in *status). */
int ft_group_leader_running(pid_t pgid, int *status);

/* Graceful interrupts for long commands: after this call the first SIGINT or SIGTERM only sets
 * a flag (read with ft_interrupted) so that the command can finish its step, write a
 * checkpoint and exit; a second one stops scorer groups and ends the process at once. */
void ft_enable_graceful_interrupt(void);

/* Makes descriptors 0-2 valid (a closed one is opened on /dev/null, so that no file the command
 * opens takes its place) and ignores SIGPIPE (a write to a pipe whose reader left fails with
 * EPIPE instead of ending the process). Called first thing by the CLI. */
void ft_standard_streams(void);

/* 0, or the signal number that asked the command to stop. */
int ft_interrupted(void);

#endif
