#include "tests/fakes/fake_cgroup_tree.h"

namespace cpuclass::testing {

void FakeCgroupTree::addGroup(const std::string& group) {
  const auto dir = at(group);
  std::filesystem::create_directories(dir);
  if (v2_) {
    for (const auto* f : {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}) writeFile(dir / f, "");
    writeFile(dir / "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    if (!group.empty()) {
      writeFile(dir / "cgroup.type", "domain\n");
      writeFile(dir / "cpu.weight", "100\n");
      writeFile(dir / "cpu.idle", "0\n");
      writeFile(dir / "cpu.max", "max 100000\n");
    }
  } else {
    for (const auto* f : {"cgroup.procs", "tasks"}) writeFile(dir / f, "");
    writeFile(dir / "cpu.shares", "1024\n");
    writeFile(dir / "cpu.idle", "0\n");
    writeFile(dir / "cpuacct.usage", "0\n");
    writeFile(dir / "cpu.cfs_quota_us", "-1\n");
    writeFile(dir / "cpu.cfs_period_us", "100000\n");
  }
}

void FakeCgroupTree::set(const std::string& group, const std::string& file, const std::string& content) {
  writeFile(at(group) / file, content);
}

std::string FakeCgroupTree::get(const std::string& group, const std::string& file) const {
  return readFile(at(group) / file);
}

void FakeProc::addThread(pid_t pid, pid_t tid, const std::string& comm, const std::string& cgroup,
                         int policy, int nice, uint64_t start_time) {
  const auto dir = root() / std::to_string(pid) / "task" / std::to_string(tid);
  std::filesystem::create_directories(dir);
  // Fields 3..41 of proc_pid_stat(5); only state, nice, start time, rt_priority, policy matter.
  std::string stat = std::to_string(tid) + " (" + comm + ") S";
  for (int field = 4; field <= 41; ++field) {
    std::string v = "0";
    if (field == 19) v = std::to_string(nice);
    if (field == 22) v = std::to_string(start_time);
    if (field == 41) v = std::to_string(policy);
    stat += " " + v;
  }
  writeFile(dir / "stat", stat + "\n");
  writeFile(dir / "schedstat", "5000 10 1\n");
  writeFile(dir / "cgroup", cgroup);
  if (pid == tid) {
    writeFile(root() / std::to_string(pid) / "cmdline", std::string("/usr/bin/") + comm + '\0' + "--flag" + '\0');
  }
}

}  // namespace cpuclass::testing
