#include "vm/snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "common/error.h"
#include "state/memory_file.h"

namespace virga {

namespace {

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Base(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void SyncFd(int fd, const std::string& what) {
  if (::fsync(fd) != 0) throw ErrnoError("syncing " + what);
}

void SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.valid()) ::fsync(fd.get());
}

UniqueFd CreateFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) throw ErrnoError("creating " + path);
  return fd;
}

// Removes the temporary directory and what is in it (two files at most).
void RemoveTemporary(const std::string& dir) {
  for (const char* name : {"state", "memory"}) ::unlink((dir + "/" + name).c_str());
  ::rmdir(dir.c_str());
}

std::vector<uint8_t> ReadWhole(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw ErrnoError("cannot open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw ErrnoError("stat " + path);
  // A state file is small (kilobytes per vCPU and device); a huge one is not ours.
  if (st.st_size > (64 << 20)) throw VmmError(path + " is too large to be a state file");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ErrnoError("reading " + path);
    done += static_cast<size_t>(n);
  }
  return bytes;
}

}  // namespace

SnapshotSizes WriteSnapshot(Machine& machine, const std::string& dir, const std::string& vmm_version) {
  // A restore maps RAM privately from the snapshot's memory file: it could
  // not give the clone shared memory or memory on that file system back.
  // The control plane refuses this before it pauses the VM; this is for
  // any other caller.
  std::string refusal = machine.memory().backing().snapshot_refusal();
  if (!refusal.empty()) throw VmmError("snapshot: " + refusal + "; only anonymous guest RAM can be saved");
  if (dir.empty() || Base(dir).empty()) throw VmmError("'" + dir + "' is not a directory name");
  std::string parent = Parent(dir);
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw VmmError("the parent directory " + parent + " does not exist");
  }
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw VmmError(dir + " exists and is not a directory");
    DIR* d = ::opendir(dir.c_str());
    bool empty = true;
    for (dirent* e = d ? ::readdir(d) : nullptr; e != nullptr; e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
    }
    if (d) ::closedir(d);
    if (!empty) throw VmmError(dir + " already exists and is not empty");
  }
  // State first: a VM that is not paused is refused before anything is created.
  std::vector<uint8_t> state = machine.SaveState(vmm_version);
  std::random_device random;
  std::string temporary = parent + "/." + Base(dir) + ".tmp-" + std::to_string(::getpid()) + "-" +
                          std::to_string(random() % 1000000);
  if (::mkdir(temporary.c_str(), 0700) != 0) throw ErrnoError("creating " + temporary);
  try {
    SnapshotSizes sizes{state.size(), 0};
    {
      UniqueFd fd = CreateFile(temporary + "/state");
      for (size_t done = 0; done < state.size();) {
        ssize_t n = ::write(fd.get(), state.data() + done, state.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw ErrnoError("writing the state file");
        done += static_cast<size_t>(n);
      }
      SyncFd(fd.get(), "the state file");
    }
    {
      UniqueFd fd = CreateFile(temporary + "/memory");
      sizes.memory_bytes = state::WriteMemoryFile(fd.get(), machine.memory());
      SyncFd(fd.get(), "the memory file");
    }
    SyncDir(temporary);
    // An empty directory at `dir` is replaced; a non-empty one fails here too.
    if (::rename(temporary.c_str(), dir.c_str()) != 0) throw ErrnoError("moving the snapshot into " + dir);
    SyncDir(parent);
    return sizes;
  } catch (...) {
    RemoveTemporary(temporary);
    throw;
  }
}

OpenedSnapshot::OpenedSnapshot(const std::string& dir)
    : dir_(dir), state_(state::StateFile::Parse(ReadWhole(dir + "/state"), dir + "/state")) {
  std::string memory = dir + "/memory";
  memory_.Reset(::open(memory.c_str(), O_RDONLY | O_CLOEXEC));
  if (!memory_.valid()) throw ErrnoError("cannot open " + memory);
  layout_ = state::ReadMemoryFileLayout(memory_.get(), memory);
}

}  // namespace virga
