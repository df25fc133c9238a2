// SPDX-License-Identifier: Apache-2.0
#include "module/dl_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "module/registry.h"
#include "test/mocks/sdk_fakes.h"
#include "test/unit/modules/proto/http_push/fake_config_view.h"

#ifndef IMGATE_TEST_MODULES_DIR
#error "IMGATE_TEST_MODULES_DIR must name the build directory of test/modules"
#endif

namespace imgate::core::module {
namespace {

std::string modulePath(std::string_view name) {
  return std::string(IMGATE_TEST_MODULES_DIR) + "/" + std::string(name) + ".so";
}

bool nothingTaken(std::string_view) { return false; }

// True when the dynamic linker has `path` mapped in this process.
bool isMapped(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) {
    return false;
  }
  ::dlclose(handle);  // NOLOAD still took a reference
  return true;
}

std::string errorOf(const std::string& name,
                    const std::function<bool(std::string_view)>& taken = nothingTaken) {
  const auto loaded = loadModule(modulePath(name), taken);
  EXPECT_FALSE(loaded) << name << " loaded but should not have";
  return loaded ? std::string() : loaded.error().message;
}

class DlLoaderFakeSession final : public Session {
 public:
  uint64_t id() const override { return 7; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "test"; }
  std::string_view peerAddress() const override { return "127.0.0.1:1"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<std::string> handshakeQuery(std::string_view) const override {
    return std::nullopt;
  }
  const std::vector<std::string>& offeredSubprotocols() const override { return protocols_; }

 private:
  Identity identity_;
  std::vector<std::string> protocols_;
};

class DlLoaderFakeDispatcher final : public Dispatcher {
 public:
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    return std::make_unique<Timer>();
  }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
};

class DlLoaderFakeCallbacks final : public StageCallbacks {
 public:
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override {}
  void reject(Errc, std::string) override {}
  void reply(Message message) override { replies.push_back(std::move(message)); }
  void setIdentity(Identity) override {}
  Upstreams& upstreams() override { return upstreams_; }
  Hub& hub() override { return hub_; }

  std::vector<Message> replies;

 private:
  DlLoaderFakeSession session_;
  DlLoaderFakeDispatcher dispatcher_;
  ::imgate::mocks::FakeUpstreams upstreams_;
  ::imgate::mocks::NullHub hub_;
};

TEST(DlLoader, GoodModuleLoadsAndItsStageRuns) {
  const auto loaded = loadModule(modulePath("good"), nothingTaken);
  ASSERT_TRUE(loaded) << loaded.error().message;
  const ModuleLibraryPtr& library = *loaded;
  EXPECT_EQ(library->path(), modulePath("good"));
  EXPECT_EQ(library->name(), "good");
  EXPECT_EQ(library->version(), "1.2.3");
  ASSERT_EQ(library->factories().size(), 1u);
  const ModuleFactory* factory = library->factories()[0];
  EXPECT_EQ(factory->name(), "test.good");
  ASSERT_EQ(factory->kind(), ModuleKind::kStage);
  const auto& stage_factory = static_cast<const StageFactory&>(*factory);
  EXPECT_FALSE(stage_factory.terminal());

  test::http_push::FakeConfigView view(stage_factory.schema());
  test::http_push::FakeLoadContext context;
  {
    // The holder order the core uses: library first, so it is destroyed last.
    struct {
      ModuleLibraryPtr library;
      StageConfigPtr config;
    } compiled{library, nullptr};
    auto config = stage_factory.compile(view, context);
    ASSERT_TRUE(config) << config.error().message;
    compiled.config = *config;
    ASSERT_NE(compiled.config, nullptr);

    DlLoaderFakeCallbacks callbacks;
    StagePtr stage = compiled.config->createStage(callbacks);
    ASSERT_NE(stage, nullptr);
    Message in;
    in.payload = makeBytes("hello");
    EXPECT_EQ(stage->onMessage(in).action, Action::kPass);
    ASSERT_EQ(callbacks.replies.size(), 1u);
    EXPECT_EQ(callbacks.replies[0].data(), "good:hello");
  }
}

TEST(DlLoader, LibraryStaysMappedWhileAnyReferenceLives) {
  const std::string path = modulePath("good");
  ASSERT_FALSE(isMapped(path)) << "another test leaked a reference to good.so";
  ModuleLibraryPtr first;
  {
    const auto loaded = loadModule(path, nothingTaken);
    ASSERT_TRUE(loaded) << loaded.error().message;
    first = *loaded;
  }
  ModuleLibraryPtr second = first;  // e.g. the old and the new generation during a reload
  EXPECT_TRUE(isMapped(path));
  first.reset();
  EXPECT_TRUE(isMapped(path));
  second.reset();
  EXPECT_FALSE(isMapped(path));
}

TEST(DlLoader, FailedLoadsDoNotStayMapped) {
  for (const char* name : {"wrong_abi_major", "wrong_signature", "no_entry", "duplicate_name"}) {
    const std::string path = modulePath(name);
    EXPECT_FALSE(loadModule(path, [](std::string_view n) { return n == "echo"; })) << name;
    EXPECT_FALSE(isMapped(path)) << name;
  }
}

TEST(DlLoader, MissingFileGivesDlerrorText) {
  const std::string path = modulePath("does_not_exist");
  const auto loaded = loadModule(path, nothingTaken);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, Errc::kInvalidConfig);
  EXPECT_EQ(loaded.error().message.rfind("cannot load module \"" + path + "\": ", 0), 0u)
      << loaded.error().message;
  EXPECT_NE(loaded.error().message.find("No such file"), std::string::npos)
      << loaded.error().message;
}

