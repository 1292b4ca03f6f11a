// The destination's reading of the source's stream (docs/migration.md),
// apart from the machine it fills so it builds without KVM: the stream
// comes from whoever reached the -incoming address first, and every byte
// of it is checked here before it reaches guest memory or a device.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "migration/channel.h"
#include "state/state_file.h"
#include "vm/machine_layout.h"

namespace virga::migration {

// What the stream fills: Machine on the destination, devices without KVM
// in the fuzz harness.
class IncomingMachine {
 public:
  virtual ~IncomingMachine() = default;
  // Each difference between the source's machine and this one (empty: it matches).
  virtual std::vector<std::string> AcceptLayout(const MachineLayout& source) = 0;
  virtual const GuestMemory& memory() const = 0;
  virtual void LoadState(const state::StateFile& file) = 0;
};

// Reads the hello (refusing another protocol or machine with a Refuse
// message), answers Ready and calls `on_ready`, then takes pages until the
// state, which it loads and answers with Done. Returns once the guest may
// run; throws with the reason otherwise.
void ReceiveMigration(Channel& channel, IncomingMachine& machine, int hello_timeout_ms,
                      const std::function<void()>& on_ready);

}  // namespace virga::migration
