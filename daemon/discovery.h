// Discovery: which processes are workers' and which threads they have (the Registry), kept by
// proc connector events and /proc rescans. It reports through its Listener what the rest must
// act on, in order (a released process's threads go back before it is matched again); it never
// places, restores or boosts, and never classifies threads (reconcile does).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/proc_events.h"
#include "cgroups/proc_fs.h"
#include "daemon/container_metadata.h"
#include "daemon/log.h"
#include "daemon/model.h"
#include "daemon/stats.h"

namespace cpuclass::daemon {

class Discovery {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // Where a new worker process's class groups hang; an error leaves it alone.
    virtual Result<std::string> baseFor(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts) = 0;
    // A process is let go while managed (a new program, a rename, a reload): its threads go back.
    virtual void releasing(pid_t pid) = 0;
    // A thread forgotten (exited, or its process let go): its origin and boost state go.
    virtual void threadForgotten(pid_t tid) = 0;
    // The last process forgotten from `base`: its groups may go.
    virtual void baseUnused(const std::string& base) = 0;
  };

  // Worker processes the daemon cannot manage, by cgroup: status, metrics and logs name the fix.
  struct LeftAlone {
    std::string worker;
    std::string cgroup;
    std::string reason;  // with the fix, e.g. "not delegated: cpuclassctl delegate x.service, then restart it"
    uint64_t start_time = 0;
  };

  Discovery(const policy::Policy& policy, const cgroups::ProcFs& proc, const Clock& clock, Stats& stats, Logger& log,
            Listener& listener);

  Registry& registry() { return reg_; }
  const Registry& registry() const { return reg_; }
  const std::map<pid_t, LeftAlone>& leftAlone() const { return left_alone_; }

  // Proc connector events; false when events were lost and a full rescan is due.
  void handleEvents(const std::vector<cgroups::ProcEvent>& events);
  // Looks at every process of /proc: forgets the gone, matches the new, re-reads silent facts.
  // Whether it could list /proc.
  bool scanProcesses();
  // Marks every thread of every managed process to reconcile.
  void markAllDirty();
  // After a reload: processes the new policy no longer gives their worker are let go, and
  // everything unmatched or left alone is looked at again by the next scan.
  void rematch();
  // New child processes whose class depends on their title, re-read until it first changes;
  // whether one changed.
  bool retitleNewChildren(Nanos now);
  bool watchingNewChildren() const { return !new_children_.empty(); }

  // A dirty thread read for reconcile, its entry made or renewed (a reused TID starts afresh);
  // nullopt where its process is not managed or it is gone (then forgotten).
  struct Seen {
    Thread& thread;
    const Process& process;
    cgroups::ThreadFacts facts;
  };
  std::optional<Seen> look(pid_t tid, pid_t tgid);
  // Processes left alone that `which` names are matched again (an answer they waited for came).
  void retryLeftAlone(const std::function<bool(const LeftAlone&)>& which);
  // Events were lost: every unmatched process is matched again at the next scan.
  void lookAgainAtUnmatched() { unmatched_.clear(); }

  // Finds tid among managed threads, looking at its process first if events have not yet
  // (marked dirty: the caller reconciles).
  Thread* find(pid_t tid);
  // The worker's spec: from the policy, or a registration.
  const policy::WorkerSpec* workerSpec(const std::string& name) const;
  // Errors: EINVAL (bad name, or a policy worker's name), ENOENT (no such class), ESRCH (no such
  // process), EBUSY (already managed).
  Result<void> registerWorker(pid_t pid, const std::string& name, const std::string& default_class);
  Result<void> unregisterWorker(pid_t pid);
  void releaseProcess(pid_t pid);  // the Listener restores its threads, then it is forgotten

 private:
  struct Unmatched {
    uint64_t start_time = 0;
    policy::SilentFacts watch;  // what the rescan re-reads; usually nothing
    policy::ProcessFacts facts;  // kept only while watched
    uint32_t rechecks = 0;  // rescans since it is no longer young
  };

  // Matches a process not managed yet (a child of a managed one is the parent's worker's);
  // `why` says what made it look again, for the log and `explain`.
  void considerProcess(pid_t pid, std::string_view why = {});
  std::string matchedWhy(const policy::WorkerSpec& worker, std::string_view why) const;
  // The container's names and annotations, where a worker matches by them (policy::needsContainerMeta).
  void addContainerMeta(policy::ProcessFacts& facts);
  void renamedProcess(pid_t pid, const std::string& comm);  // its main thread's COMM event
  // Re-reads the command line and cgroup where a change could match a worker or reclassify a
  // child process (no kernel event reports those changes).
  void recheckSilentFacts();
  bool readsTitle(const Process& p) const;  // its worker's process rules read a child's title
  bool retitled(pid_t pid, Process& p);      // re-reads the title; whether it changed (threads marked)
  Result<void> addProcess(pid_t pid, uint64_t start_time, std::string worker, bool child, policy::ProcessFacts facts,
                          std::string why);
  void forgetProcess(pid_t pid);
  void forgetThread(pid_t tid);
  void markThreadsDirty(pid_t pid);

  const policy::Policy& policy_;
  const cgroups::ProcFs& proc_;
  const Clock& clock_;
  Stats& stats_;
  Logger& log_;
  Listener& listener_;
  ContainerMetadata containers_;

  Registry reg_;
  std::map<pid_t, Unmatched> unmatched_;  // processes no worker matched
  std::map<pid_t, Nanos> new_children_;    // pid -> until when its title is re-read at each poll
  std::map<pid_t, LeftAlone> left_alone_;  // worker processes we may not touch (v2, not delegated)
  std::map<std::string, policy::WorkerSpec> registered_;  // workers that registered over D-Bus
};

}  // namespace cpuclass::daemon
