/* libcpuclass: let a worker tag its own threads with a CPU class and report waits to cpuclassd.
 *
 * Stable C ABI (SONAME libcpuclass.so.1). Every call is a D-Bus method call to org.cpuclass1 on
 * the system bus (DBUS_SYSTEM_BUS_ADDRESS overrides the address) and returns within the client's
 * timeout (100 ms by default): when the daemon is absent or slow the call fails with a negative
 * errno instead of blocking the application. A client may be shared between threads; its calls
 * are serialized. Return values: 0 (or a positive value where stated) on success, -errno on
 * failure:
 *   -ESRCH      the thread is not managed by the daemon (not a worker's, or it exited)
 *   -EPERM      not allowed: the thread is not one of the calling process's
 *   -ENOENT     no such class (or no such wait, for cpuclass_end_wait)
 *   -EINVAL     a bad argument, or the thread's class has no boost
 *   -EBUSY      the daemon rate-limits this process; slow down
 *   -ETIMEDOUT  the daemon did not answer in time
 *   -ENOTCONN   no daemon on the bus
 * cpuclass_last_error() then describes the failure for people.
 */
#ifndef CPUCLASS_H
#define CPUCLASS_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpuclass_client cpuclass_client;

/* Connects to the system bus. *out is set only on success. */
int cpuclass_open(cpuclass_client** out);
void cpuclass_close(cpuclass_client* client);
/* Per-call timeout; 0 restores the default (100 ms). */
int cpuclass_set_timeout_ms(cpuclass_client* client, unsigned int timeout_ms);

/* The calling process, matched by no policy worker, becomes worker `name` whose threads get
 * `default_class` unless tagged otherwise. Takes root or the polkit action org.cpuclass1.manage.
 * The registration ends with the process or with cpuclass_unregister_worker(). */
int cpuclass_register_worker(cpuclass_client* client, const char* name, const char* default_class);
int cpuclass_unregister_worker(cpuclass_client* client);

/* tid 0 means the calling thread. */
int cpuclass_set_thread_class(cpuclass_client* client, pid_t tid, const char* class_name);
int cpuclass_reset_thread_class(cpuclass_client* client, pid_t tid);

/* `waiter` (0: the calling thread) now waits on `holder`: the daemon boosts the holder at once,
 * within its budgets. Returns 1 when a boost started or was extended, 0 when a budget or the
 * cooldown refused it (the wait is still recorded). */
int cpuclass_report_wait(cpuclass_client* client, pid_t waiter, pid_t holder);
int cpuclass_end_wait(cpuclass_client* client, pid_t waiter, pid_t holder);

/* The last failure of this client, for people; valid until the next call on it. */
const char* cpuclass_last_error(const cpuclass_client* client);

#ifdef __cplusplus
}
#endif

#endif /* CPUCLASS_H */