TEST(DlLoader, NotASharedObjectGivesDlerrorText) {
  // Garbage is not an ELF object: dlopen must fail cleanly, not crash.
  char path[] = "/tmp/imgate_dl_loader_test_XXXXXX.so";
  const int fd = ::mkstemps(path, 3);
  ASSERT_GE(fd, 0);
  const char garbage[] = "this is not an ELF file\n";
  ASSERT_EQ(::write(fd, garbage, sizeof(garbage) - 1), static_cast<ssize_t>(sizeof(garbage) - 1));
  ::close(fd);
  const auto loaded = loadModule(path, nothingTaken);
  ::unlink(path);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, Errc::kInvalidConfig);
  EXPECT_EQ(loaded.error().message.rfind("cannot load module \"" + std::string(path) + "\": ", 0),
            0u)
      << loaded.error().message;
}

TEST(DlLoader, NoEntrySymbol) {
  const std::string message = errorOf("no_entry");
  EXPECT_EQ(message, "module \"" + modulePath("no_entry") +
                         "\" does not export imgate_module_entry_v1");
}

TEST(DlLoader, WrongAbiMajor) {
  const std::string message = errorOf("wrong_abi_major");
  EXPECT_EQ(message, "module \"" + modulePath("wrong_abi_major") +
                         "\" is not binary compatible (module ABI " +
                         std::to_string(IMGATE_ABI_MAJOR + 1) + ".0, core ABI " +
                         std::to_string(IMGATE_ABI_MAJOR) + "." +
                         std::to_string(IMGATE_ABI_MINOR) + ")");
}

TEST(DlLoader, WrongBuildSignature) {
  const std::string message = errorOf("wrong_signature");
  EXPECT_EQ(message, "module \"" + modulePath("wrong_signature") +
                         "\" is not binary compatible (module: abi=1;cxx=0;cc=other 0.0, core: " +
                         IMGATE_BUILD_SIGNATURE + ")");
}

TEST(DlLoader, DuplicateOfBuiltinName) {
  if (ModuleRegistry::instance().find("echo") == nullptr) {
    GTEST_SKIP() << "built-in echo module not in this build";
  }
  const std::string message = errorOf("duplicate_name", [](std::string_view name) {
    return ModuleRegistry::instance().find(name) != nullptr;
  });
  EXPECT_EQ(message,
            "module \"" + modulePath("duplicate_name") + "\": duplicate module name \"echo\"");
}

TEST(DlLoader, DuplicateOfAlreadyLoadedName) {
  std::set<std::string, std::less<>> names;
  const auto taken = [&names](std::string_view name) { return names.count(name) > 0; };
  const auto first = loadModule(modulePath("good"), taken);
  ASSERT_TRUE(first) << first.error().message;
  for (const ModuleFactory* factory : (*first)->factories()) {
    names.emplace(factory->name());
  }
  const std::string message = errorOf("good", taken);
  EXPECT_EQ(message, "module \"" + modulePath("good") + "\": duplicate module name \"test.good\"");
  EXPECT_TRUE(isMapped(modulePath("good")));  // the failed second load left the first intact
}

TEST(DlLoader, ThrowInCompileIsLeftToTheCaller) {
  const auto loaded = loadModule(modulePath("throws_in_compile"), nothingTaken);
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_EQ((*loaded)->factories().size(), 1u);
  const ModuleFactory* factory = (*loaded)->factories()[0];
  EXPECT_EQ(factory->name(), "test.throws_in_compile");
  ASSERT_EQ(factory->kind(), ModuleKind::kStage);
  const auto& stage_factory = static_cast<const StageFactory&>(*factory);
  test::http_push::FakeConfigView view(stage_factory.schema());
  test::http_push::FakeLoadContext context;
  EXPECT_THROW((void)stage_factory.compile(view, context), std::runtime_error);
}

TEST(DlLoader, GoodModuleExportsOnlyTheEntry) {
  const std::string command = "nm -D --defined-only '" + modulePath("good") + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    GTEST_SKIP() << "cannot run nm";
  }
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
    output += buffer;
  }
  const int status = ::pclose(pipe);
  if (status != 0 && output.empty()) {
    GTEST_SKIP() << "nm not available";
  }
  std::vector<std::string> symbols;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) {
      end = output.size();
    }
    const std::string line = output.substr(start, end - start);
    const size_t space = line.rfind(' ');
    if (!line.empty()) {
      symbols.push_back(space == std::string::npos ? line : line.substr(space + 1));
    }
    start = end + 1;
  }
  EXPECT_EQ(symbols, std::vector<std::string>{"imgate_module_entry_v1"}) << output;
}

}  // namespace
}  // namespace imgate::core::module
