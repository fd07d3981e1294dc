#include "policy/container.h"

#include <algorithm>
#include <array>
#include <utility>

namespace cpuclass::policy {
namespace {

bool isHexId(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

bool strip(std::string_view& s, std::string_view prefix, std::string_view suffix = {}) {
  if (!s.starts_with(prefix) || !s.ends_with(suffix) || s.size() < prefix.size() + suffix.size()) return false;
  s = s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
  return true;
}

// One path component naming a container: the runtime's scope (systemd driver), its cgroupfs
// directory, or the bare id (containerd under the cgroupfs driver). Monitors are not containers.
std::optional<std::pair<std::string_view, std::string_view>> containerIn(std::string_view part) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kPrefixes{{
      {"cri-containerd-", "containerd"}, {"crio-", "cri-o"}, {"docker-", "docker"}, {"libpod-", "podman"}}};
  if (isHexId(part)) return std::pair{part, std::string_view{}};
  for (const auto& [prefix, runtime] : kPrefixes) {
    std::string_view id = part;
    if ((strip(id, prefix, ".scope") || strip(id, prefix)) && isHexId(id)) return std::pair{id, runtime};
  }
  return std::nullopt;
}

// kubepods-burstable-pod<uid>.slice (systemd driver: '_' for '-') or pod<uid> (cgroupfs).
std::optional<std::string> podIn(std::string_view part) {
  std::string_view uid = part;
  if (!strip(uid, "pod") && !strip(uid, "kubepods-pod", ".slice") && !strip(uid, "kubepods-burstable-pod", ".slice") &&
      !strip(uid, "kubepods-besteffort-pod", ".slice")) {
    return std::nullopt;
  }
  uid = uid.substr(0, uid.find('.'));  // pod<uid>.slice under a custom parent
  if (uid.size() != 36) return std::nullopt;  // 8-4-4-4-12
  std::string out(uid);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

}  // namespace

bool isContainerIdPrefix(std::string_view s) {
  return s.size() >= 12 && s.size() <= 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

bool isPodUid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : std::string_view("0123456789abcdef").find(s[i]) == std::string_view::npos) return false;
  }
  return true;
}

std::optional<ContainerFacts> parseContainer(std::string_view cgroup) {
  ContainerFacts facts;
  bool kubepods = false, monitor = false;
  std::optional<QosClass> qos_part;
  while (!cgroup.empty()) {
    const auto slash = cgroup.find('/');
    const std::string_view part = cgroup.substr(0, slash);
    cgroup.remove_prefix(slash == std::string_view::npos ? cgroup.size() : slash + 1);
    if (part == "kubepods" || part == "kubepods.slice") kubepods = true;
    if (kubepods && (part == "burstable" || part == "kubepods-burstable.slice")) qos_part = QosClass::kBurstable;
    if (kubepods && (part == "besteffort" || part == "kubepods-besteffort.slice")) qos_part = QosClass::kBestEffort;
    if (auto uid = kubepods ? podIn(part) : std::nullopt) facts.pod_uid = std::move(*uid);
    if (const auto c = containerIn(part)) {
      facts.id = c->first;
      facts.runtime = c->second;
      monitor = false;
    }
    monitor |= part.find("conmon") != std::string_view::npos;
  }
  if (monitor || (facts.id.empty() && facts.pod_uid.empty())) return std::nullopt;
  if (!facts.pod_uid.empty()) facts.qos = qos_part.value_or(QosClass::kGuaranteed);
  return facts;
}

}  // namespace cpuclass::policy
