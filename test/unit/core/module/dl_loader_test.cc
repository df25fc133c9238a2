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
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "module/library_scope.h"
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

// How many private copies of the module file `path` are mapped in this process (the loader
// dlopens a memfd named "imgate-module:<file name>"; each copy maps several segments).
size_t copiesMapped(const std::string& path) {
  const std::string tag = "/memfd:imgate-module:" + path.substr(path.rfind('/') + 1) + " ";
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) {
    return 0;
  }
  std::set<std::string> inodes;
  char line[1024];
  while (std::fgets(line, sizeof(line), maps) != nullptr) {
    const std::string l = line;
    if (l.find(tag) != std::string::npos) {
      // "addr perms offset dev inode path": each copy is its own memfd inode.
      std::istringstream fields(l);
      std::string addr, perms, offset, dev, inode;
      fields >> addr >> perms >> offset >> dev >> inode;
      inodes.insert(inode);
    }
  }
  std::fclose(maps);
  return inodes.size();
}

bool isMapped(const std::string& path) { return copiesMapped(path) > 0; }

std::string errorOf(const std::string& name,
                    const std::function<bool(std::string_view)>& taken = nothingTaken) {
  const auto loaded = loadModule(modulePath(name), taken);
  EXPECT_FALSE(loaded) << name << " loaded but should not have";
  return loaded ? std::string() : loaded.error().message;
}

class DlLoaderFakeSession final : public Session {
 public:
   SessionExpiry expiry() const override { return {}; }
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
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    return std::make_unique<Timer>();
  }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
};

class DlLoaderFakeCallbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override {}
  void reject(Errc, std::string) override {}
  void close(Errc, std::string) override {}
  void reply(Message message) override { replies.push_back(std::move(message)); }
  void setIdentity(Identity, std::vector<std::string>) override {}
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

// Every load is a private copy: loading the same path twice (a reload after the file was
// replaced) maps the code twice, and each copy goes away with its last reference.
TEST(DlLoader, EachLoadIsItsOwnCopy) {
  const std::string path = modulePath("good");
  ASSERT_FALSE(isMapped(path));
  auto first = loadModule(path, nothingTaken);
  auto second = loadModule(path, nothingTaken);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(copiesMapped(path), 2u);
  EXPECT_EQ((*first)->fileId(), (*second)->fileId());
  first->reset();
  EXPECT_EQ(copiesMapped(path), 1u);
  second->reset();
  EXPECT_EQ(copiesMapped(path), 0u);
}

TEST(DlLoader, FileIdChangesWhenTheFileIsReplaced) {
  char dir_template[] = "/tmp/imgate-dl-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string copy = dir + "/m.so";
  auto cp = [&](const std::string& from) {
    return std::system(("cp '" + from + "' '" + copy + ".tmp' && mv '" + copy + ".tmp' '" + copy +
                        "'").c_str());
  };
  ASSERT_EQ(cp(modulePath("good")), 0);
  const auto before = moduleFileId(copy);
  ASSERT_TRUE(before);
  ASSERT_EQ(cp(modulePath("duplicate_name")), 0);
  const auto after = moduleFileId(copy);
  ASSERT_TRUE(after);
  EXPECT_FALSE(*before == *after);
  const auto missing = moduleFileId(dir + "/nope.so");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);
  std::system(("rm -rf '" + dir + "'").c_str());
}

// Payloads a module makes with makeBytes() are built by the core (imgate_host::make_bytes), so
// they stay valid, and can be released, after the module's code is unmapped. Were the control
// block instantiated in the .so, releasing it would call into unmapped code.
TEST(DlLoader, BytesMadeByAModuleOutliveIt) {
  class Callbacks final : public StageCallbacks {
   public:
     void setExpiry(SessionExpiry) override {}
    Session& session() override { std::abort(); }
    Dispatcher& dispatcher() override { std::abort(); }
    void resume() override {}
    void reject(Errc, std::string) override {}
    void close(Errc, std::string) override {}
    void reply(Message message) override { replies.push_back(std::move(message)); }
    void setIdentity(Identity, std::vector<std::string>) override {}
    Upstreams& upstreams() override { return upstreams_; }
    Hub& hub() override { return hub_; }
    std::vector<Message> replies;

   private:
    mocks::FakeUpstreams upstreams_;
    mocks::NullHub hub_;
  } callbacks;
  const std::string path = modulePath("good");
  {
    auto loaded = loadModule(path, nothingTaken);
    ASSERT_TRUE(loaded) << loaded.error().message;
    const auto& factory = static_cast<const StageFactory&>(*(*loaded)->factories()[0]);
    test::http_push::FakeConfigView view(factory.schema());
    test::http_push::FakeLoadContext context;
    auto config = factory.compile(view, context);
    ASSERT_TRUE(config);
    StagePtr stage = (*config)->createStage(callbacks);
    Message in;
    in.payload = makeBytes("hi");
    ASSERT_EQ(stage->onMessage(in).action, Action::kPass);
  }
  EXPECT_FALSE(isMapped(path));
  ASSERT_EQ(callbacks.replies.size(), 1u);
  EXPECT_EQ(callbacks.replies[0].data(), "good:hi");
  callbacks.replies.clear();  // releases the payload: must not touch the unmapped .so
}

// A closure made while a module's code runs (a stage posting work, a timer, an upstream call)
// keeps the module mapped until the core destroys it.
TEST(LibraryScope, PinnedClosureKeepsTheLibraryLoaded) {
  const std::string path = modulePath("good");
  auto loaded = loadModule(path, nothingTaken);
  ASSERT_TRUE(loaded);
  ModuleLibraryPtr library = *loaded;
  EXPECT_EQ(currentLibrary(), nullptr);
  std::function<void()> closure;
  bool ran_in_scope = false;
  {
    LibraryScope scope(library);
    EXPECT_EQ(currentLibrary(), library);
    closure = pinned(std::function<void()>([&] { ran_in_scope = currentLibrary() != nullptr; }));
  }
  EXPECT_EQ(currentLibrary(), nullptr);
  std::function<void()> unpinned = pinned(std::function<void()>([] {}));
  library.reset();
  loaded->reset();
  EXPECT_TRUE(isMapped(path));
  closure();
  EXPECT_TRUE(ran_in_scope);
  EXPECT_EQ(currentLibrary(), nullptr);
  closure = nullptr;
  EXPECT_FALSE(isMapped(path));
  // Outside any scope pinned() is the identity: nothing to keep alive.
  EXPECT_TRUE(static_cast<bool>(unpinned));
}

TEST(LibraryScope, Nests) {
  auto a = loadModule(modulePath("good"), nothingTaken);
  ASSERT_TRUE(a);
  ModuleLibraryPtr none;
  {
    LibraryScope outer(*a);
    {
      LibraryScope inner(none);
      EXPECT_EQ(currentLibrary(), nullptr);
    }
    EXPECT_EQ(currentLibrary(), *a);
  }
  EXPECT_EQ(currentLibrary(), nullptr);
}

}  // namespace
}  // namespace imgate::core::module
