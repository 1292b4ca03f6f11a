#include "devices/pci/vfio_container.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <vector>

#include "common/error.h"

namespace virga::pci {

namespace {

// The last component of a symlink's target ("" when it is not a link).
std::string LinkBase(const std::string& path) {
  char target[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return "";
  std::string text(target, static_cast<size_t>(n));
  return text.substr(text.rfind('/') + 1);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Why group `group` is not viable: the functions in it bound to another driver.
std::string GroupCulprits(uint32_t group, const std::string& sysfs) {
  std::string devices = sysfs + "/kernel/iommu_groups/" + std::to_string(group) + "/devices";
  std::string culprits;
  if (DIR* dir = ::opendir(devices.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name[0] == '.') continue;
      std::string driver = LinkBase(devices + "/" + name + "/driver");
      if (driver.empty() || driver == "vfio-pci") continue;
      culprits += (culprits.empty() ? "" : ", ") + name + " is bound to " + driver;
    }
    ::closedir(dir);
  }
  return culprits;
}

}  // namespace

// An open group, in the container it holds open.
struct VfioContainer::Group {
  UniqueFd fd;
  std::shared_ptr<VfioContainer> container;
};

std::string CanonicalHostAddress(const std::string& text) {
  std::string full = std::count(text.begin(), text.end(), ':') == 1 ? "0000:" + text : text;
  // DDDD:BB:SS.F
  if (full.size() != 12 || full[4] != ':' || full[7] != ':' || full[10] != '.') return "";
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isxdigit(static_cast<unsigned char>(full[i]))) return "";
  }
  if (full[11] < '0' || full[11] > '7') return "";
  if (std::stoul(full.substr(8, 2), nullptr, 16) > 0x1f) return "";
  for (char& c : full) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return full;
}

HostFunction LocateHostFunction(const std::string& name, bool is_sysfs_path, const std::string& sysfs) {
  HostFunction function;
  std::string dir;
  if (is_sysfs_path) {
    char resolved[PATH_MAX];
    if (::realpath(name.c_str(), resolved) == nullptr) throw VmmError("sysfsdev " + name + ": no such device");
    dir = resolved;
    function.address = CanonicalHostAddress(dir.substr(dir.rfind('/') + 1));
    if (function.address.empty()) throw VmmError("sysfsdev " + name + ": not a PCI function's sysfs directory");
  } else {
    function.address = CanonicalHostAddress(name);
    if (function.address.empty()) throw VmmError("host " + name + ": expected a PCI address DDDD:BB:SS.F");
    dir = sysfs + "/bus/pci/devices/" + function.address;
    if (!Exists(dir)) throw VmmError("host " + function.address + ": no such PCI device on this host");
  }
  std::string what = "host " + function.address;
  std::string group = LinkBase(dir + "/iommu_group");
  if (group.empty() || group.find_first_not_of("0123456789") != std::string::npos) {
    throw VmmError(what + ": in no IOMMU group (the host's IOMMU is off: boot it with intel_iommu=on or amd_iommu=on)");
  }
  function.group = static_cast<uint32_t>(std::stoul(group));
  std::string driver = LinkBase(dir + "/driver");
  if (driver != "vfio-pci") {
    throw VmmError(what + ": " + (driver.empty() ? "bound to no driver" : "bound to " + driver) +
                   ", not vfio-pci (echo vfio-pci > " + dir + "/driver_override, unbind it, then echo " +
                   function.address + " > " + sysfs + "/bus/pci/drivers_probe)");
  }
  return function;
}

