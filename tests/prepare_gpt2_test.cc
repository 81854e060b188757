// `twistctl prepare --tokenizer=gpt2` (common/data/prepare.h): the token
// files hold exactly the ids of an independent GPT-2 encoder
// (tests/reference_bpe.py), document by document with <|endoftext|> between,
// decode back to the text, and split at a document (or line) boundary.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"
#include "common/tokenizer/gpt2_tokenizer.h"
#include "gtest/gtest.h"
#include "tests/gpt2_reference.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

constexpr int kEot = 50256;

std::vector<int> ReadIds(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  std::vector<int> ids;
  if (!bytes.ok()) return ids;
  for (size_t i = 0; i + 1 < bytes->size(); i += 2) {
    ids.push_back(static_cast<unsigned char>((*bytes)[i]) |
                  static_cast<unsigned char>((*bytes)[i + 1]) << 8);
  }
  return ids;
}

// `ids` cut at each end-of-text id.
std::vector<std::vector<int>> SplitAtEot(const std::vector<int>& ids) {
  std::vector<std::vector<int>> docs(1);
  for (int id : ids) {
    if (id == kEot) {
      docs.emplace_back();
    } else {
      docs.back().push_back(id);
    }
  }
  return docs;
}

// Text with what GPT-2's pre-tokenizer treats specially: accents, CJK, emoji,
// runs of spaces and newlines, contractions, digits, punctuation.
std::string UnicodeDocument(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += absl::StrCat(
        "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 Stra\u00dfe ", i,
        ",000.50!  They're here;   we'll see... \u4f60\u597d\u4e16\u754c "
        "\u3053\u3093\u306b\u3061\u306f \U0001F600\U0001F44D\U0001F3FD\n\n"
        "\t  tabs\tand  spaces   \n",
        "I'm sure it's 3.14159 (or 22/7)? \"Quoted\" \u00ab\u00bb "
        "\u0645\u0631\u062d\u0628\u0627 \u0417\u0434\u0440\u0430\u0432\u0441"
        "\u0442\u0432\u0443\u0439\u0442\u0435\n");
  }
  return text;
}

class PrepareGpt2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Gpt2FilesPresent()) GTEST_SKIP() << FetchHint();
    ASSERT_FALSE(dir_.path().empty());
    fs::create_directories(dir_.path() + "/corpus");
  }

  absl::StatusOr<DatasetMeta> Prepare(const std::string& input,
                                      double val_fraction) {
    PrepareOptions options;
    options.input = input;
    options.output_dir = Out();
    options.val_fraction = val_fraction;
    options.tokenizer = "gpt2";
    options.tokenizer_dir = Gpt2Dir();
    return PrepareDataset(options);
  }

  std::string Out() const { return dir_.path() + "/out"; }

  TempDir dir_;
};

TEST_F(PrepareGpt2Test, IdsEqualTheReferenceDocumentByDocument) {
  std::string why_not;
  const std::optional<std::string> reference = PythonReferenceCommand(&why_not);
  if (!reference) GTEST_SKIP() << why_not;
  // Files are read in path order: 0.txt, 1.txt, ...
  std::vector<std::string> docs = {
      GenerateSyntheticCorpus(1, 30000), UnicodeDocument(40),
      GenerateSyntheticCorpus(2, 12000), UnicodeDocument(7),
      GenerateSyntheticCorpus(3, 9000)};
  int64_t total = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    dir_.Write(absl::StrCat("corpus/", i, ".txt"), docs[i]);
    total += static_cast<int64_t>(docs[i].size());
  }
  absl::StatusOr<DatasetMeta> meta = Prepare(dir_.path() + "/corpus", 0.2);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->tokenizer, "gpt2");
  EXPECT_EQ(meta->vocab_size, 50257);

  // The validation documents are the shortest suffix holding 20% of the
  // input bytes.
  size_t first_val = docs.size();
  for (int64_t suffix = 0; suffix < total / 5;) {
    suffix += static_cast<int64_t>(docs[--first_val].size());
  }
  ASSERT_GT(first_val, 0u);
  ASSERT_LT(first_val, docs.size());

  const std::optional<std::vector<std::vector<int>>> expected =
      RunReference(*reference, docs);
  ASSERT_TRUE(expected.has_value());
  const std::vector<int> train = ReadIds(Out() + "/train.bin");
  const std::vector<int> val = ReadIds(Out() + "/val.bin");
  EXPECT_EQ(meta->train_tokens, static_cast<int64_t>(train.size()));
  EXPECT_EQ(meta->val_tokens, static_cast<int64_t>(val.size()));
  const std::vector<std::vector<int>> train_docs = SplitAtEot(train);
  const std::vector<std::vector<int>> val_docs = SplitAtEot(val);
  ASSERT_EQ(train_docs.size(), first_val);
  ASSERT_EQ(val_docs.size(), docs.size() - first_val);
  absl::StatusOr<Gpt2Tokenizer> tokenizer = Gpt2Tokenizer::Load(Gpt2Dir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (size_t i = 0; i < docs.size(); ++i) {
    const std::vector<int>& got =
        i < first_val ? train_docs[i] : val_docs[i - first_val];
    EXPECT_EQ(got, (*expected)[i]) << "document " << i;
    absl::StatusOr<std::string> text = tokenizer->Decode(got);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, docs[i]) << "document " << i;
  }
}

