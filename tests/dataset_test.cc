// Tests of the dataset library: token files, meta.json, the content hash,
// batch sampling (common/data/dataset.h) and `twistctl prepare`'s corpus handling
// (common/data/prepare.h).
#include "common/data/batches.h"
#include "common/data/dataset.h"

#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "common/base/rng.h"
#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"
#include "gtest/gtest.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (fs::path(::testing::TempDir()) / "twist_dataset_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }

  std::string Path(const std::string& name) const {
    return (fs::path(dir_) / name).string();
  }

  static void WriteFile(const std::string& path, const std::string& bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    ASSERT_TRUE(out.good()) << path;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  }

  // The bytes a token file holds for `text` under the byte tokenizer.
  static std::string TokenBytes(const std::string& text) {
    std::string bytes;
    for (char c : text) {
      bytes.push_back(c);
      bytes.push_back('\0');
    }
    return bytes;
  }

  // A dataset folder written by hand, bypassing PrepareDataset.
  void WriteDataset(const std::string& dir, const std::vector<uint16_t>& train,
                    const std::vector<uint16_t>& val, DatasetMeta meta) {
    fs::create_directories(dir);
    ASSERT_TRUE(WriteTokenFile(dir + "/train.bin", train).ok());
    ASSERT_TRUE(WriteTokenFile(dir + "/val.bin", val).ok());
    ASSERT_TRUE(WriteDatasetMeta(dir, meta).ok());
  }

  std::string dir_;
};

std::string ThisHost() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

std::vector<uint16_t> Iota(int n) {
  std::vector<uint16_t> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = static_cast<uint16_t>(i);
  return tokens;
}

DatasetMeta Meta(int64_t train, int64_t val) {
  DatasetMeta meta;
  meta.vocab_size = 65536;
  meta.train_tokens = train;
  meta.val_tokens = val;
  meta.content_hash = "abc123";
  meta.tokenizer = "ids";
  meta.source = "hand-written";
  return meta;
}

// ---------------------------------------------------------------------------
// Token files.

using DatasetTest = TempDirTest;

TEST_F(DatasetTest, TokenFileDecodesLittleEndianIds) {
  WriteFile(Path("t.bin"), std::string("\x01\x02\xff\x00\x00\xff", 6));
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->size(), 3);
  EXPECT_EQ((*file)->at(0), 0x0201);
  EXPECT_EQ((*file)->at(1), 255);
  EXPECT_EQ((*file)->at(2), 0xff00);
  EXPECT_EQ((*file)->path(), Path("t.bin"));
  ASSERT_NE((*file)->data(), nullptr);
}

TEST_F(DatasetTest, WriteTokenFileRoundTripsEveryId) {
  const std::vector<uint16_t> tokens = {0, 1, 255, 256, 0x1234, 65535};
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), tokens).ok());
  EXPECT_EQ(
      ReadFile(Path("t.bin")),
      std::string("\x00\x00\x01\x00\xff\x00\x00\x01\x34\x12\xff\xff", 12));
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->size(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*file)->at(i), tokens[i]) << i;
  // No temporary file is left behind.
  EXPECT_EQ(
      std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(DatasetTest, EmptyTokenFileHasNoTokens) {
  WriteFile(Path("empty.bin"), "");
  auto file = TokenFile::Open(Path("empty.bin"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->size(), 0);
  EXPECT_EQ((*file)->data(), nullptr);
}

TEST_F(DatasetTest, OddLengthTokenFileIsDataLoss) {
  WriteFile(Path("odd.bin"), "abc");
  auto file = TokenFile::Open(Path("odd.bin"));
  ASSERT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(file.status().message().find(Path("odd.bin")), std::string::npos);
  EXPECT_NE(file.status().message().find("odd length of 3 bytes"),
            std::string::npos)
      << file.status();
}

TEST_F(DatasetTest, MissingTokenFileIsNotFoundAndSaysToPrepare) {
  auto file = TokenFile::Open(Path("none.bin"));
  ASSERT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  const std::string message(file.status().message());
  EXPECT_NE(message.find(Path("none.bin")), std::string::npos) << message;
  EXPECT_NE(message.find("twistctl prepare"), std::string::npos) << message;
  EXPECT_NE(message.find("on host " + ThisHost()), std::string::npos)
      << message;
}

// ---------------------------------------------------------------------------
// meta.json.

TEST_F(DatasetTest, MetaRoundTrips) {
  const DatasetMeta meta = Meta(12345678901, 42);
  ASSERT_TRUE(WriteDatasetMeta(dir_, meta).ok());
  auto read = ReadDatasetMeta(dir_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->vocab_size, 65536);
  EXPECT_EQ(read->train_tokens, 12345678901);
  EXPECT_EQ(read->val_tokens, 42);
  EXPECT_EQ(read->content_hash, "abc123");
  EXPECT_EQ(read->tokenizer, "ids");
  EXPECT_EQ(read->source, "hand-written");
}

TEST_F(DatasetTest, MetaOptionalFieldsDefaultAndUnknownFieldsAreIgnored) {
  WriteFile(Path("meta.json"),
            R"({"vocab_size": 50257, "train_tokens": 10, "val_tokens": 2,
                "content_hash": "ff", "comment": "from nanoGPT"})");
  auto read = ReadDatasetMeta(dir_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->vocab_size, 50257);
  EXPECT_EQ(read->tokenizer, "");
  EXPECT_EQ(read->source, "");
}

TEST_F(DatasetTest, MissingMetaIsNotFound) {
  auto read = ReadDatasetMeta(dir_);
  ASSERT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("meta.json missing"),
            std::string::npos)
      << read.status();
}

