// SPDX-License-Identifier: Apache-2.0
// A MaxMind DB (.mmdb: GeoLite2/GeoIP2 Country or City, DB-IP, or any database with the same
// "country"/"subdivisions" record shape) opened read-only for the LBS module's geoip rules.
// libmaxminddb stays behind this header so that tests and lbs.h need not see it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "imgate/sdk/status.h"
#include "ip_match.h"

namespace imgate::mod::lbs {

struct GeoLocation {
  std::string country;  // ISO 3166-1 alpha-2, upper case: "CN"
  std::string region;   // ISO 3166-2, "<country>-<subdivision>": "CN-ZJ"; empty when unknown
};

// Immutable after open(); lookup() is thread-safe (libmaxminddb only reads the mapping).
// The file is memory-mapped: replace a database by writing a new file and renaming it over
// the old one, then reload; the old mapping stays valid for requests still using it.
class GeoIpDatabase {
 public:
  // Opens and checks the file (metadata, search tree bounds). Error: kInvalidConfig, with
  // the path and libmaxminddb's reason ("unreadable", "not a MaxMind DB", ...).
  [[nodiscard]] static Result<std::unique_ptr<GeoIpDatabase>> open(const std::string& path);

  ~GeoIpDatabase();
  GeoIpDatabase(const GeoIpDatabase&) = delete;
  GeoIpDatabase& operator=(const GeoIpDatabase&) = delete;

  // The record's country.iso_code (or registered_country.iso_code when the former is absent)
  // and subdivisions[0].iso_code. nullopt when the address has no record, the record has no
  // usable country, or the database cannot hold the address (IPv6 in an IPv4-only file).
  // Codes that are not 1..8 ASCII letters or digits are ignored, so a damaged file cannot put
  // arbitrary bytes into answers.
  std::optional<GeoLocation> lookup(const IpAddress& address) const;

  // database_type from the metadata ("GeoLite2-City"), for the load log line.
  std::string type() const;

 private:
  struct Impl;
  explicit GeoIpDatabase(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgate::mod::lbs
