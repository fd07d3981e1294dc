#include "cgroups/proc_events.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cpuclass::cgroups {
namespace {

// struct proc_input of Linux 6.6 (not in Debian 12's headers): a subscription with an event mask.
struct ProcInput {
  uint32_t mcast_op;
  uint32_t event_type;
};
constexpr uint32_t kEventMask = proc_event::PROC_EVENT_FORK | proc_event::PROC_EVENT_EXEC |
                                proc_event::PROC_EVENT_COMM | proc_event::PROC_EVENT_EXIT;

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // netlink payloads need not be aligned for T
  return v;
}

}  // namespace

std::vector<ProcEvent> parseProcEvents(std::span<const uint8_t> d) {
  std::vector<ProcEvent> out;
  size_t off = 0;
  while (off + sizeof(nlmsghdr) <= d.size()) {
    const auto nlh = load<nlmsghdr>(d.data() + off);
    if (nlh.nlmsg_len < sizeof(nlmsghdr) || off + nlh.nlmsg_len > d.size()) break;
    const size_t payload = off + NLMSG_HDRLEN;
    if (nlh.nlmsg_type != NLMSG_DONE && nlh.nlmsg_type != NLMSG_NOOP) {
      off += NLMSG_ALIGN(nlh.nlmsg_len);
      continue;
    }
    if (nlh.nlmsg_len >= NLMSG_HDRLEN + sizeof(cn_msg) + sizeof(proc_event)) {
      const auto ev = load<proc_event>(d.data() + payload + sizeof(cn_msg));
      ProcEvent e;
      e.timestamp_ns = ev.timestamp_ns;
      bool keep = true;
      switch (ev.what) {
        case proc_event::PROC_EVENT_FORK:
          e.kind = ProcEvent::Kind::kFork;
          e.tid = ev.event_data.fork.child_pid;
          e.tgid = ev.event_data.fork.child_tgid;
          e.parent_tgid = ev.event_data.fork.parent_tgid;
          break;
        case proc_event::PROC_EVENT_EXEC:
          e.kind = ProcEvent::Kind::kExec;
          e.tid = ev.event_data.exec.process_pid;
          e.tgid = ev.event_data.exec.process_tgid;
          break;
        case proc_event::PROC_EVENT_COMM:
          e.kind = ProcEvent::Kind::kComm;
          e.tid = ev.event_data.comm.process_pid;
          e.tgid = ev.event_data.comm.process_tgid;
          e.comm.assign(ev.event_data.comm.comm, strnlen(ev.event_data.comm.comm, sizeof ev.event_data.comm.comm));
          break;
        case proc_event::PROC_EVENT_EXIT:
          e.kind = ProcEvent::Kind::kExit;
          e.tid = ev.event_data.exit.process_pid;
          e.tgid = ev.event_data.exit.process_tgid;
          break;
        default:
          keep = false;
      }
      if (keep) out.push_back(std::move(e));
    }
    off += NLMSG_ALIGN(nlh.nlmsg_len);
  }
  return out;
}

Result<ProcConnector> ProcConnector::open(bool filter) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR));
  if (!fd.valid()) return failErrno("socket(NETLINK_CONNECTOR)");
  // Bursts of thousands of threads arrive faster than one loop iteration; 8 MiB holds ~80,000.
  const int size = 8 << 20;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = CN_IDX_PROC;
  addr.nl_pid = 0;  // let the kernel pick a unique port id
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return failErrno("bind proc connector (needs root, or Linux 6.6 in the initial namespaces)");
  }
  // nlmsghdr | cn_msg | payload, laid out by hand: cn_msg ends in a flexible array.
  const size_t payload = filter ? sizeof(ProcInput) : sizeof(uint32_t);
  alignas(nlmsghdr) uint8_t req[NLMSG_HDRLEN + sizeof(cn_msg) + sizeof(ProcInput)]{};
  nlmsghdr nlh{};
  nlh.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + sizeof(cn_msg) + payload);
  nlh.nlmsg_type = NLMSG_DONE;
  nlh.nlmsg_pid = 0;
  cn_msg cn{};
  cn.id.idx = CN_IDX_PROC;
  cn.id.val = CN_VAL_PROC;
  cn.len = static_cast<uint16_t>(payload);
  const ProcInput input{PROC_CN_MCAST_LISTEN, kEventMask};
  std::memcpy(req, &nlh, sizeof nlh);
  std::memcpy(req + NLMSG_HDRLEN, &cn, sizeof cn);
  std::memcpy(req + NLMSG_HDRLEN + sizeof cn, &input, payload);
  if (::send(fd.get(), req, nlh.nlmsg_len, 0) < 0) return failErrno("subscribe to the proc connector");
  return ProcConnector(std::move(fd));
}

Result<std::vector<ProcEvent>> ProcConnector::drain(bool& lost) {
  std::vector<ProcEvent> out;
  alignas(nlmsghdr) uint8_t buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (errno == ENOBUFS) {
        lost = true;
        continue;
      }
      return failErrno("recv from the proc connector");
    }
    auto events = parseProcEvents(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    out.insert(out.end(), std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
  }
  return out;
}

}  // namespace cpuclass::cgroups
