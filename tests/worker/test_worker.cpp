// cpuclass-test-worker: a stand-in for a database server whose threads tests steer from stdin.
//   spawn NAME          a parked thread named NAME          -> "tid TID"
//   burst N PREFIX      N parked threads PREFIX-0..N-1     -> "burst N"
//   churn N PREFIX      N threads that exit at once         -> "churned N"
//   rename TID NAME     the thread renames itself           -> "ok"
//   exit TID            the thread exits and is joined      -> "ok"
//   spin TID            the thread burns CPU until 'park'   -> "ok"
//   park TID                                                -> "ok"
//   child               a child process, `sleep 600`         -> "pid PID" (killed at the end)
//   titled-child TITLE  a child process (a fork, no exec) that rewrites its title to TITLE
//                       after 300 ms, as PostgreSQL's do      -> "pid PID" (killed at the end)
//   name NAME           the process renames itself (its main thread, prctl PR_SET_NAME) -> "ok"
//   title TITLE         the process rewrites its command line in place through argv -> "ok"
//   quit
// Arguments: --thread=NAME (repeatable) starts parked threads at once, --spin=NAME spinning
// threads (until 'park'); --serve keeps running
// after stdin ends until SIGTERM (for a systemd unit, whose stdin is /dev/null). Others are
// free-form (e.g. --tag=X, for policies to match the command line).
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Worker {
  std::thread thread;
  std::atomic<pid_t> tid{0};
  std::string rename_to;
  bool quit = false;
  bool spin = false;
};

std::atomic<uint64_t> spin_sink{0};  // keeps the spin loop from being optimised away
std::mutex mu;
std::condition_variable cv;
std::map<pid_t, std::unique_ptr<Worker>> workers;

Worker* startThread(const std::string& name) {
  auto w = std::make_unique<Worker>();
  Worker* raw = w.get();
  raw->thread = std::thread([raw, name] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    raw->tid = static_cast<pid_t>(::syscall(SYS_gettid));
    raw->tid.notify_all();
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [raw] { return raw->quit || !raw->rename_to.empty() || raw->spin; });
      if (raw->quit) return;
      if (!raw->rename_to.empty()) {
        pthread_setname_np(pthread_self(), raw->rename_to.substr(0, 15).c_str());
        raw->rename_to.clear();
        cv.notify_all();
      }
      while (raw->spin && !raw->quit) {
        lock.unlock();
        for (int i = 0; i < 100000; ++i) spin_sink.fetch_add(1, std::memory_order_relaxed);
        lock.lock();
      }
    }
  });
  raw->tid.wait(0);
  std::lock_guard lock(mu);
  const pid_t tid = raw->tid;
  workers.emplace(tid, std::move(w));
  return raw;
}

// The argv area, which /proc/<pid>/cmdline shows: a title is written over it in place and the
// rest cleared, the way PostgreSQL's ps_status.c does on Linux.
char* arg_start = nullptr;
size_t arg_size = 0;
void setTitle(const std::string& title) {
  const size_t n = std::min(title.size(), arg_size - 1);
  std::memcpy(arg_start, title.data(), n);
  std::memset(arg_start + n, 0, arg_size - n);
}

Worker* find(pid_t tid) {
  std::lock_guard lock(mu);
  const auto it = workers.find(tid);
  return it == workers.end() ? nullptr : it->second.get();
}

}  // namespace

int main(int argc, char** argv) {
  arg_start = argv[0];
  arg_size = static_cast<size_t>(argv[argc - 1] + std::strlen(argv[argc - 1]) + 1 - argv[0]);
  bool serve = false;
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--serve") serve = true;
  }
  // Blocked before any thread starts, so that only sigwait below takes it.
  if (serve) pthread_sigmask(SIG_BLOCK, &term, nullptr);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.starts_with("--thread=")) startThread(arg.substr(9));
    if (arg.starts_with("--spin=")) {
      Worker* w = startThread(arg.substr(7));
      std::lock_guard lock(mu);
      w->spin = true;
      cv.notify_all();
    }
  }
  std::vector<pid_t> children;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd, name;
    in >> cmd;
    if (cmd == "spawn" && in >> name) {
      std::printf("tid %d\n", static_cast<int>(startThread(name)->tid));
    } else if (cmd == "burst") {
      int n = 0;
      in >> n >> name;
      for (int i = 0; i < n; ++i) startThread(name + "-" + std::to_string(i));
      std::printf("burst %d\n", n);
    } else if (cmd == "churn") {
      int n = 0;
      in >> n >> name;
      for (int i = 0; i < n; ++i) std::thread([name] { pthread_setname_np(pthread_self(), name.c_str()); }).join();
      std::printf("churned %d\n", n);
    } else if (cmd == "rename" || cmd == "exit" || cmd == "spin" || cmd == "park") {
      pid_t tid = 0;
      in >> tid >> name;
      Worker* w = find(tid);
      if (w == nullptr) {
        std::printf("error no thread %d\n", static_cast<int>(tid));
      } else {
        {
          std::unique_lock lock(mu);
          if (cmd == "rename") w->rename_to = name;
          if (cmd == "exit") w->quit = true;
          if (cmd == "spin") w->spin = true;
          if (cmd == "park") w->spin = false;
          cv.notify_all();
          if (cmd == "rename") cv.wait(lock, [w] { return w->rename_to.empty(); });
        }
        if (cmd == "exit") {
          w->thread.join();
          std::lock_guard lock(mu);
          workers.erase(tid);
        }
        std::printf("ok\n");
      }
    } else if (cmd == "child") {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // also when this worker is killed
        ::execl("/bin/sleep", "sleep", "600", static_cast<char*>(nullptr));
        ::_exit(127);
      }
      if (pid > 0) children.push_back(pid);
      std::printf(pid > 0 ? "pid %d\n" : "error fork %d\n", static_cast<int>(pid));
    } else if (cmd == "titled-child") {
      std::getline(in >> std::ws, name);
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::usleep(300'000);
        setTitle(name);
        ::sleep(600);
        ::_exit(0);
      }
      if (pid > 0) children.push_back(pid);
      std::printf(pid > 0 ? "pid %d\n" : "error fork %d\n", static_cast<int>(pid));
    } else if (cmd == "name" && in >> name) {
      ::prctl(PR_SET_NAME, name.c_str());
      std::printf("ok\n");
    } else if (cmd == "title") {
      std::getline(in >> std::ws, name);
      setTitle(name);
      std::printf("ok\n");
    } else if (cmd == "quit") {
      break;
    } else {
      std::printf("error unknown command\n");
    }
    std::fflush(stdout);
  }
  if (serve && line != "quit") {
    int sig = 0;
    sigwait(&term, &sig);
  }
  {
    std::lock_guard lock(mu);
    for (auto& [tid, w] : workers) w->quit = true;
    cv.notify_all();
  }
  for (auto& [tid, w] : workers) w->thread.join();
  for (const pid_t pid : children) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  return 0;
}
