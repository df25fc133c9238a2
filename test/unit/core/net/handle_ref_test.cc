// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <thread>
#include <utility>
#include <vector>

#include "net/connection.h"

namespace imgate::core {
namespace {

// Every copy sees the same handle, so nulling it (what ~Connection does) reaches them all; the
// handle is freed with the last reference (ASan, which CI runs this under, reports a leak or a
// double free otherwise).
TEST(HandleRefTest, CopiesShareOneHandleFreedWithTheLast) {
  auto* fake = reinterpret_cast<Connection*>(0x1000);
  HandleRef owner = HandleRef::make(fake);
  HandleRef copy = owner;
  HandleRef moved = std::move(copy);
  EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): moved-from is empty
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->connection, fake);
  EXPECT_EQ(moved->refs.load(), 2u);
  owner->connection = nullptr;
  EXPECT_EQ(moved->connection, nullptr);
  owner.reset();
  EXPECT_FALSE(owner);
  EXPECT_EQ(moved->refs.load(), 1u);
  HandleRef assigned;
  assigned = moved;
  EXPECT_EQ(assigned->refs.load(), 2u);
  assigned = HandleRef();
  EXPECT_EQ(moved->refs.load(), 1u);
}

TEST(HandleRefTest, CopiesDieOnAnyThread) {
  HandleRef owner = HandleRef::make(nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([copy = owner] {
      for (int i = 0; i < 10000; ++i) {
        HandleRef again = copy;
        HandleRef moved = std::move(again);
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(owner->refs.load(), 1u);
}

}  // namespace
}  // namespace imgate::core
