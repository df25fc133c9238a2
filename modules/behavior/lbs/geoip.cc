// SPDX-License-Identifier: Apache-2.0
#include "geoip.h"

#include <maxminddb.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace imgate::mod::lbs {

struct GeoIpDatabase::Impl {
  MMDB_s mmdb{};
};

namespace {

constexpr size_t kMaxCodeLength = 8;

std::optional<std::string> isoCode(MMDB_entry_s entry, const char* const* path) {
  MMDB_entry_data_s data{};
  if (MMDB_aget_value(&entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
      data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size == 0 ||
      data.data_size > kMaxCodeLength) {
    return std::nullopt;
  }
  std::string code(data.utf8_string, data.data_size);
  for (char& c : code) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    } else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return std::nullopt;
    }
  }
  return code;
}

}  // namespace

GeoIpDatabase::GeoIpDatabase(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GeoIpDatabase::~GeoIpDatabase() { MMDB_close(&impl_->mmdb); }

Result<std::unique_ptr<GeoIpDatabase>> GeoIpDatabase::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  errno = 0;
  const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &impl->mmdb);
  if (status != MMDB_SUCCESS) {
    std::string reason = MMDB_strerror(status);
    if ((status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR) && errno != 0) {
      reason += std::string(" (") + std::strerror(errno) + ")";
    }
    return fail(Errc::kInvalidConfig, "cannot open GeoIP database \"" + path + "\": " + reason);
  }
  return std::unique_ptr<GeoIpDatabase>(new GeoIpDatabase(std::move(impl)));
}

std::optional<GeoLocation> GeoIpDatabase::lookup(const IpAddress& address) const {
  int mmdb_error = MMDB_SUCCESS;
  MMDB_lookup_result_s result{};
  if (address.isV4()) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    std::memcpy(&sa.sin_addr, address.bytes.data() + 12, 4);
    result =
        MMDB_lookup_sockaddr(&impl_->mmdb, reinterpret_cast<const sockaddr*>(&sa), &mmdb_error);
  } else {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(&sa.sin6_addr, address.bytes.data(), 16);
    result =
        MMDB_lookup_sockaddr(&impl_->mmdb, reinterpret_cast<const sockaddr*>(&sa), &mmdb_error);
  }
  if (mmdb_error != MMDB_SUCCESS || !result.found_entry) {
    return std::nullopt;
  }
  static const char* const kCountry[] = {"country", "iso_code", nullptr};
  static const char* const kRegistered[] = {"registered_country", "iso_code", nullptr};
  static const char* const kSubdivision[] = {"subdivisions", "0", "iso_code", nullptr};
  GeoLocation location;
  auto country = isoCode(result.entry, kCountry);
  if (!country) {
    country = isoCode(result.entry, kRegistered);
  }
  if (!country) {
    return std::nullopt;
  }
  location.country = std::move(*country);
  if (auto sub = isoCode(result.entry, kSubdivision)) {
    location.region = location.country + "-" + *sub;
  }
  return location;
}

std::string GeoIpDatabase::type() const {
  const char* type = impl_->mmdb.metadata.database_type;
  return type != nullptr ? type : "";
}

}  // namespace imgate::mod::lbs
