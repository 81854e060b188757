// Tests of the shared file helpers: atomic writes (content, no temporary
// left behind, the old file kept on failure), reads, errno mapping, SHA-256.
#include "common/base/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "common/base/sha256.h"
#include "gtest/gtest.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("files_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(FilesTest, WriteFileAtomicallyReplacesTheContentAndLeavesNoTemporary) {
  const std::string path = (dir_ / "a.txt").string();
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second, longer").ok());
  absl::StatusOr<std::string> text = ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "second, longer");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, FailedWriteKeepsTheOldFileAndRemovesTheTemporary) {
  const std::string path = (dir_ / "b.txt").string();
  ASSERT_TRUE(WriteFileAtomically(path, "kept").ok());
  absl::Status s = WriteFileAtomically(
      path, [](int, const std::string&) {
        return absl::DataLossError("the writer failed");
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*ReadFile(path), "kept");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, WriteIntoAMissingFolderIsNotFoundNamingTheHost) {
  absl::Status s =
      WriteFileAtomically((dir_ / "no" / "such" / "c.txt").string(), "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find(HostName()), std::string::npos) << s;
}

TEST_F(FilesTest, ReadFileOfAMissingFileIsNotFound) {
  absl::StatusOr<std::string> text = ReadFile((dir_ / "missing").string());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(text.status().message().find("missing"), std::string::npos);
}

TEST(ErrnoStatusTest, MapsCommonErrorsToTheirCodes) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "f", "open").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EACCES, "f", "open").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "f", "write").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EIO, "f", "read").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(EINVAL, "f", "read").code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ErrnoStatus(ENOENT, "f", "open").message(),
            "f: cannot open: No such file or directory");
}

TEST(Sha256Test, KnownDigestsAndStreamingAgree) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 streamed;
  streamed.Update("a");
  streamed.Update("bc");
  EXPECT_EQ(streamed.HexDigest(), Sha256Hex("abc"));
}

}  // namespace
}  // namespace twist::common
