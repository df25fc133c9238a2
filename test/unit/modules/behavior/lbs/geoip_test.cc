// SPDX-License-Identifier: Apache-2.0
// GeoIP lookups through libmaxminddb, against databases written by
// test/integration/mmdb_writer.py (embedded in test_mmdb.h; see gen_test_mmdb.py).
#include "modules/behavior/lbs/geoip.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "test/unit/modules/behavior/lbs/test_mmdb.h"

namespace imgate::mod::lbs {
namespace {

// A file in a private temporary folder, removed with the object.
class TempFile {
 public:
  TempFile(const unsigned char* data, size_t size) {
    char dir[] = "/tmp/lbs_geoip_XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/test.mmdb";
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  ~TempFile() {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

IpAddress ip(std::string_view text) { return *parseIp(text); }

class LbsGeoIpTest : public ::testing::TestWithParam<int> {
 protected:
  static std::pair<const unsigned char*, size_t> blob(int record_size) {
    switch (record_size) {
      case 24: return {kTestMmdb24, kTestMmdb24Size};
      case 28: return {kTestMmdb28, kTestMmdb28Size};
      default: return {kTestMmdb32, kTestMmdb32Size};
    }
  }
};

TEST_P(LbsGeoIpTest, LooksUpCountryAndRegion) {
  const auto [data, size] = blob(GetParam());
  TempFile file(data, size);
  auto db = GeoIpDatabase::open(file.path());
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ((*db)->type(), "imgate-Test-Country");

  const auto at = [&](std::string_view address) { return (*db)->lookup(ip(address)); };
  auto zj = at("1.2.3.4");
  ASSERT_TRUE(zj);
  EXPECT_EQ(zj->country, "CN");
  EXPECT_EQ(zj->region, "CN-ZJ");
  auto cn = at("1.2.4.255");
  ASSERT_TRUE(cn);
  EXPECT_EQ(cn->country, "CN");
  EXPECT_EQ(cn->region, "");
  // The longer prefix inside a block wins; the rest of the block keeps the block's record.
  EXPECT_EQ(at("5.6.7.8")->country, "DE");
  EXPECT_EQ(at("5.6.8.1")->region, "US-CA");
  EXPECT_EQ(at("5.6.0.0")->region, "US-CA");
  EXPECT_EQ(at("5.6.255.255")->region, "US-CA");
  // IPv6, and a mapped IPv4 client.
  EXPECT_EQ(at("2001:db8::1")->region, "JP-13");
  EXPECT_EQ(at("2001:db8:1::9")->country, "FR");
  EXPECT_EQ(at("2001:db8:2::9")->region, "JP-13");
  EXPECT_EQ(at("::ffff:1.2.3.9")->region, "CN-ZJ");
  // registered_country is the fallback, and codes are upper-cased.
  EXPECT_EQ(at("9.9.9.9")->country, "CH");
  // Misses: no record, or a record whose code is not a code.
  EXPECT_FALSE(at("1.2.5.1"));
  EXPECT_FALSE(at("8.8.8.8"));
  EXPECT_FALSE(at("2001:db9::1"));
  EXPECT_FALSE(at("7.7.7.7"));
  EXPECT_FALSE(at("::1"));
}

INSTANTIATE_TEST_SUITE_P(RecordSizes, LbsGeoIpTest, ::testing::Values(24, 28, 32));

TEST(LbsGeoIpOpenTest, UnreadableOrInvalidFilesFailWithTheReason) {
  auto missing = GeoIpDatabase::open("/nonexistent/imgate/geo.mmdb");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kInvalidConfig);
  EXPECT_NE(missing.error().message.find("\"/nonexistent/imgate/geo.mmdb\""), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos)
      << missing.error().message;

  const unsigned char garbage[] = "this is not a maxmind database";
  TempFile bad(garbage, sizeof(garbage));
  auto invalid = GeoIpDatabase::open(bad.path());
  ASSERT_FALSE(invalid);
  EXPECT_NE(invalid.error().message.find("cannot open GeoIP database"), std::string::npos);

  // A real database cut short: the metadata marker is gone.
  TempFile cut(kTestMmdb28, kTestMmdb28Size / 2);
  EXPECT_FALSE(GeoIpDatabase::open(cut.path()));
  EXPECT_FALSE(GeoIpDatabase::open(bad.dir())) << "a folder is not a database";
}

}  // namespace
}  // namespace imgate::mod::lbs
