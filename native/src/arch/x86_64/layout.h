// Guest physical layout of the microvm. Low memory addresses follow the
// Linux boot protocol's conventions (zero page, command line below 1 MiB);
// the MMIO hole sits below 4 GiB like on real boards, so 32-bit drivers can
// reach device registers.
#pragma once

#include <cstdint>

namespace virga::x86 {

constexpr uint64_t kGdtAddr = 0x500;
constexpr uint64_t kIdtAddr = 0x520;
// Zero page for the Linux entry, or hvm_start_info for PVH (never both).
constexpr uint64_t kZeroPageAddr = 0x7000;
constexpr uint64_t kPvhMemmapAddr = 0x7400;
constexpr uint64_t kBootStackTop = 0x8ff0;
constexpr uint64_t kPml4Addr = 0x9000;
constexpr uint64_t kPdptAddr = 0xa000;
constexpr uint64_t kPdAddr = 0xb000;  // four 4 KiB tables: identity map of 4 GiB with 2 MiB pages
constexpr uint64_t kCmdlineAddr = 0x20000;
constexpr uint64_t kCmdlineMax = 2048;  // Linux x86 COMMAND_LINE_SIZE
// Reserved top of base memory: the MP configuration table, then the MP
// floating pointer in the last KiB of base memory, one of the places
// kernels scan for it.
constexpr uint64_t kReservedLowStart = 0x9c000;
constexpr uint64_t kMpConfigAddr = 0x9c000;
constexpr uint64_t kMpFloatingPointerAddr = 0x9fc00;
constexpr uint64_t kLowRamEnd = 0xa0000;
constexpr uint64_t kHighMemStart = 0x100000;
constexpr uint64_t kKernelLoadAddr = 0x100000;

constexpr uint64_t kMmioHoleStart = 0xc0000000;  // 3 GiB
constexpr uint64_t kVirtioMmioBase = 0xd0000000;
constexpr uint64_t kVirtioMmioStride = 0x1000;
// The q35 board (docs/q35.md): the hole's first 512 MiB are the root
// bus's 32-bit MMIO window for BARs, then the ECAM window, 1 MiB for each
// of 256 bus numbers.
constexpr uint64_t kPciMmioBase = 0xc0000000;
constexpr uint64_t kPciMmioSize = 0x20000000;
constexpr uint64_t kPciEcamBase = 0xe0000000;
constexpr uint32_t kPciLastBus = 255;
constexpr uint64_t kIoapicAddr = 0xfec00000;
constexpr uint64_t kLapicAddr = 0xfee00000;
// Real-mode helpers KVM needs on Intel hosts; placed at the top of the hole.
constexpr uint64_t kIdentityMapAddr = 0xfeffc000;
constexpr uint64_t kTssAddr = 0xfeffd000;

constexpr uint32_t kIoapicPins = 24;
constexpr uint32_t kComIrq = 4;
constexpr uint32_t kKeyboardIrq = 1;
constexpr uint32_t kPowerButtonGsi = 9;  // the SCI's traditional line, free on a hardware-reduced machine
// GSIs above the ISA range so they never collide with legacy devices.
constexpr uint32_t kVirtioFirstGsi = 16;
// The microvm's fixed virtio-mmio slots (docs/devices.md): 6 block, 2 NIC,
// then the balloon. GSIs 16-23 fill the IOAPIC's 24 pins, so the balloon
// takes ISA IRQ 5, free on this machine. Every slot's line is
// level-triggered, active high (the ACPI _CRS and the MP table say so).
constexpr uint32_t kBlockSlots = 6;
constexpr uint32_t kNetSlots = 2;
constexpr uint32_t kBalloonSlot = kBlockSlots + kNetSlots;
constexpr uint32_t kBalloonGsi = 5;
// The VM generation ID (ACPI VMGenID): 16 bytes the guest reads at this
// address (in the reserved top of base memory, beside the MP table), and
// the Generic Event Device line that tells it the ID changed (a restored
// clone), so a Linux guest reseeds its random number generator.
constexpr uint64_t kVmGenIdAddr = 0x9f000;
constexpr uint32_t kVmGenIdGsi = 10;

// ACPI tables in the BIOS area, where kernels also scan for the RSDP.
constexpr uint64_t kAcpiTablesAddr = 0xe0000;
constexpr uint64_t kAcpiTablesEnd = 0x100000;

// Virga's ACPI hardware-reduced registers (FADT): sleep control
// (SLP_TYP<<2 | SLP_EN), sleep status, and the reset register.
constexpr uint16_t kSleepControlPort = 0x600;
constexpr uint16_t kSleepStatusPort = 0x601;
constexpr uint16_t kAcpiResetPort = 0x602;
constexpr uint8_t kAcpiResetValue = 0x1;

}  // namespace virga::x86
