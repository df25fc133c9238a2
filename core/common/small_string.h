// SPDX-License-Identifier: Apache-2.0
// SmallString: an immutable string of 24 bytes that holds up to kInline bytes in place and
// allocates only beyond that. A peer address "203.0.113.195:54321" (up to 21 bytes for IPv4)
// needs no allocation, where std::string (32 bytes, 15 in place) allocates for most of them;
// every session keeps one in its Connection and one in the registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace imgate::core {

class SmallString {
 public:
  static constexpr size_t kInline = 23;

  SmallString() { set(std::string_view()); }
  explicit SmallString(std::string_view s) { set(s); }
  SmallString(const SmallString& o) { set(o.view()); }
  SmallString(SmallString&& o) noexcept {
    std::memcpy(bytes_, o.bytes_, sizeof(bytes_));
    o.setInline(std::string_view());
  }
  SmallString& operator=(const SmallString& o) {
    if (this != &o) {
      SmallString copy(o);
      swap(copy);
    }
    return *this;
  }
  SmallString& operator=(SmallString&& o) noexcept {
    SmallString moved(std::move(o));
    swap(moved);
    return *this;
  }
  ~SmallString() {
    if (onHeap()) {
      delete[] heap().data;
    }
  }

  std::string_view view() const {
    if (onHeap()) {
      const Heap h = heap();
      return {h.data, h.size};
    }
    return {bytes_, static_cast<size_t>(kInline - bytes_[kInline])};
  }
  operator std::string_view() const { return view(); }  // NOLINT: used where a view is wanted
  std::string str() const { return std::string(view()); }
  size_t size() const { return view().size(); }
  bool empty() const { return size() == 0; }
  bool inlined() const { return !onHeap(); }

  void swap(SmallString& o) noexcept {
    char tmp[sizeof(bytes_)];
    std::memcpy(tmp, bytes_, sizeof(bytes_));
    std::memcpy(bytes_, o.bytes_, sizeof(bytes_));
    std::memcpy(o.bytes_, tmp, sizeof(bytes_));
  }

 private:
  // Layout: in place, bytes_[0..size) hold the string and the last byte holds kInline - size
  // (0 for a full 23 bytes, as in the last byte of a NUL-terminated buffer); on the heap, the
  // last byte is kHeapTag and the first 16 bytes hold {pointer, size}.
  static constexpr char kHeapTag = static_cast<char>(0xff);
  struct Heap {
    char* data;
    size_t size;
  };
  bool onHeap() const { return bytes_[kInline] == kHeapTag; }
  Heap heap() const {
    Heap h;
    std::memcpy(&h, bytes_, sizeof(h));
    return h;
  }
  void setInline(std::string_view s) {
    if (!s.empty()) {
      std::memcpy(bytes_, s.data(), s.size());
    }
    bytes_[kInline] = static_cast<char>(kInline - s.size());
  }
  void set(std::string_view s) {
    if (s.size() <= kInline) {
      setInline(s);
      return;
    }
    Heap h{new char[s.size()], s.size()};
    std::memcpy(h.data, s.data(), s.size());
    std::memcpy(bytes_, &h, sizeof(h));
    bytes_[kInline] = kHeapTag;
  }

  alignas(8) char bytes_[kInline + 1];
};

static_assert(sizeof(SmallString) == 24);

}  // namespace imgate::core
