// The runtimes' files as each runtime lays them out, in a temporary tree standing in for /.
#include "daemon/container_metadata.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace cpuclass::daemon {
namespace {

namespace fs = std::filesystem;

const std::string kId = "3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

class ContainerMetadataTest : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  fs::path root_ = fs::temp_directory_path() / ("cpuclass-meta-" + std::to_string(::getpid()));
};

TEST_F(ContainerMetadataTest, KubernetesNamesComeFromTheBundleOfContainerdAndCriO) {
  write("run/containerd/io.containerd.runtime.v2.task/k8s.io/" + kId + "/config.json",
        R"({"ociVersion": "1.1.0", "annotations": {"io.kubernetes.cri.container-name": "postgres",
            "io.kubernetes.cri.sandbox-name": "db-0", "io.kubernetes.cri.sandbox-namespace": "prod",
            "cpuclass/preset": "postgresql"}})");
  ContainerMetadata containerd(root_);
  const auto meta = containerd.lookup(kId);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->name, "postgres");
  EXPECT_EQ(meta->pod_name, "db-0");
  EXPECT_EQ(meta->pod_namespace, "prod");
  EXPECT_EQ(meta->annotations.at("cpuclass/preset"), "postgresql");

  fs::remove_all(root_);
  write("run/containers/storage/overlay-containers/" + kId + "/userdata/config.json",
        R"({"annotations": {"io.kubernetes.container.name": "redis", "io.kubernetes.pod.name": "cache-1",
            "io.kubernetes.pod.namespace": "web", "io.container.manager": "cri-o"}})");
  const auto crio = ContainerMetadata(root_).lookup(kId);
  ASSERT_TRUE(crio);
  EXPECT_EQ(crio->name, "redis");
  EXPECT_EQ(crio->pod_name + "/" + crio->pod_namespace, "cache-1/web");
  // Found records are kept: the bundle is gone, the first lookup's answer stays.
  EXPECT_TRUE(containerd.lookup(kId));
}

TEST_F(ContainerMetadataTest, PodmanAndDockerNamesComeFromTheirOwnRecords) {
  write("var/lib/containers/storage/overlay-containers/" + kId + "/userdata/config.json",
        R"({"annotations": {"io.container.manager": "libpod", "cpuclass/class": "offload"}})");
  write("var/lib/containers/storage/overlay-containers/containers.json",
        R"([{"id": "0000", "names": ["other"]}, {"id": ")" + kId + R"(", "names": ["pg-main"], "image": "x"}])");
  const auto podman = ContainerMetadata(root_).lookup(kId);
  ASSERT_TRUE(podman);
  EXPECT_EQ(podman->name, "pg-main");
  EXPECT_EQ(podman->pod_name, "");
  EXPECT_EQ(podman->annotations.at("cpuclass/class"), "offload");

  fs::remove_all(root_);
  write("var/lib/docker/containers/" + kId + "/config.v2.json", R"({"ID": ")" + kId + R"(", "Name": "/web"})");
  const auto docker = ContainerMetadata(root_).lookup(kId);
  ASSERT_TRUE(docker);
  EXPECT_EQ(docker->name, "web");
}

TEST_F(ContainerMetadataTest, UnknownOrBrokenFilesGiveNothingAndAreReadAgain) {
  ContainerMetadata meta(root_);
  EXPECT_FALSE(meta.lookup(kId));
  write("var/lib/containers/storage/overlay-containers/containers.json", "[{\"id\": ");  // cut short
  EXPECT_FALSE(meta.lookup(kId));
  write("var/lib/containers/storage/overlay-containers/containers.json", R"([{"id": ")" + kId + R"(", "names": ["late"]}])");
  ASSERT_TRUE(meta.lookup(kId));  // a miss is not kept
  EXPECT_EQ(meta.lookup(kId)->name, "late");
  policy::ContainerMeta none;
  readOciConfig("not json", none);
  readOciConfig(R"({"annotations": ["a"]})", none);
  EXPECT_TRUE(none.annotations.empty());
  EXPECT_FALSE(nameInDockerConfig(R"({"Name": 3})"));
}

}  // namespace
}  // namespace cpuclass::daemon
