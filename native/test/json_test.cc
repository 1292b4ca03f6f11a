#include "common/json.h"

#include <string>

#include "unit_test.h"
#include "vm/microvm_devices.h"

namespace virga {
namespace {

TEST("json: objects, arrays, escapes and numbers parse and dump back") {
  Json v = Json::Parse(R"( {"a":[1,-2.5,true,null],"s":"x\"\\\u00e9\ud83d\ude00","n":1e3} )");
  EXPECT_TRUE(v.is_object());
  EXPECT_EQ(v.Find("a")->as_array().size(), 4u);
  EXPECT_TRUE(v.Find("s")->as_string() == "x\"\\\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.Find("n")->as_number(), 1000.0);
  EXPECT_TRUE(Json::Parse(v.Dump()).Dump() == v.Dump());
  EXPECT_TRUE(Json(uint64_t{1} << 40).Dump() == "1099511627776");
}

TEST("json: malformed input is refused with the byte offset") {
  for (const char* bad : {"", "{", "{\"a\"}", "[1,]", "01", "1.", "\"\x01\"", "tru", "{\"a\":1}x", "\"\\ud800\"",
                          "{\"a\":1,\"a\":2}", "nul"}) {
    bool threw = false;
    try {
      Json::Parse(bad);
    } catch (const JsonError& e) {
      threw = std::string(e.what()).find("invalid JSON at byte") == 0;
    }
    if (!threw) throw test::Failure(std::string("accepted: ") + bad);
  }
}

TEST("json: nesting is bounded, so a hostile request cannot exhaust the stack") {
  std::string deep(100000, '[');
  EXPECT_THROWS_WITH(Json::Parse(deep), "nested deeper than");
}

TEST("NIC MACs: derived ones are locally administered, stable per identity and slot; parse round-trips") {
  MacAddress a = DerivedMac("vm-1", 0);
  EXPECT_TRUE(a == DerivedMac("vm-1", 0));
  EXPECT_TRUE(a != DerivedMac("vm-2", 0));
  EXPECT_EQ(DerivedMac("vm-1", 1)[5], 1);
  EXPECT_EQ(a[0] & 0x03, 0x02);  // unicast, locally administered
  EXPECT_TRUE(ParseMac(FormatMac(a)) == a);
  EXPECT_TRUE(!ParseMac("52:54:00:12:34").has_value());
  EXPECT_TRUE(!ParseMac("52-54-00-12-34-56").has_value());
}

}  // namespace
}  // namespace virga
