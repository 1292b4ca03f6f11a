# The core sources that build without KVM or Node, relative to src/: what
# the unit tests (test/Makefile) and the fuzz harnesses with their
# sanitizer build (fuzz/Makefile) link against.
CORE_SOURCES := chardev/chardev.cc devices/bus.cc devices/i8042.cc devices/rtc_cmos.cc devices/serial_8250.cc \
        io/event_loop.cc memory/guest_memory.cc memory/ram_backing.cc memory/file_backing.cc \
        memory/mem_path.cc memory/snapshot_backing.cc virtio/blk.cc virtio/queue.cc \
        virtio/net.cc virtio/mac_translation.cc virtio/balloon.cc backends/block_file.cc backends/tap.cc \
        devices/pci/config_space.cc devices/pci/root_bus.cc devices/pci/root_port.cc devices/pci/msix.cc \
        devices/pci/vfio_container.cc devices/pci/vfio_device.cc devices/pci/vfio_pci_function.cc \
        common/json.cc vm/backend_registry.cc vm/microvm_devices.cc vm/machine_layout.cc \
        state/crc32c.cc state/state_file.cc state/memory_file.cc \
        virtio/transport.cc virtio/mmio_transport.cc virtio/pci_transport.cc arch/x86_64/boot_info.cc arch/x86_64/cpuid.cc \
        arch/x86_64/kernel_loader.cc arch/x86_64/mptable.cc \
        arch/x86_64/acpi/aml.cc arch/x86_64/acpi/tables.cc \
        cli/command_line.cc cli/config_json.cc cli/flags.cc cli/option_items.cc \
        migration/channel.cc migration/pages.cc migration/incoming.cc
