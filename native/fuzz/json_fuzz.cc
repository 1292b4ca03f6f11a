// The control channel's JSON parser (common/json.cc): arguments from the
// control plane cross a process boundary. Anything the parser accepts
// must print back (Dump) as JSON that parses to the same text.
#include <cstdlib>
#include <string>

#include "common/json.h"
#include "seeds.h"

namespace {

virga::fuzz::Seeds MakeSeeds() {
  const char* docs[] = {
      R"({"execute":"blockdev-add","arguments":{"node-name":"d1","file":{"driver":"file","filename":"/x.img"}}})",
      R"({"id":7,"args":{"fds":[3,4],"mac":"52:54:00:12:34:56","queues":1.5e3,"up":true,"none":null}})",
      R"(["\u00e9\ud83d\ude00\n\t\"\\",-0.0,1E-300,[[[[]]]],{}])",
      R"("unterminated)",
      R"({"a":1,})",
  };
  virga::fuzz::Seeds seeds;
  int i = 0;
  for (const char* doc : docs) seeds.push_back({std::to_string(i++), std::vector<uint8_t>(doc, doc + strlen(doc))});
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  virga::Json value;
  try {
    value = virga::Json::Parse(text);
  } catch (const virga::JsonError&) {
    return 0;
  }
  std::string dumped = value.Dump();
  std::string again;
  try {
    again = virga::Json::Parse(dumped).Dump();
  } catch (const virga::JsonError& e) {
    std::fprintf(stderr, "Dump() wrote JSON its own parser refuses: %s\n%s\n", e.what(), dumped.c_str());
    std::abort();
  }
  if (again != dumped) {
    std::fprintf(stderr, "Dump/Parse/Dump changed the value:\n%s\n%s\n", dumped.c_str(), again.c_str());
    std::abort();
  }
  return 0;
}
