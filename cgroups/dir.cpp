#include "cgroups/dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/text.h"

namespace cpuclass::cgroups {
namespace {

std::string relOrDot(std::string_view rel) { return rel.empty() ? "." : std::string(rel); }

}  // namespace

Result<Dir> Dir::open(const std::string& absolute_path) {
  const int fd = ::open(absolute_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failErrno("open " + absolute_path);
  return Dir(UniqueFd(fd), absolute_path);
}

std::string Dir::pathOf(std::string_view rel) const {
  if (rel.empty() || rel == ".") return path_;
  return path_ + "/" + std::string(rel);
}

Result<Dir> Dir::openDir(std::string_view rel) const {
  const int fd = ::openat(fd_.get(), relOrDot(rel).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failErrno("open " + pathOf(rel));
  return Dir(UniqueFd(fd), pathOf(rel));
}

Result<std::string> Dir::read(std::string_view rel) const {
  UniqueFd fd(::openat(fd_.get(), std::string(rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return failErrno("open " + pathOf(rel));
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("read " + pathOf(rel));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<UniqueFd> Dir::openForWrite(std::string_view rel) const {
  UniqueFd fd(::openat(fd_.get(), std::string(rel).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.valid()) return failErrno("open " + pathOf(rel));
  return fd;
}

Result<KeptFile> Dir::keep(std::string_view rel, int flags) const { return KeptFile::open(fd_.get(), rel, flags, pathOf(rel)); }

Result<KeptFile> KeptFile::open(int dir_fd, std::string_view rel, int flags, std::string path) {
  UniqueFd fd(::openat(dir_fd, std::string(rel).c_str(), flags | O_CLOEXEC));
  if (!fd.valid()) return failErrno("open " + path);
  return KeptFile(std::move(fd), std::move(path));
}

Result<std::string_view> KeptFile::reread(std::span<char> buf) const {
  const ssize_t n = ::pread(fd_.get(), buf.data(), buf.size(), 0);
  if (n == 0) return fail(ESRCH, path_ + ": empty (thread gone)");
  if (n < 0) return failErrno("pread " + path_);
  return std::string_view(buf.data(), static_cast<size_t>(n));
}

bool KeptFile::write(std::string_view data) const {
  const ssize_t n = ::write(fd_.get(), data.data(), data.size());
  if (n >= 0 && static_cast<size_t>(n) != data.size()) errno = EIO;
  return n >= 0 && static_cast<size_t>(n) == data.size();
}

Result<void> Dir::write(std::string_view rel, std::string_view data) const {
  auto fd = openForWrite(rel);
  if (!fd) return tl::unexpected(fd.error());
  const ssize_t n = ::write(fd->get(), data.data(), data.size());
  if (n < 0) return failErrno("write '" + std::string(trim(data)) + "' to " + pathOf(rel));
  if (static_cast<size_t>(n) != data.size()) return fail(EIO, "short write to " + pathOf(rel));
  return {};
}

Result<bool> Dir::makeDirs(std::string_view rel) const {
  bool created = false;
  size_t pos = 0;
  while (pos <= rel.size()) {
    auto slash = rel.find('/', pos);
    if (slash == std::string_view::npos) slash = rel.size();
    const std::string prefix(rel.substr(0, slash));
    if (!prefix.empty()) {
      if (::mkdirat(fd_.get(), prefix.c_str(), 0755) == 0) {
        created = true;
      } else if (errno == EEXIST) {
        created = false;
      } else {
        return failErrno("mkdir " + pathOf(prefix));
      }
    }
    pos = slash + 1;
  }
  return created;
}

Result<void> Dir::removeDir(std::string_view rel) const {
  if (::unlinkat(fd_.get(), std::string(rel).c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return failErrno("rmdir " + pathOf(rel));
  }
  return {};
}

Result<bool> Dir::hasXattr(std::string_view rel, const char* name) const {
  UniqueFd fd(::openat(fd_.get(), relOrDot(rel).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return failErrno("open " + pathOf(rel));
  if (::fgetxattr(fd.get(), name, nullptr, 0) >= 0) return true;
  if (errno == ENODATA || errno == ENOTSUP) return false;
  return failErrno(std::string("read xattr ") + name + " of " + pathOf(rel));
}

bool Dir::exists(std::string_view rel) const {
  return ::faccessat(fd_.get(), relOrDot(rel).c_str(), F_OK, 0) == 0;
}

Result<std::vector<std::string>> Dir::subdirs(std::string_view rel) const {
  const int fd = ::openat(fd_.get(), relOrDot(rel).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failErrno("open " + pathOf(rel));
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return failErrno("opendir " + pathOf(rel));
  }
  std::vector<std::string> out;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {  // some file systems do not fill d_type
      struct stat st{};
      is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cpuclass::cgroups