TEST_F(PrepareGpt2Test, LoneDocumentSplitsAtALineBreak) {
  const std::string text = UnicodeDocument(60);
  const std::string input = dir_.Write("corpus/only.txt", text);
  absl::StatusOr<DatasetMeta> meta = Prepare(input, 0.1);
  ASSERT_TRUE(meta.ok()) << meta.status();
  absl::StatusOr<Gpt2Tokenizer> tokenizer = Gpt2Tokenizer::Load(Gpt2Dir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<int> train = ReadIds(Out() + "/train.bin");
  const std::vector<int> val = ReadIds(Out() + "/val.bin");
  for (int id : train) ASSERT_NE(id, kEot);
  for (int id : val) ASSERT_NE(id, kEot);
  absl::StatusOr<std::string> train_text = tokenizer->Decode(train);
  absl::StatusOr<std::string> val_text = tokenizer->Decode(val);
  ASSERT_TRUE(train_text.ok() && val_text.ok());
  EXPECT_EQ(*train_text + *val_text, text);
  // Training text ends at the first line break at or past 90% of the text.
  const size_t split_at = text.size() - text.size() / 10;
  EXPECT_EQ(train_text->size(), text.find('\n', split_at) + 1);
}

TEST_F(PrepareGpt2Test, BinaryFilesAreSkippedWithoutAnEmptyDocument) {
  dir_.Write("corpus/a.txt", GenerateSyntheticCorpus(4, 8000));
  dir_.Write("corpus/b.bin", std::string("\x7f"
                                         "ELF\0\0\0binary",
                                         13));
  dir_.Write("corpus/c.txt", GenerateSyntheticCorpus(5, 8000));
  dir_.Write("corpus/d.txt", GenerateSyntheticCorpus(6, 3000));
  absl::StatusOr<DatasetMeta> meta = Prepare(dir_.path() + "/corpus", 0.1);
  ASSERT_TRUE(meta.ok()) << meta.status();
  const std::vector<int> train = ReadIds(Out() + "/train.bin");
  EXPECT_EQ(SplitAtEot(train).size(), 2u);  // a, c
  for (size_t i = 1; i < train.size(); ++i) {
    ASSERT_FALSE(train[i] == kEot && train[i - 1] == kEot) << "at " << i;
  }
  EXPECT_EQ(SplitAtEot(ReadIds(Out() + "/val.bin")).size(), 1u);  // d
}

TEST_F(PrepareGpt2Test, InvalidUtf8NamesTheFileAndOffsetAndWritesNothing) {
  dir_.Write("corpus/a.txt", GenerateSyntheticCorpus(7, 8000));
  std::string bad = GenerateSyntheticCorpus(8, 8000);
  bad[1234] = '\xff';
  const std::string bad_path = dir_.Write("corpus/b.txt", bad);
  absl::StatusOr<DatasetMeta> meta = Prepare(dir_.path() + "/corpus", 0.1);
  ASSERT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument)
      << meta.status();
  EXPECT_NE(meta.status().message().find(bad_path), std::string::npos)
      << meta.status();
  EXPECT_NE(meta.status().message().find("1234"), std::string::npos)
      << meta.status();
  EXPECT_FALSE(fs::exists(Out() + "/meta.json"));
  EXPECT_FALSE(fs::exists(Out() + "/train.bin"));
  EXPECT_FALSE(fs::exists(Out() + "/val.bin"));
}

TEST(PrepareGpt2FilesTest, MissingTokenizerFilesSayHowToFetchThem) {
  TempDir dir;
  dir.Write("corpus.txt", GenerateSyntheticCorpus(9, 5000));
  PrepareOptions options;
  options.input = dir.path() + "/corpus.txt";
  options.output_dir = dir.path() + "/out";
  options.tokenizer = "gpt2";
  options.tokenizer_dir = dir.path() + "/no-such-folder";
  absl::StatusOr<DatasetMeta> meta = PrepareDataset(options);
  ASSERT_EQ(meta.status().code(), absl::StatusCode::kNotFound) << meta.status();
  EXPECT_NE(meta.status().message().find("fetch-tokenizer.sh"),
            std::string::npos)
      << meta.status();
}

}  // namespace
}  // namespace twist::common
