#include "memory/mem_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "common/error.h"

namespace virga {

namespace {

constexpr uint64_t kHugetlbfsMagic = 0x958458f6;

std::string Mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::runtime_error Problem(const std::string& what, int err) {
  return std::runtime_error(what + " (" + std::strerror(err) + ")");
}

// Whether the first `size` bytes of `fd` hold data rather than holes.
// File systems that cannot tell (hugetlbfs) call everything data.
bool HoldsData(int fd, uint64_t size) {
  if (size == 0) return false;
  off_t data = ::lseek(fd, 0, SEEK_DATA);
  if (data < 0) return errno != ENXIO;
  return static_cast<uint64_t>(data) < size;
}

// Huge pages of this size nobody holds or has reserved, within the mount's
// own limit when it has one (size=).
uint64_t FreeHugePages(uint64_t page_size, const struct statfs& fs) {
  std::string dir = "/sys/kernel/mm/hugepages/hugepages-" + std::to_string(page_size >> 10) + "kB/";
  auto read = [&](const char* name) {
    uint64_t value = 0;
    std::ifstream in(dir + name);
    in >> value;
    return value;
  };
  uint64_t free = read("free_hugepages"), reserved = read("resv_hugepages");
  uint64_t available = free > reserved ? free - reserved : 0;
  if (fs.f_blocks > 0) available = std::min<uint64_t>(available, fs.f_bavail);
  return available;
}

}  // namespace

MemPathInfo CheckMemPath(const std::string& path, uint64_t size, bool shared) {
  struct stat st {};
  std::string where = path;  // the file system the file is (or will be) on
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists) {
    if (errno != ENOENT) throw Problem("cannot access " + path, errno);
    where = Parent(path);
    struct stat dir {};
    if (::stat(where.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode)) {
      throw std::runtime_error(path + " does not exist, nor does its directory " + where);
    }
    if (::access(where.c_str(), W_OK | X_OK) != 0) throw Problem(where + " is not writable", errno);
  } else if (S_ISDIR(st.st_mode)) {
    if (::access(path.c_str(), W_OK | X_OK) != 0) throw Problem(path + " is not writable", errno);
  } else if (S_ISREG(st.st_mode)) {
    if (::access(path.c_str(), R_OK | W_OK) != 0) throw Problem(path + " is not writable", errno);
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have != 0 && have < size) {
      throw std::runtime_error(path + " holds " + Mib(have) + ", less than the guest's " + Mib(size) + " of RAM (-m)");
    }
    if (!shared) {
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) throw Problem("cannot open " + path, errno);
      if (HoldsData(fd.get(), size)) {
        throw std::runtime_error(path +
                                 " already holds data; without -mem-share guest RAM is a private copy of the file, "
                                 "so the guest would start on its bytes: give a directory, a new or empty file, or "
                                 "add -mem-share");
      }
    }
  } else {
    throw std::runtime_error(path + " is neither a directory nor a regular file");
  }

  struct statfs fs {};
  if (::statfs(where.c_str(), &fs) != 0) throw Problem("cannot statfs " + where, errno);
  MemPathInfo info{4096, false};
  if (static_cast<uint64_t>(fs.f_type) != kHugetlbfsMagic) return info;
  info.hugetlbfs = true;
  info.page_size = static_cast<uint64_t>(fs.f_bsize);
  std::string page = std::to_string(info.page_size >> 10) + " KiB";
  if (size % info.page_size != 0) {
    throw std::runtime_error("guest RAM (" + Mib(size) + ", -m) is not a whole number of the " + page +
                             " huge pages of " + where);
  }
  // An existing file of the right size may hold its pages already.
  bool allocates = !exists || S_ISDIR(st.st_mode) || st.st_size == 0;
  uint64_t needed = size / info.page_size, available = FreeHugePages(info.page_size, fs);
  if (allocates && available < needed) {
    throw std::runtime_error(where + " is hugetlbfs with " + page + " pages: the guest's " + Mib(size) + " of RAM need " +
                             std::to_string(needed) + ", the host has " + std::to_string(available) +
                             " free (vm.nr_hugepages)");
  }
  return info;
}

std::unique_ptr<FileBacking> OpenMemPath(const std::string& path, uint64_t size, bool shared) {
  MemPathInfo info;
  try {
    info = CheckMemPath(path, size, shared);
  } catch (const std::runtime_error& e) {
    throw VmmError(std::string("-mem-path: ") + e.what());
  }
  UniqueFd fd;
  bool created = false;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::string name = path + "/virga-ram-XXXXXX";
    fd.Reset(::mkostemp(name.data(), O_CLOEXEC));
    if (!fd.valid()) throw ErrnoError("-mem-path: creating a file in " + path);
    ::unlink(name.c_str());
    created = true;
  } else {
    fd.Reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.valid()) {
      // Made for this VM only: it goes with the VM, as StratoVirt's does.
      ::unlink(path.c_str());
      created = true;
    } else if (errno == EEXIST) {
      fd.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    }
    if (!fd.valid()) throw ErrnoError("-mem-path: cannot open " + path);
  }
  if (::fstat(fd.get(), &st) != 0) throw ErrnoError("-mem-path: fstat " + path);
  bool empty = st.st_size == 0;
  if (empty && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    throw ErrnoError("-mem-path: sizing " + path + " to " + Mib(size));
  }
  if (static_cast<uint64_t>(st.st_size) < size && !empty) {
    throw VmmError("-mem-path: " + path + " holds " + Mib(static_cast<uint64_t>(st.st_size)) + ", less than the guest's " +
                   Mib(size) + " of RAM (-m)");
  }
  FileBacking::Options options;
  options.shared = shared;
  options.page_size = info.page_size;
  options.hugetlbfs = info.hugetlbfs;
  options.starts_zeroed = created || empty || !HoldsData(fd.get(), size);
  options.flag = "-mem-path " + path;
  options.refusal = shared ? "guest RAM is file-backed and shared (-mem-path " + path + ", -mem-share)"
                           : "guest RAM is file-backed (-mem-path " + path + ")";
  return std::make_unique<FileBacking>(std::move(fd), options);
}

}  // namespace virga
