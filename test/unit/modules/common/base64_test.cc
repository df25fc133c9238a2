// SPDX-License-Identifier: Apache-2.0
#include "modules/common/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace imgate::mod::common {
namespace {

TEST(CommonBase64Test, Rfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},         {"f", "Zg=="},        {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64Encode(plain), encoded);
    EXPECT_EQ(base64Decode(encoded), plain) << encoded;
    // Unpadded input decodes too.
    std::string unpadded = encoded;
    while (!unpadded.empty() && unpadded.back() == '=') {
      unpadded.pop_back();
    }
    EXPECT_EQ(base64Decode(unpadded), plain) << unpadded;
    EXPECT_EQ(base64Encode(plain, Base64Alphabet::kUrl, false), unpadded);
  }
}

TEST(CommonBase64Test, EveryByteRoundTripsInBothAlphabets) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= all.size(); len += 7) {
    const std::string part = all.substr(0, len);
    EXPECT_EQ(base64Decode(base64Encode(part)), part);
    EXPECT_EQ(base64Decode(base64Encode(part, Base64Alphabet::kUrl), Base64Alphabet::kUrl), part);
  }
}

TEST(CommonBase64Test, RejectsMalformedInput) {
  for (const char* bad : {"A", "AAEC/w=", "AA?C", "AAEC\n/w==", "=AAA", "Zg=a", "Zh==", "Zm9=",
                          "AA-_"}) {
    EXPECT_FALSE(base64Decode(bad)) << bad;
  }
  EXPECT_FALSE(base64Decode("AA+/", Base64Alphabet::kUrl));
  EXPECT_TRUE(base64Decode("AA-_", Base64Alphabet::kUrl));
}

}  // namespace
}  // namespace imgate::mod::common
