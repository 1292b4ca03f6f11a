#include "devices/pci/vfio_device.h"

#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstring>

#include "common/error.h"

namespace virga::pci {

VfioDevice::VfioDevice(std::string name, UniqueFd fd, std::shared_ptr<void> group)
    : group_(std::move(group)), name_(std::move(name)), fd_(std::move(fd)) {
  vfio_device_info info{};
  info.argsz = sizeof(info);
  if (::ioctl(fd_.get(), VFIO_DEVICE_GET_INFO, &info) != 0) throw ErrnoError(name_ + ": VFIO_DEVICE_GET_INFO");
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) throw VmmError(name_ + ": VFIO says it is not a PCI device");
  resettable_ = (info.flags & VFIO_DEVICE_FLAGS_RESET) != 0;
  for (uint32_t index = 0; index < info.num_regions && index <= kVfioConfigRegion; ++index) {
    vfio_region_info region{};
    region.argsz = sizeof(region);
    region.index = index;
    Info entry;
    if (::ioctl(fd_.get(), VFIO_DEVICE_GET_REGION_INFO, &region) == 0) {
      entry.region.size = region.size;
      entry.region.mappable = (region.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0;
      entry.offset = region.offset;
    }
    regions_.push_back(entry);
  }
  if (regions_.size() <= kVfioConfigRegion || regions_[kVfioConfigRegion].region.size == 0) {
    throw VmmError(name_ + ": VFIO offers no configuration space region");
  }
  vfio_irq_info irq{};
  irq.argsz = sizeof(irq);
  irq.index = VFIO_PCI_MSI_IRQ_INDEX;
  if (info.num_irqs > VFIO_PCI_MSI_IRQ_INDEX && ::ioctl(fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &irq) == 0) {
    msi_vectors_ = irq.count;
  }
}

VfioDevice::~VfioDevice() {
  for (Info& entry : regions_) {
    if (entry.mapped != nullptr) ::munmap(entry.mapped, entry.region.size);
  }
}

VfioRegion VfioDevice::Region(uint32_t index) const {
  return index < regions_.size() ? regions_[index].region : VfioRegion{};
}

bool VfioDevice::ReadRegion(uint32_t index, uint64_t offset, void* data, uint32_t len) {
  if (index >= regions_.size() || offset + len > regions_[index].region.size) return false;
  return ::pread(fd_.get(), data, len, static_cast<off_t>(regions_[index].offset + offset)) == static_cast<ssize_t>(len);
}

bool VfioDevice::WriteRegion(uint32_t index, uint64_t offset, const void* data, uint32_t len) {
  if (index >= regions_.size() || offset + len > regions_[index].region.size) return false;
  return ::pwrite(fd_.get(), data, len, static_cast<off_t>(regions_[index].offset + offset)) ==
         static_cast<ssize_t>(len);
}

void* VfioDevice::MapRegion(uint32_t index) {
  if (index >= regions_.size() || !regions_[index].region.mappable) return nullptr;
  Info& entry = regions_[index];
  if (entry.mapped == nullptr) {
    void* at = ::mmap(nullptr, entry.region.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(),
                      static_cast<off_t>(entry.offset));
    if (at == MAP_FAILED) return nullptr;
    entry.mapped = at;
  }
  return entry.mapped;
}

void VfioDevice::SetMsi(const std::vector<int>& eventfds) {
  if (eventfds.size() > msi_vectors_) {
    throw VmmError(name_ + ": " + std::to_string(eventfds.size()) + " MSI vectors asked, VFIO offers " +
                   std::to_string(msi_vectors_));
  }
  std::vector<uint8_t> buffer(sizeof(vfio_irq_set) + eventfds.size() * sizeof(int32_t));
  auto* set = reinterpret_cast<vfio_irq_set*>(buffer.data());
  set->argsz = static_cast<uint32_t>(buffer.size());
  set->index = VFIO_PCI_MSI_IRQ_INDEX;
  set->start = 0;
  set->count = static_cast<uint32_t>(eventfds.size());
  // Count 0 with no data tears the vectors down.
  set->flags = VFIO_IRQ_SET_ACTION_TRIGGER | (eventfds.empty() ? VFIO_IRQ_SET_DATA_NONE : VFIO_IRQ_SET_DATA_EVENTFD);
  for (size_t i = 0; i < eventfds.size(); ++i) {
    int32_t fd = eventfds[i];
    std::memcpy(set->data + i * sizeof(int32_t), &fd, sizeof(fd));
  }
  if (::ioctl(fd_.get(), VFIO_DEVICE_SET_IRQS, set) != 0) {
    throw ErrnoError(name_ + ": VFIO_DEVICE_SET_IRQS (MSI, " + std::to_string(eventfds.size()) + " vectors)");
  }
}

bool VfioDevice::Reset() { return resettable_ && ::ioctl(fd_.get(), VFIO_DEVICE_RESET) == 0; }

}  // namespace virga::pci
