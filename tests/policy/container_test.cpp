// Containers and pods from cgroup paths (policy/container.h) and the match criteria on them:
// the layouts of containerd, CRI-O, docker and podman under the systemd and cgroupfs drivers.
// The same path shapes appear in the unified hierarchy (v2) and in v1's cpu hierarchy.
#include "policy/container.h"

#include <gtest/gtest.h>

#include "policy/classifier.h"
#include "policy/policy_loader.h"

namespace cpuclass::policy {
namespace {

const std::string kId = "3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
const std::string kUid = "0d9ba2a4-5b8e-4c2e-9f1e-2a7c3e4b5d6f";
const std::string kUidSystemd = "0d9ba2a4_5b8e_4c2e_9f1e_2a7c3e4b5d6f";

struct Layout {
  std::string what, path, id, runtime, pod;
  std::optional<QosClass> qos;
};

TEST(Container, TheLayoutsInTheWildAreRead) {
  const std::vector<Layout> layouts = {
      {"containerd, systemd driver, burstable", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidSystemd +
           ".slice/cri-containerd-" + kId + ".scope", kId, "containerd", kUid, QosClass::kBurstable},
      {"CRI-O, systemd driver, besteffort", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidSystemd +
           ".slice/crio-" + kId + ".scope", kId, "cri-o", kUid, QosClass::kBestEffort},
      {"containerd, systemd driver, guaranteed", "/kubepods.slice/kubepods-pod" + kUidSystemd + ".slice/cri-containerd-" + kId + ".scope",
       kId, "containerd", kUid, QosClass::kGuaranteed},
      {"containerd, cgroupfs driver, burstable", "/kubepods/burstable/pod" + kUid + "/" + kId, kId, "", kUid, QosClass::kBurstable},
      {"containerd, cgroupfs driver, guaranteed", "/kubepods/pod" + kUid + "/" + kId, kId, "", kUid, QosClass::kGuaranteed},
      {"CRI-O, cgroupfs driver, besteffort", "/kubepods/besteffort/pod" + kUid + "/crio-" + kId, kId, "cri-o", kUid,
       QosClass::kBestEffort},
      {"a pod's own cgroup (its sandbox), no container", "/kubepods/burstable/pod" + kUid, "", "", kUid, QosClass::kBurstable},
      {"a container's thread in a subgroup of its own", "/kubepods.slice/kubepods-pod" + kUidSystemd + ".slice/cri-containerd-" + kId +
           ".scope/workers", kId, "containerd", kUid, QosClass::kGuaranteed},
      {"docker, systemd driver", "/system.slice/docker-" + kId + ".scope", kId, "docker", "", std::nullopt},
      {"docker, cgroupfs driver", "/docker/" + kId, kId, "", "", std::nullopt},
      {"podman, systemd", "/machine.slice/libpod-" + kId + ".scope", kId, "podman", "", std::nullopt},
      {"podman, systemd, with a container subgroup", "/machine.slice/libpod-" + kId + ".scope/container", kId, "podman", "",
       std::nullopt},
      {"podman, cgroupfs", "/libpod_parent/libpod-" + kId, kId, "podman", "", std::nullopt},
      {"a Kubernetes node on a kind/k3s host, nested", "/system.slice/k3s.service/kubepods/burstable/pod" + kUid + "/" + kId, kId, "",
       kUid, QosClass::kBurstable},
  };
  for (const auto& l : layouts) {
    const auto facts = parseContainer(l.path);
    ASSERT_TRUE(facts) << l.what << ": " << l.path;
    EXPECT_EQ(facts->id, l.id) << l.what;
    EXPECT_EQ(facts->runtime, l.runtime) << l.what;
    EXPECT_EQ(facts->pod_uid, l.pod) << l.what;
    EXPECT_EQ(facts->qos, l.qos) << l.what;
  }
}

TEST(Container, PlainServicesSessionsAndMonitorsAreNone) {
  for (const std::string& path : std::vector<std::string>{"/system.slice/postgresql@15-main.service", "/user.slice/user-1000.slice/session-3.scope", "/", "",
        "/machine.slice/libpod-conmon-" + kId + ".scope", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
            kUidSystemd + ".slice/crio-conmon-" + kId + ".scope",
        "/system.slice/docker-" + kId.substr(0, 63) + ".scope",  // not an id: 63 digits
        "/pod" + kUid + "/" + kId.substr(0, 12)}) {
    EXPECT_FALSE(parseContainer(path)) << path;
  }
  // A directory named like a pod outside kubepods is not a pod.
  const auto outside = parseContainer("/pod" + kUid + "/" + kId);
  ASSERT_TRUE(outside);
  EXPECT_EQ(outside->pod_uid, "");
}

Policy policyOf(const std::string& match) {
  auto r = parsePolicy({{"p.yaml", "workers:\n  - name: db\n    match: " + match + "\n    default_class: background\n"}});
  EXPECT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  return r.policy ? std::move(*r.policy) : Policy{};
}

bool matches(const Policy& p, const std::string& cgroup) {
  return matchWorker(p, {.comm = "postgres", .exe = "/usr/bin/postgres", .cmdline = "postgres", .cgroup = cgroup}) != nullptr;
}

TEST(Container, WorkersMatchByContainerIdPodAndQos) {
  const std::string in_pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidSystemd +
                             ".slice/cri-containerd-" + kId + ".scope";
  const std::string podman = "/machine.slice/libpod-" + kId + ".scope";
  const auto short_id = policyOf("{container: '" + kId.substr(0, 12) + "'}");
  EXPECT_TRUE(matches(short_id, in_pod));
  EXPECT_TRUE(matches(short_id, podman));
  EXPECT_FALSE(matches(short_id, "/machine.slice/libpod-" + std::string(64, 'a') + ".scope"));
  EXPECT_FALSE(matches(short_id, "/system.slice/db.service"));
  const auto any_container = policyOf("{container: '*'}");
  EXPECT_TRUE(matches(any_container, podman));
  EXPECT_FALSE(matches(any_container, "/kubepods/burstable/pod" + kUid));  // the pod, no container
  const auto pod = policyOf("{pod: '" + kUid + "', comm: postgres}");
  EXPECT_TRUE(matches(pod, in_pod));
  EXPECT_FALSE(matches(pod, podman));
  const auto burstable = policyOf("{qos: burstable}");
  EXPECT_TRUE(matches(burstable, in_pod));
  EXPECT_FALSE(matches(burstable, "/kubepods/pod" + kUid + "/" + kId));  // guaranteed
  EXPECT_FALSE(matches(burstable, podman));
  // Set in a rescan: a process can be moved into its container's cgroup after it started.
  EXPECT_TRUE(silentFactsToWatch(burstable, {.comm = "postgres", .exe = "/usr/bin/postgres"}).cgroup);
}

bool matchesWith(const Policy& p, const std::string& cgroup, ContainerMeta meta) {
  return matchWorker(p, {.comm = "postgres", .exe = "/usr/bin/postgres", .cmdline = "postgres", .cgroup = cgroup,
                         .container_meta = std::move(meta)}) != nullptr;
}

TEST(Container, WorkersMatchByNamesAndAnnotationsTheRuntimeRecorded) {
  const std::string in_pod = "/kubepods/burstable/pod" + kUid + "/" + kId;
  const std::string podman = "/machine.slice/libpod-" + kId + ".scope";
  const ContainerMeta k8s{.name = "postgres", .pod_name = "db-0", .pod_namespace = "prod", .annotations = {{"tier", "gold"}}};
  const auto by_name = policyOf("{container: 'pg*'}");
  EXPECT_TRUE(matchesWith(by_name, podman, {.name = "pg-main"}));
  EXPECT_FALSE(matchesWith(by_name, podman, {.name = "web"}));
  EXPECT_FALSE(matches(by_name, podman));  // no record of the name: no match
  EXPECT_FALSE(matchesWith(by_name, "/system.slice/pg.service", {.name = "pg-main"}));  // not in a container
  EXPECT_TRUE(matchesWith(policyOf("{container: postgres}"), in_pod, k8s));
  const auto by_pod = policyOf("{pod: 'prod/db-*'}");
  EXPECT_TRUE(matchesWith(by_pod, in_pod, k8s));
  EXPECT_FALSE(matchesWith(by_pod, in_pod, {.name = "postgres", .pod_name = "db-0", .pod_namespace = "dev"}));
  EXPECT_FALSE(matchesWith(by_pod, podman, {.name = "db-0"}));
  const auto by_annotation = policyOf("{annotations: {tier: 'g*'}}");
  EXPECT_TRUE(matchesWith(by_annotation, in_pod, k8s));
  EXPECT_FALSE(matchesWith(by_annotation, in_pod, {.annotations = {{"tier", "silver"}}}));
  EXPECT_FALSE(matchesWith(by_annotation, in_pod, {}));
  // Only names, namespaces and annotations need the runtime's files.
  EXPECT_TRUE(needsContainerMeta(by_name));
  EXPECT_TRUE(needsContainerMeta(by_pod));
  EXPECT_TRUE(needsContainerMeta(by_annotation));
  EXPECT_FALSE(needsContainerMeta(policyOf("{container: '" + kId.substr(0, 12) + "', pod: '" + kUid + "', qos: burstable}")));
}

TEST(Container, BadCriteriaAreClearErrors) {
  const auto error = [](const std::string& match) {
    auto r = parsePolicy({{"p.yaml", "workers:\n  - name: db\n    match: " + match + "\n"}});
    EXPECT_FALSE(r.policy) << match;
    return formatDiagnostics(r.diagnostics);
  };
  EXPECT_NE(error("{container: 3f1c2d4e}").find("a container id needs 12 to 64 hex digits"), std::string::npos);
  EXPECT_NE(error("{pod: web-7d4b9}").find("a pod UID (0d9ba2a4"), std::string::npos);
  EXPECT_NE(error("{pod: " + kUidSystemd + "}").find("or NAMESPACE/NAME"), std::string::npos);
  EXPECT_NE(error("{annotations: [a]}").find("annotations"), std::string::npos);
  EXPECT_NE(error("{annotations: {tier: ''}}").find("tier must be a non-empty string"), std::string::npos);
  EXPECT_NE(error("{qos: gold}").find("qos"), std::string::npos);
}

}  // namespace
}  // namespace cpuclass::policy
