// The only file that knows about Node: converts the JS config to
// MachineConfig, wraps Machine as the `Vm` class, and carries exit events to
// JS through a thread-safe function (never touching JS from VMM threads).
#include <napi.h>

#include <unistd.h>

#include <memory>
#include <string>

#include "io/fd_passing_reader.h"
#include "kvm/system.h"
#include "vm/machine.h"

namespace virga {

namespace {

std::string RequireString(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string("config.") + key + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

uint64_t RequireUint(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(obj.Env(), std::string("config.") + key + ": expected a non-negative number");
  }
  return static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue());
}

bool OptionalBool(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

ChardevConfig ParseSerial(const Napi::Object& config) {
  ChardevConfig serial;
  Napi::Value value = config.Get("serial");
  if (!value.IsObject()) return serial;
  Napi::Object obj = value.As<Napi::Object>();
  std::string kind = RequireString(obj, "kind");
  if (kind == "stdio") {
    serial.kind = ChardevConfig::Kind::kStdio;
  } else if (kind == "pty") {
    serial.kind = ChardevConfig::Kind::kPty;
  } else if (kind == "file") {
    serial.kind = ChardevConfig::Kind::kFile;
    serial.path = RequireString(obj, "path");
  } else if (kind == "socket") {
    serial.kind = ChardevConfig::Kind::kSocket;
    serial.path = RequireString(obj, "path");
  } else if (kind != "none") {
    throw Napi::TypeError::New(config.Env(), "config.serial.kind: expected stdio, pty, file, socket or none");
  }
  return serial;
}

MachineConfig ParseConfig(const Napi::Object& config) {
  MachineConfig out;
  out.memory_bytes = RequireUint(config, "memoryBytes");
  out.cpus = static_cast<uint32_t>(RequireUint(config, "cpus"));
  out.max_cpus = static_cast<uint32_t>(RequireUint(config, "maxCpus"));
  out.topology.sockets = static_cast<uint32_t>(RequireUint(config, "sockets"));
  out.topology.cores = static_cast<uint32_t>(RequireUint(config, "cores"));
  out.topology.threads = static_cast<uint32_t>(RequireUint(config, "threads"));
  if (out.cpus == 0 || out.cpus > out.max_cpus || out.topology.sockets * out.topology.cores * out.topology.threads < out.max_cpus) {
    throw Napi::RangeError::New(config.Env(), "config: cpus must be 1..maxCpus and sockets*cores*threads >= maxCpus");
  }
  out.kernel = RequireString(config, "kernel");
  if (config.Get("initrd").IsString()) out.initrd = RequireString(config, "initrd");
  out.cmdline = RequireString(config, "cmdline");
  std::string entry = RequireString(config, "bootEntry");
  if (entry != "linux64" && entry != "pvh") throw Napi::TypeError::New(config.Env(), "config.bootEntry: expected linux64 or pvh");
  out.boot_entry = entry == "pvh" ? x86::BootEntry::kPvh : x86::BootEntry::kLinux64;
  out.serial = ParseSerial(config);
  Napi::Value disks = config.Get("disks");
  if (disks.IsArray()) {
    Napi::Array array = disks.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Object disk = array.Get(i).As<Napi::Object>();
      out.disks.push_back({static_cast<uint32_t>(RequireUint(disk, "slot")), RequireString(disk, "id"),
                           RequireString(disk, "path"), OptionalBool(disk, "readOnly"), OptionalBool(disk, "direct")});
    }
  }
  return out;
}

class VmWrap : public Napi::ObjectWrap<VmWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Vm",
                       {
                           InstanceMethod<&VmWrap::Start>("start"),
                           InstanceMethod<&VmWrap::Pause>("pause"),
                           InstanceMethod<&VmWrap::Resume>("resume"),
                           InstanceMethod<&VmWrap::Reset>("reset"),
                           InstanceMethod<&VmWrap::PowerButton>("powerButton"),
                           InstanceMethod<&VmWrap::Vcpus>("vcpus"),
                           InstanceMethod<&VmWrap::SerialPtyPath>("serialPtyPath"),
                           InstanceMethod<&VmWrap::Destroy>("destroy"),
                           InstanceAccessor<&VmWrap::Paused>("paused"),
                           InstanceAccessor<&VmWrap::Cmdline>("cmdline"),
                       });
  }

  explicit VmWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VmWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new Vm(config, onEvent): expected an object and a function");
    }
    MachineConfig config = ParseConfig(info[0].As<Napi::Object>());
    events_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "virga-vm-events", 0, 1);
    auto events = events_;
    try {
      machine_ = std::make_unique<Machine>(config, [events](const ExitReason& reason) mutable {
        auto* copy = new ExitReason(reason);
        events.NonBlockingCall(copy, [](Napi::Env env, Napi::Function callback, ExitReason* r) {
          Napi::Object event = Napi::Object::New(env);
          if (r->kind == ExitKind::kError) {
            event.Set("type", "error");
            event.Set("message", r->message);
          } else {
            event.Set("type", "shutdown");
            event.Set("reason", r->kind == ExitKind::kGuestReset ? "guest-reset" : "guest-shutdown");
          }
          delete r;
          callback.Call({event});
        });
      });
    } catch (const std::exception& e) {
      events_.Release();
      throw Napi::Error::New(env, e.what());
    }
  }

  ~VmWrap() override { Shutdown(); }

 private:
  void Shutdown() {
    if (machine_) machine_->Destroy();
    if (!released_) {
      released_ = true;
      events_.Release();
    }
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    bool paused = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    Alive(info.Env())->Start(paused);
    return info.Env().Undefined();
  }
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    Alive(info.Env())->Pause();
    return info.Env().Undefined();
  }
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    Alive(info.Env())->Resume();
    return info.Env().Undefined();
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    try {
      Alive(info.Env())->Reset();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), std::string("reset failed: ") + e.what());
    }
    return info.Env().Undefined();
  }
  Napi::Value PowerButton(const Napi::CallbackInfo& info) {
    Alive(info.Env())->PressPowerButton();
    return info.Env().Undefined();
  }
  Napi::Value Paused(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Alive(info.Env())->paused()); }
  Napi::Value Cmdline(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Alive(info.Env())->cmdline()); }
  Napi::Value SerialPtyPath(const Napi::CallbackInfo& info) {
    std::string path = Alive(info.Env())->pty_path();
    if (path.empty()) return info.Env().Null();
    return Napi::String::New(info.Env(), path);
  }
  Napi::Value Vcpus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<VcpuSummary> vcpus = Alive(env)->Vcpus();
    Napi::Array out = Napi::Array::New(env, vcpus.size());
    for (uint32_t i = 0; i < vcpus.size(); ++i) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("index", vcpus[i].index);
      v.Set("apicId", vcpus[i].apic_id);
      v.Set("threadId", static_cast<double>(vcpus[i].thread_id));
      v.Set("halted", vcpus[i].halted);
      out.Set(i, v);
    }
    return out;
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Shutdown();
    machine_.reset();
    return info.Env().Undefined();
  }

  Machine* Alive(Napi::Env env) {
    if (!machine_) throw Napi::Error::New(env, "VM has been destroyed");
    return machine_.get();
  }

  std::unique_ptr<Machine> machine_;
  Napi::ThreadSafeFunction events_;
  bool released_ = false;
};