VfioContainer::VfioContainer(const GuestMemory* memory, const std::string& dev) : memory_(memory), dev_(dev) {
  std::string path = dev_ + "/vfio";
  container_.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!container_.valid()) {
    throw ErrnoError(path + " (VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules)");
  }
  if (::ioctl(container_.get(), VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
    throw VmmError(path + ": VFIO API version is not " + std::to_string(VFIO_API_VERSION));
  }
  if (::ioctl(container_.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1) {
    throw VmmError(path + ": no type 1 v2 IOMMU (load vfio_iommu_type1)");
  }
}

std::unique_ptr<VfioDevice> VfioContainer::OpenDevice(const HostFunction& function, const std::string& sysfs) {
  std::string what = "host " + function.address;
  for (auto it = groups_.begin(); it != groups_.end();) {
    it = it->second.expired() ? groups_.erase(it) : std::next(it);
  }
  // The kernel dropped the IOMMU (and its mappings) with the last group.
  if (groups_.empty()) iommu_set_ = false;
  std::shared_ptr<Group> group;
  auto found = groups_.find(function.group);
  if (found != groups_.end()) group = found->second.lock();
  if (!group) {
    group = std::make_shared<Group>();
    std::string path = dev_ + "/" + std::to_string(function.group);
    group->fd.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!group->fd.valid()) throw ErrnoError(what + ": " + path);
    vfio_group_status status{};
    status.argsz = sizeof(status);
    if (::ioctl(group->fd.get(), VFIO_GROUP_GET_STATUS, &status) != 0) {
      throw ErrnoError(what + ": VFIO_GROUP_GET_STATUS");
    }
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
      std::string culprits = GroupCulprits(function.group, sysfs);
      throw VmmError(what + ": IOMMU group " + std::to_string(function.group) + " is not viable" +
                     (culprits.empty() ? "" : " (" + culprits + ")") +
                     "; every function in it must be bound to vfio-pci or to no driver");
    }
    int container = container_.get();
    if (::ioctl(group->fd.get(), VFIO_GROUP_SET_CONTAINER, &container) != 0) {
      throw ErrnoError(what + ": VFIO_GROUP_SET_CONTAINER");
    }
    if (!iommu_set_) {
      if (::ioctl(container_.get(), VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) throw ErrnoError(what + ": VFIO_SET_IOMMU");
      iommu_set_ = true;
      MapGuestRam();
    }
    group->container = shared_from_this();
    groups_[function.group] = group;
  }
  int fd = ::ioctl(group->fd.get(), VFIO_GROUP_GET_DEVICE_FD, function.address.c_str());
  if (fd < 0) throw ErrnoError(what + ": VFIO_GROUP_GET_DEVICE_FD");
  return std::make_unique<VfioDevice>(function.address, UniqueFd(fd), std::move(group));
}

void VfioContainer::MapGuestRam() {
  // A reset's kernel load would otherwise drop zero pages, and the device
  // would go on reaching the old ones.
  memory_->PinForDevices();
  // VFIO pins all of guest RAM against RLIMIT_MEMLOCK (8 MiB by default);
  // raise it as far as this process may, and let MAP_DMA name the limit
  // when that is not enough.
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    rlim_t want = memory_->size() + (64u << 20);
    if (limit.rlim_cur < want) {
      rlimit raised{want, limit.rlim_max == RLIM_INFINITY || limit.rlim_max > want ? limit.rlim_max : want};
      if (::setrlimit(RLIMIT_MEMLOCK, &raised) != 0) {
        raised.rlim_cur = limit.rlim_max;
        raised.rlim_max = limit.rlim_max;
        ::setrlimit(RLIMIT_MEMLOCK, &raised);
      }
    }
  }
  for (const MemoryRegion& region : memory_->regions()) {
    vfio_iommu_type1_dma_map map{};
    map.argsz = sizeof(map);
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = reinterpret_cast<uint64_t>(region.host);
    map.iova = region.guest_base;
    map.size = region.size;
    if (::ioctl(container_.get(), VFIO_IOMMU_MAP_DMA, &map) != 0) {
      throw ErrnoError("VFIO_IOMMU_MAP_DMA of guest RAM at " + std::to_string(region.guest_base) + " (" +
                       std::to_string(region.size >> 20) + " MiB; RLIMIT_MEMLOCK must allow pinning it)");
    }
  }
}

}  // namespace virga::pci
