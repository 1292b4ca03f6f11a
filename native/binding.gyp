{
  "target_defaults": {
    "include_dirs": ["src"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags": ["-fPIC"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    "ldflags": ["-pthread"]
  },
  "targets": [
    {
      "target_name": "virga_core",
      "type": "static_library",
      "sources": [
        "src/arch/x86_64/acpi/aml.cc",
        "src/arch/x86_64/acpi/tables.cc",
        "src/arch/x86_64/boot_cpu.cc",
        "src/arch/x86_64/boot_info.cc",
        "src/arch/x86_64/cpuid.cc",
        "src/arch/x86_64/kernel_loader.cc",
        "src/arch/x86_64/mptable.cc",
        "src/backends/block_file.cc",
        "src/backends/tap.cc",
        "src/chardev/chardev.cc",
        "src/common/json.cc",
        "src/devices/bus.cc",
        "src/devices/i8042.cc",
        "src/devices/rtc_cmos.cc",
        "src/devices/serial_8250.cc",
        "src/io/event_loop.cc",
        "src/io/fd_passing_reader.cc",
        "src/io/fd_passing_writer.cc",
        "src/kvm/system.cc",
        "src/kvm/vcpu.cc",
        "src/kvm/vm.cc",
        "src/memory/guest_memory.cc",
        "src/state/crc32c.cc",
        "src/state/memory_file.cc",
        "src/state/state_file.cc",
        "src/vcpu/vcpu_thread.cc",
        "src/virtio/balloon.cc",
        "src/virtio/blk.cc",
        "src/virtio/mmio_transport.cc",
        "src/virtio/net.cc",
        "src/virtio/queue.cc",
        "src/vm/coalesced_writes.cc",
        "src/vm/machine.cc",
        "src/vm/machine_layout.cc",
        "src/vm/microvm_devices.cc",
        "src/vm/snapshot.cc",
        "src/vm/vcpu_state.cc"
      ]
    },
    {
      "target_name": "virga_native",
      "dependencies": ["virga_core"],
      "sources": ["src/binding/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    },
    {
      "target_name": "virga-vmm",
      "type": "executable",
      "dependencies": ["virga_core"],
      "ldflags": ["-static-libstdc++", "-static-libgcc"],
      "sources": [
        "src/cli/command_line.cc",
        "src/cli/config_json.cc",
        "src/cli/flags.cc",
        "src/cli/option_items.cc",
        "src/main/virga_vmm.cc",
        "src/process/control_plane.cc",
        "src/process/control_requests.cc",
        "src/migration/channel.cc",
        "src/migration/destination.cc",
        "src/migration/incoming.cc",
        "src/migration/pages.cc",
        "src/migration/source.cc",
        "src/process/daemon.cc",
        "src/process/pidfile.cc",
        "src/process/qmp_listener.cc",
        "src/process/vmm_log.cc"
      ]
    }
  ]
}