TEST_F(DatasetTest, DamagedMetaIsDataLoss) {
  WriteFile(Path("meta.json"), "{\"vocab_size\": 256, ");
  EXPECT_EQ(ReadDatasetMeta(dir_).status().code(), absl::StatusCode::kDataLoss);

  WriteFile(Path("meta.json"),
            R"({"vocab_size": 256, "train_tokens": 10, "content_hash": "ff"})");
  auto missing = ReadDatasetMeta(dir_);
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("\"val_tokens\""),
            std::string::npos)
      << missing.status();

  WriteFile(Path("meta.json"),
            R"({"vocab_size": 70000, "train_tokens": 10, "val_tokens": 2,
                "content_hash": "ff"})");
  auto vocab = ReadDatasetMeta(dir_);
  ASSERT_EQ(vocab.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(vocab.status().message().find("\"vocab_size\""), std::string::npos)
      << vocab.status();

  WriteFile(Path("meta.json"),
            R"({"vocab_size": 256, "train_tokens": "10", "val_tokens": 2,
                "content_hash": "ff"})");
  EXPECT_EQ(ReadDatasetMeta(dir_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(DatasetTest, WriteMetaRejectsImpossibleVocabulary) {
  DatasetMeta meta = Meta(1, 1);
  meta.vocab_size = 65537;
  EXPECT_EQ(WriteDatasetMeta(dir_, meta).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(Path("meta.json")));
}

// ---------------------------------------------------------------------------
// Dataset::Open.

TEST_F(DatasetTest, OpenReadsMetaAndBothFiles) {
  WriteDataset(dir_, Iota(100), {7, 8, 9}, Meta(100, 3));
  auto dataset = Dataset::Open(dir_);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->dir(), dir_);
  EXPECT_EQ(dataset->meta().content_hash, "abc123");
  EXPECT_EQ(dataset->train().size(), 100);
  EXPECT_EQ(dataset->train().at(99), 99);
  EXPECT_EQ(dataset->val().size(), 3);
  EXPECT_EQ(dataset->val().at(2), 9);
  // Still valid after a move.
  Dataset moved = std::move(*dataset);
  EXPECT_EQ(moved.val().at(0), 7);
}

TEST_F(DatasetTest, OpenRejectsCountsThatDisagreeWithMeta) {
  WriteDataset(dir_, Iota(100), Iota(10), Meta(101, 10));
  auto train = Dataset::Open(dir_);
  ASSERT_EQ(train.status().code(), absl::StatusCode::kDataLoss);
  const std::string message(train.status().message());
  EXPECT_NE(message.find("train_tokens = 101"), std::string::npos) << message;
  EXPECT_NE(message.find("holds 100 tokens"), std::string::npos) << message;
  EXPECT_NE(message.find("dataset " + dir_ + " on host " + ThisHost()),
            std::string::npos)
      << message;

  ASSERT_TRUE(WriteDatasetMeta(dir_, Meta(100, 9)).ok());
  auto val = Dataset::Open(dir_);
  ASSERT_EQ(val.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(val.status().message().find("val_tokens = 9"), std::string::npos)
      << val.status();
}

TEST_F(DatasetTest, OpenNamesHostAndPathOfAMissingFile) {
  WriteDataset(dir_, Iota(100), Iota(10), Meta(100, 10));
  fs::remove(Path("train.bin"));
  auto dataset = Dataset::Open(dir_);
  ASSERT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  const std::string message(dataset.status().message());
  EXPECT_EQ(message.rfind("dataset " + dir_ + " on host " + ThisHost() +
                              ": train.bin missing",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find("twistctl prepare"), std::string::npos) << message;
}

TEST_F(DatasetTest, OpenOfMissingFolderIsNotFound) {
  auto dataset = Dataset::Open(Path("nowhere"));
  ASSERT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(dataset.status().message().find(Path("nowhere")),
            std::string::npos);
}

TEST_F(DatasetTest, OpenReportsOddLengthFileAsDataLoss) {
  WriteDataset(dir_, Iota(100), Iota(10), Meta(100, 10));
  WriteFile(Path("val.bin"), std::string(21, 'x'));
  auto dataset = Dataset::Open(dir_);
  ASSERT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(dataset.status().message().find("val.bin"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Content hash.

TEST_F(DatasetTest, ContentHashIsSha256OfNamedLengthsAndBytes) {
  WriteFile(Path("train.bin"), TokenBytes("ab"));
  WriteFile(Path("val.bin"), TokenBytes("c"));
  auto hash = ComputeContentHash(dir_);
  ASSERT_TRUE(hash.ok()) << hash.status();
  // SHA-256 of "train.bin 4\n" 61 00 62 00 "val.bin 2\n" 63 00, from
  // Python's hashlib.
  EXPECT_EQ(*hash,
            "5483f4c789d6a732a584e78da0110fcfe09cbe5e7d5b459e541427357acac9bf");
}

TEST_F(DatasetTest, ContentHashChangesWithTheSplit) {
  // The same six bytes split differently between train and val.
  WriteFile(Path("train.bin"), TokenBytes("a"));
  WriteFile(Path("val.bin"), TokenBytes("bc"));
  auto hash = ComputeContentHash(dir_);
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(*hash,
            "000d2036e7886ffe20d856974a7131e30d596d33b2ae6dc83be0ab6336c13b39");
}

TEST_F(DatasetTest, ContentHashOfEmptyFiles) {
  WriteFile(Path("train.bin"), "");
  WriteFile(Path("val.bin"), "");
  auto hash = ComputeContentHash(dir_);
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(*hash,
            "27c59496e35490e6811cd75f56f8e534530b58dba3935ce1957544ae5f4189bb");
}

TEST_F(DatasetTest, ContentHashOfMissingFileIsNotFound) {
  WriteFile(Path("train.bin"), TokenBytes("ab"));
  auto hash = ComputeContentHash(dir_);
  ASSERT_EQ(hash.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(hash.status().message().find(Path("val.bin")), std::string::npos)
      << hash.status();
}

// ---------------------------------------------------------------------------
// Training batches.

TEST_F(DatasetTest, BatchSeedDependsOnEveryWordAndDiffersFromPartitions) {
  const uint64_t base = BatchSeed(1, 2, 3, 4);
  std::set<uint64_t> seeds = {base,
                              BatchSeed(9, 2, 3, 4),
                              BatchSeed(1, 9, 3, 4),
                              BatchSeed(1, 2, 9, 4),
                              BatchSeed(1, 2, 3, 9),
                              BatchSeed(1, 2, 4, 3)};
  EXPECT_EQ(seeds.size(), 6u);
  EXPECT_EQ(BatchSeed(1, 2, 3, 4), base);
  // A partition key of the same numbers gives another seed.
  EXPECT_NE(base, DeriveSeed({1, 2, 3, 4}));
  EXPECT_NE(base, DeriveSeed({1, 2, 3}));
}

TEST_F(DatasetTest, SampleBatchFollowsTheDocumentedDraws) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(1000)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  const int batch = 4, context = 16;
  std::vector<int64_t> inputs = {123}, targets;
  ASSERT_TRUE(SampleBatch(**file, batch, context, 77, &inputs, &targets).ok());
  ASSERT_EQ(inputs.size(), static_cast<size_t>(batch * context));
  ASSERT_EQ(targets.size(), static_cast<size_t>(batch * context));
  // Token i holds id i, so each row is a run of consecutive ids starting at
  // the draw the header documents.
  SplitMix64 rng(77);
  for (int b = 0; b < batch; ++b) {
    const int64_t start =
        static_cast<int64_t>(rng.UniformBelow(1000 - context));
    for (int t = 0; t < context; ++t) {
      EXPECT_EQ(inputs[b * context + t], start + t) << b << "," << t;
      EXPECT_EQ(targets[b * context + t], start + t + 1) << b << "," << t;
    }
  }
}

TEST_F(DatasetTest, SampleBatchIsDeterministicPerSeed) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(5000)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  std::vector<int64_t> in1, tg1, in2, tg2, in3, tg3;
  ASSERT_TRUE(
      SampleBatch(**file, 8, 32, BatchSeed(5, 1, 0, 0), &in1, &tg1).ok());
  ASSERT_TRUE(
      SampleBatch(**file, 8, 32, BatchSeed(5, 1, 0, 0), &in2, &tg2).ok());
  ASSERT_TRUE(
      SampleBatch(**file, 8, 32, BatchSeed(5, 1, 0, 1), &in3, &tg3).ok());
  EXPECT_EQ(in1, in2);
  EXPECT_EQ(tg1, tg2);
  EXPECT_NE(in1, in3);
  // Targets are the inputs shifted by one token, within every row.
  for (int b = 0; b < 8; ++b) {
    for (int t = 0; t + 1 < 32; ++t) {
      EXPECT_EQ(tg1[b * 32 + t], in1[b * 32 + t + 1]);
    }
  }
}

TEST_F(DatasetTest, SampleBatchReachesBothEndsAndNeverBeyond) {
  // 3 possible starts: 0, 1, 2. The last target is token 10.
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(11)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  std::vector<int64_t> inputs, targets;
  ASSERT_TRUE(SampleBatch(**file, 300, 8, 3, &inputs, &targets).ok());
  std::set<int64_t> starts;
  for (int b = 0; b < 300; ++b) {
    starts.insert(inputs[b * 8]);
    for (int t = 0; t < 8; ++t) {
      EXPECT_GE(inputs[b * 8 + t], 0);
      EXPECT_LE(targets[b * 8 + t], 10);
    }
  }
  EXPECT_EQ(starts, (std::set<int64_t>{0, 1, 2}));
}

TEST_F(DatasetTest, SampleBatchNeedsContextPlusOneTokens) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(9)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  std::vector<int64_t> inputs, targets;
  // Exactly context + 1 tokens: one possible window.
  ASSERT_TRUE(SampleBatch(**file, 2, 8, 1, &inputs, &targets).ok());
  EXPECT_EQ(inputs, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4,
                                          5, 6, 7}));
  EXPECT_EQ(targets[15], 8);
  const absl::Status short_file =
      SampleBatch(**file, 2, 9, 1, &inputs, &targets);
  EXPECT_EQ(short_file.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(short_file.message().find(Path("t.bin")), std::string::npos);
  EXPECT_EQ(SampleBatch(**file, 0, 4, 1, &inputs, &targets).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SampleBatch(**file, 2, 0, 1, &inputs, &targets).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Evaluation batches.

TEST_F(DatasetTest, EvalWindowCountTilesTheFile) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(41)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  // Starts 0, 4, ..., 36 (the last target is token 40).
  EXPECT_EQ(EvalWindowCount(**file, 4), 10);
  EXPECT_EQ(EvalWindowCount(**file, 5), 8);  // starts 0 .. 35
  EXPECT_EQ(EvalWindowCount(**file, 40), 1);
  EXPECT_EQ(EvalWindowCount(**file, 41), 0);
  EXPECT_EQ(EvalWindowCount(**file, 0), 0);
}

TEST_F(DatasetTest, EvalBatchesAreFixedSpreadAndCoverEverySlot) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(41)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  // 10 slots; the golden-ratio step is round(10 * 0.618) = 6, not coprime to
  // 10, so 7: window w reads slot 7w mod 10.
  auto starts = [&](int index) {
    std::vector<int64_t> inputs, targets;
    EXPECT_TRUE(EvalBatch(**file, 5, 4, index, &inputs, &targets).ok());
    std::vector<int64_t> result;
    for (int j = 0; j < 5; ++j) {
      result.push_back(inputs[j * 4]);
      for (int t = 0; t < 4; ++t) {
        EXPECT_EQ(inputs[j * 4 + t], inputs[j * 4] + t);
        EXPECT_EQ(targets[j * 4 + t], inputs[j * 4] + t + 1);
      }
    }
    return result;
  };
  EXPECT_EQ(starts(0), (std::vector<int64_t>{0, 28, 16, 4, 32}));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{20, 8, 36, 24, 12}));
  // The order repeats after every slot has been read once.
  EXPECT_EQ(starts(2), starts(0));
  EXPECT_EQ(starts(3), starts(1));
}

TEST_F(DatasetTest, EvalBatchesCoverALargeFileOnceAndEvenly) {
  const int context = 32;
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(32 * 1000 + 1)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(EvalWindowCount(**file, context), 1000);
  std::set<int64_t> seen;
  std::vector<int64_t> inputs, targets;
  for (int index = 0; index < 125; ++index) {
    ASSERT_TRUE(EvalBatch(**file, 8, context, index, &inputs, &targets).ok());
    for (int j = 0; j < 8; ++j) {
      EXPECT_EQ(inputs[j * context] % context, 0);
      seen.insert(inputs[j * context]);
    }
  }
  EXPECT_EQ(seen.size(), 1000u);  // every slot exactly once
  // The first two batches alone touch every tenth of the file.
  std::set<int64_t> tenths;
  for (int index = 0; index < 2; ++index) {
    ASSERT_TRUE(EvalBatch(**file, 8, context, index, &inputs, &targets).ok());
    for (int j = 0; j < 8; ++j) tenths.insert(inputs[j * context] / 3200);
  }
  EXPECT_EQ(tenths.size(), 10u);
}

TEST_F(DatasetTest, EvalBatchRejectsBadArguments) {
  ASSERT_TRUE(WriteTokenFile(Path("t.bin"), Iota(10)).ok());
  auto file = TokenFile::Open(Path("t.bin"));
  ASSERT_TRUE(file.ok());
  std::vector<int64_t> inputs, targets;
  EXPECT_EQ(EvalBatch(**file, 1, 10, 0, &inputs, &targets).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(EvalBatch(**file, 1, 4, -1, &inputs, &targets).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EvalBatch(**file, 0, 4, 0, &inputs, &targets).code(),
            absl::StatusCode::kInvalidArgument);
  // One window of 9 + 1 tokens: every batch reads it.
  ASSERT_TRUE(EvalBatch(**file, 2, 9, 7, &inputs, &targets).ok());
  EXPECT_EQ(inputs[0], 0);
  EXPECT_EQ(inputs[9], 0);
  EXPECT_EQ(targets[17], 9);
}

// ---------------------------------------------------------------------------
// PrepareDataset.

using PrepareTest = TempDirTest;

TEST_F(PrepareTest, RoundTripWritesConsistentDataset) {
  const std::string text = GenerateSyntheticCorpus(3, 20000);
  ASSERT_GE(text.size(), 20000u);
  WriteFile(Path("corpus.txt"), text);
  PrepareOptions options;
  options.input = Path("corpus.txt");
  options.output_dir = Path("out/brown");  // parents are created
  options.val_fraction = 0.1;
  auto meta = PrepareDataset(options);
  ASSERT_TRUE(meta.ok()) << meta.status();

  const int64_t n = static_cast<int64_t>(text.size());
  const int64_t val = static_cast<int64_t>(std::floor(n * 0.1));
  EXPECT_EQ(meta->vocab_size, 256);
  EXPECT_EQ(meta->tokenizer, "bytes");
  EXPECT_EQ(meta->source, Path("corpus.txt"));
  EXPECT_EQ(meta->val_tokens, val);
  EXPECT_EQ(meta->train_tokens, n - val);
  EXPECT_EQ(meta->content_hash.size(), 64u);

  // Files on disk: 2 bytes per token, train then val is the whole text.
  EXPECT_EQ(fs::file_size(Path("out/brown/train.bin")),
            static_cast<uintmax_t>(2 * (n - val)));
  EXPECT_EQ(fs::file_size(Path("out/brown/val.bin")),
            static_cast<uintmax_t>(2 * val));
  EXPECT_EQ(ReadFile(Path("out/brown/train.bin")) +
                ReadFile(Path("out/brown/val.bin")),
            TokenBytes(text));

  // meta.json says the same, and the hash is that of the files.
  auto read = ReadDatasetMeta(Path("out/brown"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->train_tokens, meta->train_tokens);
  EXPECT_EQ(read->val_tokens, meta->val_tokens);
  EXPECT_EQ(read->content_hash, meta->content_hash);
  EXPECT_EQ(read->source, meta->source);
  auto hash = ComputeContentHash(Path("out/brown"));
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(*hash, meta->content_hash);

  auto dataset = Dataset::Open(Path("out/brown"));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->val().at(0), static_cast<unsigned char>(text[n - val]));

  // Preparing the same text again gives the same hash; one changed byte
  // gives another.
  options.output_dir = Path("again");
  auto again = PrepareDataset(options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->content_hash, meta->content_hash);
  std::string changed = text;
  changed[n / 2] = changed[n / 2] == 'x' ? 'y' : 'x';
  WriteFile(Path("corpus.txt"), changed);
  options.output_dir = Path("changed");
  auto other = PrepareDataset(options);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->content_hash, meta->content_hash);
  EXPECT_EQ(other->train_tokens, meta->train_tokens);
}

TEST_F(PrepareTest, StripTagsKeepsWordsOfABrownSentence) {
  EXPECT_EQ(StripBrownTags("\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd "
                           "./.\n\n"),
            "The Fulton County said .\n");
}

TEST_F(PrepareTest, StripTagsCutsAtTheLastSlashAndDropsEmptyLines) {
  EXPECT_EQ(
      StripBrownTags("1/2/cd  and/cc\tor/cc\r\n   \n/nn word /x\nlast/nn"),
      "1/2 and or\nword\nlast\n");
  EXPECT_EQ(StripBrownTags(""), "");
  EXPECT_EQ(StripBrownTags("\t\n \n"), "");
}

TEST_F(PrepareTest, StripTagsPreparesBrownLikeFiles) {
  std::string tagged, plain;
  for (int i = 0; i < 40; ++i) {
    tagged += "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n";
    plain += "The Fulton County said .\n";
  }
  WriteFile(Path("brown/ca01"), tagged);
  PrepareOptions options;
  options.input = Path("brown");
  options.output_dir = Path("out");
  options.strip_tags = true;
  options.val_fraction = 0.5;
  auto meta = PrepareDataset(options);
  ASSERT_TRUE(meta.ok()) << meta.status();
  ASSERT_EQ(plain.size(), 1000u);
  EXPECT_EQ(meta->train_tokens, 500);
  EXPECT_EQ(meta->val_tokens, 500);
  EXPECT_EQ(ReadFile(Path("out/train.bin")) + ReadFile(Path("out/val.bin")),
            TokenBytes(plain));
}

TEST_F(PrepareTest, FolderIsReadSortedAndSkipsNonCorpusFiles) {
  const std::string a(400, 'a'), b(400, 'b'), c(399, 'c');
  WriteFile(Path("corpus/b.txt"), b + "\n");
  WriteFile(Path("corpus/a.txt"), a + "\n");
  WriteFile(Path("corpus/sub/c"), c);  // no final newline: one is added
  for (const char* skipped :
       {"README", "README.md", "readme.txt", "CONTENTS", "cats.txt", "LICENSE",
        "LICENSE.md", "package.json", ".npmignore", ".git/HEAD"}) {
    WriteFile(Path(std::string("corpus/") + skipped), std::string(500, 'z'));
  }
  PrepareOptions options;
  options.input = Path("corpus");
  // The output folder inside the input is not read back as text, so a
  // second run sees the same input.
  options.output_dir = Path("corpus/prepared");
  options.val_fraction = 0.25;
  auto first = PrepareDataset(options);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string expected = a + "\n" + b + "\n" + c + "\n";
  ASSERT_EQ(expected.size(), 1202u);
  EXPECT_EQ(first->val_tokens, 300);  // floor(1202 / 4)
  EXPECT_EQ(first->train_tokens, 902);
  EXPECT_EQ(ReadFile(Path("corpus/prepared/train.bin")) +
                ReadFile(Path("corpus/prepared/val.bin")),
            TokenBytes(expected));
  auto second = PrepareDataset(options);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->content_hash, first->content_hash);
  EXPECT_EQ(second->train_tokens, 902);
}

