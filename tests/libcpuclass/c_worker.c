/* A worker written in C against libcpuclass: one thread tags itself background, another
 * offload; then the first reports that it waits on the second. Driven by its test over stdin:
 * prints "tids MERGER HELPER" and "reported N", waits for a line, ends the wait ("ended N"),
 * waits for another line, prints "bye" and exits.
 * Arguments: --tag=... (free-form, for the test's policy to match) and --register NAME. */
#define _GNU_SOURCE
#include <cpuclass.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static cpuclass_client* client;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;

struct tagged {
  const char* cls;
  pid_t tid;
  int result;
};

static void* run(void* arg) {
  struct tagged* t = arg;
  t->tid = (pid_t)syscall(SYS_gettid);
  t->result = cpuclass_set_thread_class(client, 0, t->cls);
  pthread_mutex_lock(&mu);
  while (!done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(int argc, char** argv) {
  int r = cpuclass_open(&client);
  if (r < 0) {
    printf("error open %s\n", strerror(-r));
    return 1;
  }
  /* --register NAME: not a policy worker; become one, with default class background. */
  for (int i = 1; i + 1 < argc; ++i) {
    if (strcmp(argv[i], "--register") != 0) continue;
    r = cpuclass_register_worker(client, argv[i + 1], "background");
    if (r < 0) {
      printf("error register %d %s\n", r, cpuclass_last_error(client));
      fflush(stdout);
      return 1;
    }
  }
  struct tagged merger = {"background", 0, 0}, helper = {"offload", 0, 0};
  pthread_t a, b;
  pthread_create(&a, NULL, run, &merger);
  pthread_create(&b, NULL, run, &helper);
  usleep(200000); /* both threads have tagged themselves (each call returns within 100 ms) */
  if (merger.result < 0 || helper.result < 0) {
    printf("error tag %d %d %s\n", merger.result, helper.result, cpuclass_last_error(client));
    return 1;
  }
  printf("tids %d %d\n", (int)merger.tid, (int)helper.tid);
  r = cpuclass_report_wait(client, merger.tid, helper.tid);
  printf("reported %d\n", r);
  fflush(stdout);
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) return 1;
  r = cpuclass_end_wait(client, merger.tid, helper.tid);
  printf("ended %d\n", r);
  fflush(stdout);
  /* Threads stay until one more line: an exiting thread shows the root cgroup in /proc. */
  if (fgets(line, sizeof line, stdin) == NULL) return 1;
  printf("bye\n");
  fflush(stdout);
  pthread_mutex_lock(&mu);
  done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  cpuclass_close(client);
  return 0;
}
