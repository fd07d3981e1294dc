// What container runtimes record of their containers beyond the cgroup path: names, Kubernetes
// pod names and namespaces, OCI annotations. Read from the runtimes' own files, read-only, where
// they are on this host (or mounted into the daemon's container at the same paths):
//   - the OCI bundle's config.json (containerd, CRI-O, podman, docker): the annotations, and the
//     Kubernetes names the CRI runtimes put there;
//   - containers/storage's containers.json (podman, buildah, CRI-O): the container's name;
//   - docker's config.v2.json: the container's name.
// docs/policy.md ("Containers and pods") lists the paths and what each runtime records.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "policy/container.h"

namespace cpuclass::daemon {

class ContainerMetadata {
 public:
  // root: where the host's / is (tests: a fake tree).
  explicit ContainerMetadata(std::filesystem::path root = "/") : root_(std::move(root)) {}

  // Null where no runtime file knows the container id. Found records are kept (a container's
  // names and annotations are fixed when it is created); a miss is read again next time.
  std::optional<policy::ContainerMeta> lookup(const std::string& id);

 private:
  std::optional<policy::ContainerMeta> read(const std::string& id) const;

  std::filesystem::path root_;
  std::map<std::string, policy::ContainerMeta> cache_;
};

// The parsers, apart for their tests: each fills what its file records and leaves the rest.
void readOciConfig(const std::string& json, policy::ContainerMeta& meta);
std::optional<std::string> nameInStorage(const std::string& containers_json, const std::string& id);
std::optional<std::string> nameInDockerConfig(const std::string& config_v2_json);

}  // namespace cpuclass::daemon
