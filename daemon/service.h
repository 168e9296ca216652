/*
 * service.h: running as a systemd user service: the socket systemd passes
 * (sd_listen_fds), and readiness and status (sd_notify). Without systemd
 * every call here is a no-op or reports "not activated".
 */
#ifndef MCPSIG_SERVICE_H
#define MCPSIG_SERVICE_H

#include <stddef.h>

/*
 * The listening socket systemd passed, if any. Returns 1 with *ret_fd set,
 * 0 when the agent was not socket-activated, or a negative code with err
 * set when what was passed is not exactly one listening Unix stream socket
 * meant for this process.
 */
int service_listen_fd(int *ret_fd, char *err, size_t errlen);

/* sd_notify(): "READY=1", "STATUS=...", "STOPPING=1", "RELOADING=1". */
__attribute__((format(printf, 1, 2))) void service_notify(const char *fmt, ...);

#endif
