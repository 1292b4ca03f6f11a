// KVM structs ending in a flexible array (kvm_cpuid2, kvm_msrs, kvm_irq_routing) are declared
// with __DECLARE_FLEX_ARRAY, which in C++ adds an empty struct member: the
// entries move by 4-8 bytes and sizeof() changes, so the ioctl numbers that
// encode the size come out wrong (EINVAL). These are the C layouts.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace virga::kvm {

struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
struct RoutingHeader {
  uint32_t nr;
  uint32_t flags;
};
// The coalesced-write ring page: this header, then kvm_coalesced_mmio entries.
struct CoalescedRingHeader {
  uint32_t first;  // next entry for userspace to take
  uint32_t last;   // next entry KVM fills
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8 && sizeof(CoalescedRingHeader) == 8, "C layout");
static_assert(sizeof(kvm_coalesced_mmio) == 24, "C layout");

constexpr unsigned long kIoctlGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kIoctlSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kIoctlGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kIoctlSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kIoctlSetGsiRouting = _IOW(KVMIO, 0x6a, RoutingHeader);
static_assert(sizeof(kvm_irq_routing_entry) == 48, "C layout");
// struct kvm_xsave: a 4 KiB region (then the flexible `extra`, used only
// through KVM_GET_XSAVE2 for state larger than 4 KiB).
struct XsaveRegion {
  uint32_t region[1024];
};
static_assert(sizeof(XsaveRegion) == 4096, "C layout");
constexpr unsigned long kIoctlGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
constexpr unsigned long kIoctlSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
// struct kvm_msr_list is a u32 count then the indices.
constexpr unsigned long kIoctlGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);

// A header followed by `count` entries, laid out as the kernel expects.
template <typename Header, typename Entry>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t count) : bytes_(sizeof(Header) + count * sizeof(Entry), 0) {}
  void* data() { return bytes_.data(); }
  Header header() const {
    Header h;
    std::memcpy(&h, bytes_.data(), sizeof(h));
    return h;
  }
  void set_header(const Header& h) { std::memcpy(bytes_.data(), &h, sizeof(h)); }
  Entry entry(size_t i) const {
    Entry e;
    std::memcpy(&e, bytes_.data() + sizeof(Header) + i * sizeof(Entry), sizeof(e));
    return e;
  }
  void set_entry(size_t i, const Entry& e) { std::memcpy(bytes_.data() + sizeof(Header) + i * sizeof(Entry), &e, sizeof(e)); }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace virga::kvm