// JS face of FdPassingReader: data and received fds arrive on the JS thread.
class SocketReaderWrap : public Napi::ObjectWrap<SocketReaderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SocketReader",
                       {
                           InstanceMethod<&SocketReaderWrap::Pause>("pause"),
                           InstanceMethod<&SocketReaderWrap::Resume>("resume"),
                           InstanceMethod<&SocketReaderWrap::Close>("close"),
                       });
  }

  explicit SocketReaderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketReaderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsFunction() || !info[2].IsFunction()) {
      throw Napi::TypeError::New(env, "new SocketReader(fd, onData, onClose): expected a number and two functions");
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    data_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "virga-socket-data", 0, 1);
    closed_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "virga-socket-close", 0, 1);
    struct Chunk {
      std::vector<uint8_t> data;
      std::vector<int> fds;
    };
    auto data = data_;
    auto closed = closed_;
    try {
      reader_ = std::make_unique<FdPassingReader>(
          fd,
          [data](std::vector<uint8_t> bytes, std::vector<int> fds) mutable {
            auto* chunk = new Chunk{std::move(bytes), std::move(fds)};
            // Blocking: the reader thread waits for JS rather than buffering without bound.
            napi_status status = data.BlockingCall(chunk, [](Napi::Env env, Napi::Function callback, Chunk* c) {
              Napi::Array fds = Napi::Array::New(env, c->fds.size());
              for (uint32_t i = 0; i < c->fds.size(); ++i) fds.Set(i, c->fds[i]);
              callback.Call({Napi::Buffer<uint8_t>::Copy(env, c->data.data(), c->data.size()), fds});
              delete c;
            });
            if (status != napi_ok) {
              for (int received : chunk->fds) ::close(received);
              delete chunk;
            }
          },
          [closed](int error) mutable {
            closed.BlockingCall(new int(error), [](Napi::Env env, Napi::Function callback, int* e) {
              callback.Call({Napi::Number::New(env, *e)});
              delete e;
            });
          });
      reader_->Start();
    } catch (const std::exception& e) {
      data_.Release();
      closed_.Release();
      released_ = true;
      throw Napi::Error::New(env, e.what());
    }
  }

  ~SocketReaderWrap() override { Shutdown(); }

 private:
  void Shutdown() {
    if (reader_) reader_->Stop();
    if (!released_) {
      released_ = true;
      data_.Release();
      closed_.Release();
    }
  }
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (reader_) reader_->SetPaused(true);
    return info.Env().Undefined();
  }
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    if (reader_) reader_->SetPaused(false);
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    reader_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<FdPassingReader> reader_;
  Napi::ThreadSafeFunction data_;
  Napi::ThreadSafeFunction closed_;
  bool released_ = false;
};

Napi::Value KvmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string reason;
  int api_version = 0;
  auto caps = kvm::System::ProbeCapabilities(&reason, &api_version);
  Napi::Object out = Napi::Object::New(env);
  out.Set("present", reason.empty());
  if (!reason.empty()) out.Set("reason", reason);
  if (reason.empty()) out.Set("apiVersion", api_version);
  Napi::Object capabilities = Napi::Object::New(env);
  for (const auto& [name, present] : caps) capabilities.Set(name, present);
  out.Set("capabilities", capabilities);
  return out;
}

}  // namespace

}  // namespace virga

static Napi::Object InitVirgaNative(Napi::Env env, Napi::Object exports) {
  exports.Set("Vm", virga::VmWrap::Define(env));
  exports.Set("kvmInfo", Napi::Function::New(env, virga::KvmInfo));
  exports.Set("SocketReader", virga::SocketReaderWrap::Define(env));
  return exports;
}

NODE_API_MODULE(virga_native, InitVirgaNative)