TEST_F(PrepareTest, MissingInputIsNotFound) {
  PrepareOptions options;
  options.input = Path("no/such/corpus");
  options.output_dir = Path("out");
  auto meta = PrepareDataset(options);
  ASSERT_EQ(meta.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(meta.status().message().find(Path("no/such/corpus")),
            std::string::npos)
      << meta.status();
  EXPECT_FALSE(fs::exists(Path("out")));
}

TEST_F(PrepareTest, RejectsValFractionOutsideTheRange) {
  WriteFile(Path("corpus.txt"), std::string(2000, 'q'));
  PrepareOptions options;
  options.input = Path("corpus.txt");
  options.output_dir = Path("out");
  for (double bad :
       {0.0, -0.1, 0.51, 1.0, std::numeric_limits<double>::quiet_NaN()}) {
    options.val_fraction = bad;
    auto meta = PrepareDataset(options);
    EXPECT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(meta.status().message().find("val_fraction"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(Path("out")));
  options.val_fraction = 0.5;
  auto meta = PrepareDataset(options);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->val_tokens, 1000);
}

TEST_F(PrepareTest, RejectsInputUnder1000Bytes) {
  WriteFile(Path("tiny.txt"), std::string(998, 'q') + "\n");  // 999 bytes
  PrepareOptions options;
  options.input = Path("tiny.txt");
  options.output_dir = Path("out");
  auto tiny = PrepareDataset(options);
  ASSERT_EQ(tiny.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tiny.status().message().find("999 bytes"), std::string::npos)
      << tiny.status();
  // 1000 bytes is enough.
  WriteFile(Path("tiny.txt"), std::string(999, 'q') + "\n");
  EXPECT_TRUE(PrepareDataset(options).ok());
}

TEST_F(PrepareTest, FolderWithoutCorpusFilesIsInvalid) {
  WriteFile(Path("corpus/README"), std::string(5000, 'r'));
  PrepareOptions options;
  options.input = Path("corpus");
  options.output_dir = Path("out");
  EXPECT_EQ(PrepareDataset(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Synthetic corpus.

TEST_F(PrepareTest, SyntheticIsDeterministicAndSized) {
  const std::string a = GenerateSyntheticCorpus(7, 5000);
  EXPECT_EQ(GenerateSyntheticCorpus(7, 5000), a);
  EXPECT_NE(GenerateSyntheticCorpus(8, 5000), a);
  EXPECT_GE(a.size(), 5000u);
  EXPECT_LT(a.size(), 5200u);
  EXPECT_EQ(a.back(), '\n');
  EXPECT_EQ(GenerateSyntheticCorpus(7, 0), "");
  // A longer text from the same seed starts with the shorter one's first
  // paragraphs: generation is a single stream.
  const std::string longer = GenerateSyntheticCorpus(7, 50000);
  EXPECT_EQ(longer.compare(0, 1000, a, 0, 1000), 0);
}

TEST_F(PrepareTest, SyntheticIsCapitalisedPunctuatedAscii) {
  const std::string text = GenerateSyntheticCorpus(11, 20000);
  int sentences = 0, questions = 0;
  bool sentence_start = true;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ASSERT_TRUE(c == '\n' || (c >= ' ' && c <= '~')) << static_cast<int>(c);
    if (sentence_start && c != ' ' && c != '\n') {
      EXPECT_TRUE(c >= 'A' && c <= 'Z') << text.substr(i, 40);
      sentence_start = false;
    }
    if (c == '.' || c == '?') {
      ++sentences;
      if (c == '?') ++questions;
      sentence_start = true;
      ASSERT_LT(i + 1, text.size());
      EXPECT_TRUE(text[i + 1] == ' ' || text[i + 1] == '\n');
    }
  }
  EXPECT_GT(sentences, 200);
  EXPECT_GT(questions, 10);
  EXPECT_LT(questions, sentences / 2);
}

TEST_F(PrepareTest, SyntheticFirstSentenceIsStable) {
  // Pins the generator: a change here changes every synthetic dataset's hash.
  const std::string text = GenerateSyntheticCorpus(1, 1);
  EXPECT_EQ(text, "Two children like these clever gardens.\n");
}

}  // namespace
}  // namespace twist::common
