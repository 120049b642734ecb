/* The JSON tree (src/core/json.hpp) and the client's JSON Patch (client/lib/patch.hpp). */
#include "core/json.hpp"
#include "patch.hpp"

#include <gtest/gtest.h>

namespace {

std::string patched(const std::string &doc, const std::string &patch) {
  ectosync::Json v = ectosync::parse_json(doc);
  ectosync::apply_patch(v, ectosync::parse_json(patch));
  return ectosync::json_dump(v);
}

TEST(Json, RoundTripKeepsNumbersAndStringsExact) {
  const std::string text =
      R"({"n":123456789012345678901234567890.1234567890,"e":-1.5e+300,"s":"a\"b\\c\n\u00e9\ud83d\ude00","t":true,"f":false,"z":null,"a":[1,[2],{}]})";
  ectosync::Json v = ectosync::parse_json(text);
  EXPECT_EQ(v.find("n")->text, "123456789012345678901234567890.1234567890");
  EXPECT_EQ(v.find("s")->text, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(ectosync::json_dump(ectosync::parse_json(ectosync::json_dump(v))),
            ectosync::json_dump(v));
  EXPECT_EQ(ectosync::json_dump(v),
            "{\"n\":123456789012345678901234567890.1234567890,\"e\":-1.5e+300,\"s\":\"a\\\"b\\\\c\\"
            "n\xc3\xa9\xf0\x9f\x98\x80\",\"t\":true,\"f\":false,\"z\":null,\"a\":[1,[2],{}]}");
}

TEST(Json, RejectsMalformedText) {
  for (const char *bad : {"", "{", "[1,]", "{\"a\" 1}", "01x", "\"\\x\"", "[1] 2", "tru", "\"a"})
    EXPECT_THROW(ectosync::parse_json(bad), ectosync::JsonError) << bad;
}

TEST(JsonPatch, AddRemoveReplaceInOrder) {
  /* what changes() sends for "post 2 deleted, post 3 edited, post 4 added" */
  EXPECT_EQ(patched(R"({"rows":[{"id":1},{"id":2},{"id":3,"title":"x"}]})",
                    R"([{"op":"remove","path":"/rows/1"},
                        {"op":"replace","path":"/rows/1/title","value":"y"},
                        {"op":"add","path":"/rows/2","value":{"id":4}}])"),
            R"({"rows":[{"id":1},{"id":3,"title":"y"},{"id":4}]})");
}

TEST(JsonPatch, PointerEscapesAndAppend) {
  EXPECT_EQ(patched(R"({"a/b":{"c~d":[1]}})", R"([{"op":"add","path":"/a~1b/c~0d/-","value":2},
                                                 {"op":"add","path":"/a~1b/c~0d/0","value":0}])"),
            R"({"a/b":{"c~d":[0,1,2]}})");
}

TEST(JsonPatch, WholeDocumentAndObjectMembers) {
  EXPECT_EQ(patched(R"({"a":1})", R"([{"op":"replace","path":"","value":[true]}])"), "[true]");
  EXPECT_EQ(patched(R"({"a":1})", R"([{"op":"add","path":"/b","value":2},
                                      {"op":"add","path":"/a","value":3},
                                      {"op":"remove","path":"/b"}])"),
            R"({"a":3})");
  EXPECT_EQ(patched(R"({"a":[1,2],"b":null})", R"([{"op":"move","from":"/a/0","path":"/b"},
                                                   {"op":"copy","from":"/b","path":"/a/-"},
                                                   {"op":"test","path":"/a","value":[2,1]}])"),
            R"({"a":[2,1],"b":1})");
}

TEST(JsonPatch, OneCompiledPatchForManyDocuments) {
  /* A hub applies one compiled patch to each holder's copy; a copy whose
   * members are in another order is found all the same. */
  ectosync::Json patch = ectosync::parse_json(
      R"([{"op":"replace","path":"/rows/0/title","value":"t"},{"op":"remove","path":"/rows/0/x"}])");
  ectosync::CompiledPatch compiled(patch);
  for (const char *doc :
       {R"({"rows":[{"id":1,"title":"a","x":0}]})", R"({"rows":[{"x":0,"title":"a","id":1}]})",
        R"({"rows":[{"id":1,"title":"a","x":0}]})"}) {
    ectosync::Json v = ectosync::parse_json(doc);
    compiled.apply(v);
    ectosync::Json want = ectosync::parse_json(doc);
    ectosync::apply_patch(want, patch);
    EXPECT_EQ(ectosync::json_dump(v), ectosync::json_dump(want));
    EXPECT_EQ(v.find("rows")->items[0].find("title")->text, "t");
    EXPECT_EQ(v.find("rows")->items[0].find("x"), nullptr);
  }
}

TEST(JsonPatch, BadOperationsThrow) {
  for (const char *bad :
       {R"([{"op":"remove","path":"/rows/5"}])", R"([{"op":"replace","path":"/nope","value":1}])",
        R"([{"op":"add","path":"/rows/01","value":1}])",
        R"([{"op":"add","path":"/rows/3","value":1}])", R"([{"op":"add","path":"rows","value":1}])",
        R"([{"op":"remove","path":"/rows/0/x/y"}])", R"([{"op":"frobnicate","path":""}])",
        R"([{"path":"/rows"}])", R"([{"op":"test","path":"/rows","value":[]}])",
        R"({"op":"remove"})"}) {
    ectosync::Json v = ectosync::parse_json(R"({"rows":[{"id":1},{"id":2}]})");
    EXPECT_THROW(ectosync::apply_patch(v, ectosync::parse_json(bad)), ectosync::PatchError) << bad;
  }
}

}  // namespace
