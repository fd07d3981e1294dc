// cpuclass-rocksdb-bench: a RocksDB-based server in miniature for bench/engines. Reader threads
// ("reader-N") do point Gets at a fixed rate, open loop: each Get is timed from its scheduled
// start, so a reader that fell behind counts its wait (db_bench's read rate limiter would count
// its own sleeps instead). In `full` mode writer threads ("writer-N") put at a fixed rate, and
// RocksDB's pool threads (rocksdb:high flushes, rocksdb:low compactions with zstd) are the
// background work. --demote=nice19|sched-idle does to the rocksdb:* threads what users do by
// thread name instead of cpuclassd.
//   cpuclass-rocksdb-bench --db=DIR [--seconds=20] [--mode=full|readers-only] [--demote=none]
//                          [--latency-out=FILE] [--read-rate=2000] [--write-rate=20000]
// Prints "reads N", "compaction_mb X"; writes each Get's latency (us) to FILE, one a line.
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kKeys = 200'000;
constexpr size_t kValueSize = 400;

int64_t nowNs() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1'000'000'000L + t.tv_nsec;
}

void sleepUntilNs(int64_t at) {
  const timespec t{static_cast<time_t>(at / 1'000'000'000L), static_cast<long>(at % 1'000'000'000L)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr) == EINTR) {
  }
}

std::string key(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%012llu", static_cast<unsigned long long>(i));
  return buf;
}

// Half random, half repeated: compressible like real rows, so compaction's zstd has work.
std::string value(std::mt19937_64& rng) {
  std::string v(kValueSize, 'v');
  for (size_t i = 0; i < kValueSize / 2; ++i) v[i] = static_cast<char>('a' + rng() % 26);
  return v;
}

// This thread's run_delay: nanoseconds spent runnable, waiting for a CPU (schedstat, field 2).
uint64_t ownRunDelayNs() {
  std::ifstream in("/proc/thread-self/schedstat");
  uint64_t on_cpu = 0, waiting = 0;
  in >> on_cpu >> waiting;
  return waiting;
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--" + name + "=", 0) == 0) return a.substr(name.size() + 3);
  }
  return fallback;
}

// What users do instead of cpuclassd, by thread name: every rocksdb:* thread of this process.
void demote(const std::string& how) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("rocksdb:", 0) != 0) continue;
    const auto tid = static_cast<id_t>(std::stoi(e.path().filename().string()));
    if (how == "nice19") ::setpriority(PRIO_PROCESS, tid, 19);
    if (how == "sched-idle") {
      const sched_param p{};
      ::sched_setscheduler(static_cast<pid_t>(tid), SCHED_IDLE, &p);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = arg(argc, argv, "db", "");
  if (dir.empty()) {
    std::fprintf(stderr, "usage: cpuclass-rocksdb-bench --db=DIR [--seconds=20] [--mode=full|readers-only] ...\n");
    return 2;
  }
  const int seconds = std::stoi(arg(argc, argv, "seconds", "20"));
  const bool full = arg(argc, argv, "mode", "full") == "full";
  const std::string how = arg(argc, argv, "demote", "none");
  const double read_rate = std::stod(arg(argc, argv, "read-rate", "2000"));    // per reader
  const double write_rate = std::stod(arg(argc, argv, "write-rate", "20000"));  // per writer

  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = 4;  // one flush thread (rocksdb:high), three compaction (rocksdb:low)
  options.write_buffer_size = 4 << 20;
  options.target_file_size_base = 4 << 20;
  options.max_bytes_for_level_base = 16 << 20;
  options.compression = rocksdb::kZSTD;
  options.statistics = rocksdb::CreateDBStatistics();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(256 << 20);
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  std::filesystem::remove_all(dir);
  rocksdb::DB* raw = nullptr;
  if (const auto s = rocksdb::DB::Open(options, dir, &raw); !s.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::mt19937_64 rng(42);
  for (int i = 0; i < kKeys; ++i) db->Put(rocksdb::WriteOptions(), key(static_cast<uint64_t>(i)), value(rng));
  db->Flush(rocksdb::FlushOptions());
  for (uint64_t pending = 1, running = 1; pending + running > 0; ::usleep(50'000)) {  // the load settles first
    db->GetIntProperty(rocksdb::DB::Properties::kCompactionPending, &pending);
    db->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &running);
  }
  const uint64_t compacted_before = options.statistics->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);

  std::atomic<bool> stop{false};
  const int64_t start = nowNs() + 100'000'000;  // everyone starts together
  const int64_t end = start + int64_t{seconds} * 1'000'000'000L;
  std::vector<std::vector<uint32_t>> latencies(2);
  // Each reader's time runnable but waiting for a CPU (schedstat's run_delay) over its run: how
  // much of the latency is CPU wait rather than locks or I/O.
  std::vector<uint64_t> run_delay_ns(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      pthread_setname_np(pthread_self(), ("reader-" + std::to_string(r)).c_str());
      std::mt19937_64 my(static_cast<uint64_t>(r) + 1);
      std::exponential_distribution<double> gap(read_rate / 1e9);  // Poisson arrivals
      std::string out;
      const uint64_t delay_before = ownRunDelayNs();
      for (int64_t at = start; at < end; at += static_cast<int64_t>(gap(my))) {
        sleepUntilNs(at);
        db->Get(rocksdb::ReadOptions(), key(my() % kKeys), &out);
        latencies[static_cast<size_t>(r)].push_back(static_cast<uint32_t>((nowNs() - at) / 1000));
      }
      run_delay_ns[static_cast<size_t>(r)] = ownRunDelayNs() - delay_before;
    });
  }
  if (full) {
    for (int w = 0; w < 2; ++w) {
      threads.emplace_back([&, w] {
        pthread_setname_np(pthread_self(), ("writer-" + std::to_string(w)).c_str());
        std::mt19937_64 my(static_cast<uint64_t>(w) + 100);
        const auto interval = static_cast<int64_t>(1e9 / write_rate * 100);
        for (int64_t at = start; at < end; at += interval) {
          sleepUntilNs(at);
          for (int i = 0; i < 100; ++i) db->Put(rocksdb::WriteOptions(), key(my() % (kKeys * 4)), value(my));
        }
      });
    }
    if (how != "none") {
      threads.emplace_back([&] {
        while (!stop) {
          demote(how);  // pool threads start lazily: looked for again every 200 ms
          ::usleep(200'000);
        }
      });
    }
  }
  for (size_t i = 0; i < 2 + (full ? 2 : 0); ++i) threads[i].join();
  stop = true;
  for (size_t i = 2 + (full ? 2 : 0); i < threads.size(); ++i) threads[i].join();

  const double mb =
      static_cast<double>(options.statistics->getTickerCount(rocksdb::COMPACT_WRITE_BYTES) - compacted_before) / 1e6;
  std::ofstream out(arg(argc, argv, "latency-out", "/dev/null"));
  size_t reads = 0;
  for (const auto& l : latencies) {
    for (const uint32_t us : l) out << us << '\n';
    reads += l.size();
  }
  const double wait_us = static_cast<double>(run_delay_ns[0] + run_delay_ns[1]) / 1000.0 / static_cast<double>(std::max<size_t>(reads, 1));
  std::printf("reads %zu\ncompaction_mb %.1f\nfg_cpu_wait_us_per_op %.1f\n", reads, mb, wait_us);
  rocksdb::CancelAllBackgroundWork(db.get(), true);  // no waiting for compactions at exit
  return 0;
}
