// The only file that knows about Node. The VM itself runs in the native
// virga-vmm process (src/main/); the control plane, written in TypeScript,
// needs only these: a socket reader that receives file descriptors (QMP
// getfd) and the host's KVM facts (virgad).
#include <napi.h>

#include <unistd.h>

#include <memory>
#include <string>

#include "io/fd_passing_reader.h"
#include "io/fd_passing_writer.h"
#include "kvm/system.h"

namespace virga {

namespace {

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

// sendWithFds(fd, text, fds): the control channel's writer (SendWithFds).
Napi::Value SendWithFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsArray()) {
    throw Napi::TypeError::New(env, "sendWithFds(fd, text, fds): expected a number, a string and an array");
  }
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); ++i) fds.push_back(list.Get(i).As<Napi::Number>().Int32Value());
  try {
    SendWithFds(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::String>().Utf8Value(), fds);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

}  // namespace

}  // namespace virga

static Napi::Object InitVirgaNative(Napi::Env env, Napi::Object exports) {
  exports.Set("kvmInfo", Napi::Function::New(env, virga::KvmInfo));
  exports.Set("SocketReader", virga::SocketReaderWrap::Define(env));
  exports.Set("sendWithFds", Napi::Function::New(env, virga::SendWithFdsJs));
  return exports;
}

NODE_API_MODULE(virga_native, InitVirgaNative)
