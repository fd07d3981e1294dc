#include "daemon/container_metadata.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

namespace cpuclass::daemon {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<std::string> slurp(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string stringAt(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// containerd (Kubernetes and docker) keeps a bundle per namespace: <root>/<namespace>/<id>.
std::optional<fs::path> containerdBundle(const fs::path& task_root, const std::string& id) {
  std::error_code ec;
  for (const auto& ns : fs::directory_iterator(task_root, ec)) {
    if (fs::exists(ns.path() / id / "config.json", ec)) return ns.path() / id / "config.json";
  }
  return std::nullopt;
}

}  // namespace

void readOciConfig(const std::string& text, policy::ContainerMeta& meta) {
  const json config = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto it = config.is_object() ? config.find("annotations") : config.end();
  if (it == config.end() || !it->is_object()) return;
  for (const auto& [key, value] : it->items()) {
    if (value.is_string()) meta.annotations[key] = value.get<std::string>();
  }
  // The Kubernetes names, as containerd's CRI plugin and CRI-O write them.
  const auto first = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys) {
      if (const auto a = meta.annotations.find(k); a != meta.annotations.end()) return a->second;
    }
    return std::string();
  };
  meta.name = first({"io.kubernetes.cri.container-name", "io.kubernetes.container.name"});
  meta.pod_name = first({"io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"});
  meta.pod_namespace = first({"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"});
}

std::optional<std::string> nameInStorage(const std::string& text, const std::string& id) {
  const json containers = json::parse(text, nullptr, false);
  if (!containers.is_array()) return std::nullopt;
  for (const auto& c : containers) {
    if (!c.is_object() || stringAt(c, "id") != id) continue;
    const auto names = c.find("names");
    if (names != c.end() && names->is_array() && !names->empty() && names->front().is_string()) return names->front().get<std::string>();
  }
  return std::nullopt;
}

std::optional<std::string> nameInDockerConfig(const std::string& text) {
  const json config = json::parse(text, nullptr, false);
  std::string name = config.is_object() ? stringAt(config, "Name") : std::string();
  if (name.starts_with('/')) name.erase(0, 1);
  return name.empty() ? std::nullopt : std::optional(name);
}

std::optional<policy::ContainerMeta> ContainerMetadata::lookup(const std::string& id) {
  if (const auto it = cache_.find(id); it != cache_.end()) return it->second;
  auto meta = read(id);
  if (!meta) return std::nullopt;
  // Containers come and go; their records are small. Start over rather than track which left.
  constexpr size_t kMaxKept = 4096;
  if (cache_.size() >= kMaxKept) cache_.clear();
  return cache_.emplace(id, std::move(*meta)).first->second;
}

std::optional<policy::ContainerMeta> ContainerMetadata::read(const std::string& id) const {
  const fs::path storage_bundle = fs::path("overlay-containers") / id / "userdata" / "config.json";
  const std::optional<fs::path> bundles[] = {
      containerdBundle(root_ / "run/containerd/io.containerd.runtime.v2.task", id),                 // containerd
      containerdBundle(root_ / "run/docker/containerd/daemon/io.containerd.runtime.v2.task", id),  // docker
      root_ / "run/containers/storage" / storage_bundle,                                             // CRI-O
      root_ / "var/lib/containers/storage" / storage_bundle,                                         // podman
  };
  policy::ContainerMeta meta;
  bool found = false;
  for (const auto& path : bundles) {
    if (const auto text = path ? slurp(*path) : std::nullopt) {
      readOciConfig(*text, meta);
      found = true;
      break;
    }
  }
  // podman and docker keep the name apart from the bundle.
  if (meta.name.empty()) {
    for (const char* store : {"var/lib/containers/storage", "run/containers/storage"}) {
      const auto text = slurp(root_ / store / "overlay-containers/containers.json");
      if (auto name = text ? nameInStorage(*text, id) : std::nullopt) {
        meta.name = std::move(*name);
        found = true;
        break;
      }
    }
  }
  if (meta.name.empty()) {
    if (const auto text = slurp(root_ / "var/lib/docker/containers" / id / "config.v2.json")) {
      if (auto name = nameInDockerConfig(*text)) meta.name = std::move(*name);
      found = true;
    }
  }
  return found ? std::optional(std::move(meta)) : std::nullopt;
}

}  // namespace cpuclass::daemon
