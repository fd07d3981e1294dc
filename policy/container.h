// Containers and Kubernetes pods, read from a process's cgroup path: what the runtimes and the
// kubelet write into it under both cgroup drivers, on cgroup v1 and v2 alike (docs/policy.md).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cpuclass::policy {

enum class QosClass { kGuaranteed, kBurstable, kBestEffort };

struct ContainerFacts {
  std::string id;       // the runtime's 64-hex container id; empty: in a pod, outside any container
  std::string runtime;  // "containerd", "cri-o", "docker", "podman"; empty where the path does not say
  std::string pod_uid;  // Kubernetes pod UID (with dashes); empty outside Kubernetes
  std::optional<QosClass> qos;  // the pod's QoS class, where pod_uid is set
};

// What the runtime recorded of a container beyond its cgroup path: the names operators use and
// the OCI annotations. Read from the runtime's files by daemon/container_metadata.h; empty fields
// where the runtime does not record them (docs/policy.md, "Containers and pods").
struct ContainerMeta {
  std::string name;           // podman/docker name, or the Kubernetes container name
  std::string pod_name;       // Kubernetes only
  std::string pod_namespace;  // Kubernetes only
  std::map<std::string, std::string> annotations;  // the OCI bundle's (config.json)
};

// A container id as runtimes show it: 12 to 64 lowercase hex digits (a prefix of the id).
bool isContainerIdPrefix(std::string_view s);
// A Kubernetes pod UID: 8-4-4-4-12 lowercase hex digits.
bool isPodUid(std::string_view s);

// Null where the path shows neither a container nor a pod (a plain service, a session). A
// runtime's monitor (conmon) is not its container: null.
std::optional<ContainerFacts> parseContainer(std::string_view cgroup);

}  // namespace cpuclass::policy
