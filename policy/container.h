// Containers and Kubernetes pods, read from a process's cgroup path: what the runtimes and the
// kubelet write into it under both cgroup drivers, on cgroup v1 and v2 alike (docs/policy.md).
#pragma once

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

// Null where the path shows neither a container nor a pod (a plain service, a session). A
// runtime's monitor (conmon) is not its container: null.
std::optional<ContainerFacts> parseContainer(std::string_view cgroup);

}  // namespace cpuclass::policy
