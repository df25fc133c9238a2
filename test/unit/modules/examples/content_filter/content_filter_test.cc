// SPDX-License-Identifier: Apache-2.0
#include "modules/examples/content_filter/content_filter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/stats.h"
#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::content_filter {
namespace {

class Context final : public LoadContext {
 public:
  explicit Context(std::string dir) : dir_(std::move(dir)) {}
  std::string_view instanceName() const override { return "p[0]:filter"; }
  std::string_view configDir() const override { return dir_; }
  Logger& log() override { return logger_; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view) const override { return false; }
  std::string dir_;
  core::PrefixLogger logger_{"filter: "};
  core::InstanceStats stats_{"filter-test"};
};

class Dispatcher final : public imgate::Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override { return nullptr; }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 1; }
};

class Callbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Session& session() override { std::abort(); }
  imgate::Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override {}
  void reject(Errc, std::string) override {}
  void close(Errc, std::string) override {}
  void reply(Message m) override { replies.push_back(std::move(m)); }
  void setIdentity(Identity, std::vector<std::string>) override {}
  Upstreams& upstreams() override { return up_; }
  Hub& hub() override { return hub_; }
  Dispatcher dispatcher_;
  mocks::FakeUpstreams up_;
  mocks::NullHub hub_;
  std::vector<Message> replies;
};

class ContentFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/imgate-filter-XXXXXX";
    dir_ = mkdtemp(tmpl);
    write("words.txt", "# default list\nspam\nbad\\s*word\n\n");
    write("shop.txt", "discount\n");
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  Result<StageConfigPtr> compile(const std::string& yaml) {
    auto doc = core::config::loadString(yaml, "t.yaml");
    EXPECT_TRUE(doc.has_value());
    core::config::Errors errors;
    auto section = core::config::validate(doc->root, filterSchema(), "filter", errors);
    if (!errors.empty()) {
      return fail(Errc::kInvalidConfig, core::config::formatErrors(errors));
    }
    Context ctx(dir_);
    return compileFilter(*section, ctx);
  }
  Message text(std::string app, std::string body) {
    Message m;
    m.app = std::move(app);
    m.id = "7";
    m.payload = makeBytes(std::move(body));
    return m;
  }
  std::string dir_;
};

TEST_F(ContentFilterTest, MasksEveryMatchCaseInsensitivelyPerCodePoint) {
  auto config = compile("words_file: words.txt\nmask_char: \"\xE2\x80\xA2\"\n");
  ASSERT_TRUE(config) << config.error().message;
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = text("default", "no SPAM here, bad   word! spam");
  EXPECT_EQ(stage->onMessage(m).action, Action::kPass);
  EXPECT_EQ(m.data(), "no \xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2 here, "
                      "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2"
                      "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2! "
                      "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2");
  Message clean = text("default", "all good");
  const auto before = clean.payload;
  EXPECT_EQ(stage->onMessage(clean).action, Action::kPass);
  EXPECT_EQ(clean.payload, before);  // untouched messages keep their bytes
  EXPECT_TRUE(cb.replies.empty());
}

TEST_F(ContentFilterTest, RejectRefusesWithAnAckAndDrops) {
  auto config = compile("words_file: words.txt\naction: reject\n");
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = text("default", "buy spam");
  EXPECT_EQ(stage->onMessage(m).action, Action::kDrop);
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(cb.replies[0].kind, MessageKind::kAck);
  EXPECT_EQ(cb.replies[0].id, "7");
  EXPECT_EQ(cb.replies[0].meta[0].second, "permission_denied");
}

TEST_F(ContentFilterTest, PerAppListsReplaceTheDefault) {
  auto config = compile("words_file: words.txt\napps: [{app: shop, words_file: shop.txt}]\n");
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message shop = text("shop", "spam discount");
  (void)stage->onMessage(shop);
  EXPECT_EQ(shop.data(), "spam ********");
  Message other = text("blog", "spam discount");
  (void)stage->onMessage(other);
  EXPECT_EQ(other.data(), "**** discount");
}

TEST_F(ContentFilterTest, BinaryAndControlMessagesPass) {
  auto config = compile("words_file: words.txt\n");
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message bin = text("default", "spam");
  bin.type = PayloadType::kBinary;
  (void)stage->onMessage(bin);
  EXPECT_EQ(bin.data(), "spam");
}

TEST_F(ContentFilterTest, ReloadRereadsTheFile) {
  auto first = compile("words_file: words.txt\n");
  ASSERT_TRUE(first);
  write("words.txt", "fresh\n");
  auto second = compile("words_file: words.txt\n");
  ASSERT_TRUE(second);
  Callbacks cb;
  auto old_stage = (*first)->createStage(cb);
  auto new_stage = (*second)->createStage(cb);
  Message a = text("default", "spam fresh");
  Message b = text("default", "spam fresh");
  (void)old_stage->onMessage(a);
  (void)new_stage->onMessage(b);
  EXPECT_EQ(a.data(), "**** fresh");
  EXPECT_EQ(b.data(), "spam *****");
}

TEST_F(ContentFilterTest, ConfigErrors) {
  EXPECT_FALSE(compile("words_file: missing.txt\n"));
  write("broken.txt", "ok\n(unclosed\n");
  auto broken = compile("words_file: broken.txt\n");
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("broken.txt:2"), std::string::npos) << broken.error().message;
  EXPECT_FALSE(compile("action: mask\n"));
  EXPECT_FALSE(compile("words_file: words.txt\nmask_char: ab\n"));
}

}  // namespace
}  // namespace imgate::mod::content_filter
