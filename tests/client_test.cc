// Tests of twistctl's offline parts: the command line, spec files and
// command-line overrides, the progress line of `twistctl watch`, and
// sampling.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "client/command_line.h"
#include "client/progress.h"
#include "client/sampling.h"
#include "client/spec_input.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::client {
namespace {

using ::twist::v1::JobSpec;

CommandLine Parse(const std::vector<std::string>& args) {
  absl::StatusOr<CommandLine> line = ParseCommandLine(args);
  EXPECT_TRUE(line.ok()) << line.status();
  return line.ok() ? *line : CommandLine();
}

TEST(ParseCommandLineTest, SplitsCommandPositionalAndOptions) {
  const CommandLine line =
      Parse({"submit", "extra", "--rounds=5", "--lr", "0.01", "--watch",
             "--name=a=b", "--empty=", "last"});
  EXPECT_EQ(line.command, "submit");
  EXPECT_EQ(line.positional, (std::vector<std::string>{"extra", "last"}));
  EXPECT_EQ(line.options, (std::map<std::string, std::string>{{"rounds", "5"},
                                                              {"lr", "0.01"},
                                                              {"watch", "true"},
                                                              {"name", "a=b"},
                                                              {"empty", ""}}));
  EXPECT_EQ(line.coordinator, "127.0.0.1:7070");
  EXPECT_TRUE(line.Has("watch"));
  EXPECT_FALSE(line.Has("seed"));
  EXPECT_EQ(line.Get("rounds"), "5");
  EXPECT_EQ(line.Get("seed", "fallback"), "fallback");
}

TEST(ParseCommandLineTest, FlagFollowedByAnotherOptionTakesNoValue) {
  const CommandLine line =
      Parse({"status", "3", "--json", "--verbose", "--x=1"});
  EXPECT_EQ(line.positional, (std::vector<std::string>{"3"}));
  EXPECT_EQ(line.Get("json"), "true");
  EXPECT_EQ(line.Get("verbose"), "true");
  EXPECT_EQ(line.Get("x"), "1");
}

TEST(ParseCommandLineTest, ValuelessFlagsDoNotSwallowThePositional) {
  const CommandLine watch = Parse({"status", "--json", "3"});
  EXPECT_EQ(watch.positional, (std::vector<std::string>{"3"}));
  EXPECT_EQ(watch.Get("json"), "true");
  const CommandLine prepare = Parse({"prepare", "--strip_tags", "in.txt"});
  EXPECT_EQ(prepare.positional, (std::vector<std::string>{"in.txt"}));
}

TEST(ParseCommandLineTest, TheJobSpecsBoolFieldsAreSwitches) {
  for (const char* option : {"capacity_weighted", "outer_heavy_ball"}) {
    const CommandLine line =
        Parse({"submit", std::string("--") + option, "spec.textproto"});
    EXPECT_EQ(line.positional, (std::vector<std::string>{"spec.textproto"}))
        << option;
    EXPECT_EQ(line.Get(option), "true");
  }
  // A field that takes a number still takes the next argument.
  EXPECT_EQ(Parse({"submit", "--rounds", "5"}).Get("rounds"), "5");
}

TEST(ParseCommandLineTest, CoordinatorBeforeOrAfterTheCommand) {
  const CommandLine before = Parse({"--coordinator=10.0.0.5:7070", "list"});
  EXPECT_EQ(before.command, "list");
  EXPECT_EQ(before.coordinator, "10.0.0.5:7070");
  EXPECT_TRUE(before.options.empty());

  const CommandLine after = Parse({"list", "--coordinator=h:1"});
  EXPECT_EQ(after.command, "list");
  EXPECT_EQ(after.coordinator, "h:1");
  EXPECT_TRUE(after.options.empty());

  const CommandLine after_spaced = Parse({"list", "--coordinator", "h:2"});
  EXPECT_EQ(after_spaced.coordinator, "h:2");
  EXPECT_TRUE(after_spaced.positional.empty());
}

// "--key value" is accepted for options that take a value, and --coordinator
// may come before the command (command_line.h).
TEST(ParseCommandLineTest, CoordinatorWithASpaceBeforeTheCommand) {
  const CommandLine line = Parse({"--coordinator", "h:2", "status", "3"});
  EXPECT_EQ(line.coordinator, "h:2");
  EXPECT_EQ(line.command, "status");
  EXPECT_EQ(line.positional, (std::vector<std::string>{"3"}));
}

TEST(ParseCommandLineTest, NoCommandIsAnError) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{},
        std::vector<std::string>{"--coordinator=h:1"},
        std::vector<std::string>{"--rounds=3", "--json"}}) {
    absl::StatusOr<CommandLine> line = ParseCommandLine(args);
    EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(line.status().message(), "no command given: try `twistctl help`");
  }
}

TEST(CheckOptionsTest, SuggestsTheClosestAllowedName) {
  const std::set<std::string> allowed = {"rounds", "local_steps", "lr", "seed"};
  const absl::Status typo =
      CheckOptions(Parse({"submit", "--rouns=3"}), allowed);
  EXPECT_EQ(typo.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      typo.message(),
      "unknown option --rouns for `twistctl submit`: did you mean --rounds?");

  const absl::Status swapped =
      CheckOptions(Parse({"submit", "--sede=3"}), allowed);
  EXPECT_EQ(
      swapped.message(),
      "unknown option --sede for `twistctl submit`: did you mean --seed?");

  const absl::Status far =
      CheckOptions(Parse({"submit", "--temperature=1"}), allowed);
  EXPECT_EQ(far.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(far.message(),
            "unknown option --temperature for `twistctl submit`");

  EXPECT_TRUE(
      CheckOptions(Parse({"submit", "--rounds=3", "--lr=0.1"}), allowed).ok());
  EXPECT_TRUE(CheckOptions(Parse({"list", "--coordinator=h:1"}), {}).ok());
}

TEST(CommandLineTest, TypedGettersNameTheOptionOnABadValue) {
  const CommandLine line =
      Parse({"x", "--lr=abc", "--rounds=ten", "--half=3.5", "--watch=maybe",
             "--good=0.25", "--n=-12", "--yes=false"});
  absl::StatusOr<double> lr = line.GetDouble("lr", 1);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lr.status().message(), "--lr=abc is not a number");
  absl::StatusOr<int64_t> rounds = line.GetInt("rounds", 1);
  EXPECT_EQ(rounds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rounds.status().message(), "--rounds=ten is not an integer");
  EXPECT_EQ(line.GetInt("half", 1).status().message(),
            "--half=3.5 is not an integer");
  absl::StatusOr<bool> watch = line.GetBool("watch", false);
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(watch.status().message(), "--watch=maybe is not true or false");

  EXPECT_EQ(*line.GetDouble("good", 1), 0.25);
  EXPECT_EQ(*line.GetInt("n", 1), -12);
  EXPECT_EQ(*line.GetBool("yes", true), false);
  EXPECT_EQ(*line.GetDouble("absent", 1.5), 1.5);
  EXPECT_EQ(*line.GetInt("absent", 7), 7);
  EXPECT_EQ(*line.GetBool("absent", true), true);
  EXPECT_EQ(*Parse({"x", "--flag"}).GetBool("flag", false), true);
}

TEST(ParseSpecTest, TextFormat) {
  absl::StatusOr<JobSpec> spec = ParseSpec(
      "# a comment\n"
      "name: \"brown\"\n"
      "mode: MODE_LOCAL_SGD\n"
      "rounds: 5\n"
      "model { n_layer: 2 n_head: 2 }\n"
      "optimizer { learning_rate: 0.01 }\n"
      "data { path: \"/data/brown\" }\n"
      "round_deadline_s: 30.5\n",
      /*json=*/false, "brown.textproto");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "brown");
  EXPECT_EQ(spec->mode(), twist::v1::MODE_LOCAL_SGD);
  EXPECT_EQ(spec->rounds(), 5);
  EXPECT_EQ(spec->model().n_layer(), 2);
  EXPECT_EQ(spec->model().n_head(), 2);
  EXPECT_EQ(spec->optimizer().learning_rate(), 0.01);
  EXPECT_EQ(spec->data().path(), "/data/brown");
  EXPECT_EQ(spec->round_deadline_s(), 30.5);
  EXPECT_EQ(spec->local_steps(), 0);  // unset: defaults come at submit
}

TEST(ParseSpecTest, Json) {
  absl::StatusOr<JobSpec> spec = ParseSpec(
      R"({"name": "j", "mode": "MODE_LOCAL_SGD", "scaling": "SCALING_NONE",
          "rounds": 7, "model": {"n_layer": 3, "nEmbd": 96},
          "optimizer": {"learningRate": 0.002}, "seed": "42",
          "capacity_weighted": true})",
      /*json=*/true, "j.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "j");
  EXPECT_EQ(spec->mode(), twist::v1::MODE_LOCAL_SGD);
  EXPECT_EQ(spec->scaling(), twist::v1::SCALING_NONE);
  EXPECT_EQ(spec->rounds(), 7);
  EXPECT_EQ(spec->model().n_layer(), 3);
  EXPECT_EQ(spec->model().n_embd(), 96);
  EXPECT_EQ(spec->optimizer().learning_rate(), 0.002);
  EXPECT_EQ(spec->seed(), 42u);
  EXPECT_TRUE(spec->capacity_weighted());
}

TEST(ParseSpecTest, MalformedTextNamesFileLineAndColumn) {
  absl::StatusOr<JobSpec> spec =
      ParseSpec("rounds: 5\n  roundz: 6\n", /*json=*/false, "bad.textproto");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  // "<file>:<line>:<column>: ", 1-based; the column is where protobuf's
  // parser stopped on line 2 ("  roundz: 6"), within the line.
  const std::string message(spec.status().message());
  const std::string prefix =
      "not a valid job spec (protobuf text format): bad.textproto:2:";
  ASSERT_EQ(message.substr(0, prefix.size()), prefix) << message;
  const size_t colon = message.find(": ", prefix.size());
  ASSERT_NE(colon, std::string::npos) << message;
  const int column =
      std::stoi(message.substr(prefix.size(), colon - prefix.size()));
  EXPECT_GE(column, 3) << message;   // not before "roundz"
  EXPECT_LE(column, 11) << message;  // not past the end of the line
  EXPECT_NE(message.find("roundz", colon), std::string::npos) << message;

  absl::StatusOr<JobSpec> bad_value =
      ParseSpec("model {\n  n_layer: \"four\"\n}\n", /*json=*/false, "v.txtpb");
  EXPECT_EQ(bad_value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_value.status().message().find("v.txtpb:2:"), std::string::npos)
      << bad_value.status();
}

TEST(ParseSpecTest, MalformedJsonNamesTheSource) {
  absl::StatusOr<JobSpec> spec =
      ParseSpec("{\"rounds\": }", /*json=*/true, "x.json");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string prefix = "x.json: not a valid JSON job spec: ";
  EXPECT_EQ(std::string(spec.status().message()).substr(0, prefix.size()),
            prefix)
      << spec.status();
  EXPECT_FALSE(ParseSpec(R"({"mode": "MODE_BOGUS"})", true, "y.json").ok());
}

TEST(LoadSpecFileTest, ReadsTextOrJsonByExtensionAndMissingIsNotFound) {
  const std::string dir = twist::testing::MakeTempDir();
  std::ofstream(dir + "/a.textproto") << "rounds: 3\nmode: MODE_TWIST\n";
  std::ofstream(dir + "/b.json") << R"({"rounds": 4})";
  absl::StatusOr<JobSpec> a = LoadSpecFile(dir + "/a.textproto");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->rounds(), 3);
  EXPECT_EQ(a->mode(), twist::v1::MODE_TWIST);
  absl::StatusOr<JobSpec> b = LoadSpecFile(dir + "/b.json");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->rounds(), 4);

  const std::string missing = dir + "/missing.textproto";
  absl::StatusOr<JobSpec> c = LoadSpecFile(missing);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(), "cannot read spec file " + missing +
                                      ": no such file or not readable");

  std::ofstream(dir + "/bad.textproto") << "rounds: 3\nrounds: x\n";
  absl::StatusOr<JobSpec> d = LoadSpecFile(dir + "/bad.textproto");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find(dir + "/bad.textproto:2:"),
            std::string::npos)
      << d.status();
  std::filesystem::remove_all(dir);
}

TEST(ApplySpecOptionsTest, SetsNestedFieldsAndEnums) {
  JobSpec spec;
  spec.set_rounds(99);
  spec.mutable_model()->set_n_head(8);  // kept: not on the command line
  const CommandLine line =
      Parse({"submit", "--n_layer=3", "--lr=0.02", "--mode=local_sgd",
             "--scaling=none", "--rounds", "7", "--name=my \"job\"",
             "--seed=18446744073709551615", "--capacity_weighted",
             "--round_deadline_s=12.5", "--data=/abs/not/here",
             "--content_hash=ff00"});
  ASSERT_TRUE(ApplySpecOptions(line, &spec).ok())
      << ApplySpecOptions(line, &spec);
  EXPECT_EQ(spec.model().n_layer(), 3);
  EXPECT_EQ(spec.model().n_head(), 8);
  EXPECT_EQ(spec.optimizer().learning_rate(), 0.02);
  EXPECT_EQ(spec.mode(), twist::v1::MODE_LOCAL_SGD);
  EXPECT_EQ(spec.scaling(), twist::v1::SCALING_NONE);
  EXPECT_EQ(spec.rounds(), 7);
  EXPECT_EQ(spec.name(), "my \"job\"");
  EXPECT_EQ(spec.seed(), 18446744073709551615u);
  EXPECT_TRUE(spec.capacity_weighted());
  EXPECT_EQ(spec.round_deadline_s(), 12.5);
  EXPECT_EQ(spec.data().path(), "/abs/not/here");
  EXPECT_EQ(spec.data().content_hash(), "ff00");

  JobSpec twist_spec;
  ASSERT_TRUE(ApplySpecOptions(Parse({"submit", "--mode=twist",
                                      "--scaling=inverse_keep_ratio"}),
                               &twist_spec)
                  .ok());
  EXPECT_EQ(twist_spec.mode(), twist::v1::MODE_TWIST);
  EXPECT_EQ(twist_spec.scaling(), twist::v1::SCALING_INVERSE_KEEP_RATIO);
}

TEST(ApplySpecOptionsTest, RelativeExistingDataPathIsMadeAbsolute) {
  const std::string dir = twist::testing::MakeTempDir();
  std::filesystem::create_directory(dir + "/prepared");
  const std::filesystem::path old_cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  JobSpec spec, missing;
  const absl::Status status =
      ApplySpecOptions(Parse({"submit", "--data=./prepared/"}), &spec);
  const absl::Status missing_status =
      ApplySpecOptions(Parse({"submit", "--data=not/here"}), &missing);
  const std::string real_dir = std::filesystem::current_path().string();
  std::filesystem::current_path(old_cwd);
  std::filesystem::remove_all(dir);

  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(spec.data().path(), real_dir + "/prepared/");
  ASSERT_TRUE(missing_status.ok()) << missing_status;
  EXPECT_EQ(missing.data().path(),
            "not/here");  // left for the coordinator to judge
}

TEST(ApplySpecOptionsTest, BadValueIsInvalidArgumentNamingTheOption) {
  struct Case {
    std::string arg;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--rounds=ten", "--rounds=ten is not a valid value for rounds"},
      {"--lr=fast",
       "--lr=fast is not a valid value for optimizer.learning_rate"},
      {"--mode=fast", "--mode=fast is not a valid value for mode"},
      {"--n_layer=2.5", "--n_layer=2.5 is not a valid value for model.n_layer"},
      {"--capacity_weighted=maybe",
       "--capacity_weighted=maybe is not a valid value for capacity_weighted"},
  };
  for (const Case& c : cases) {
    JobSpec spec;
    const absl::Status status =
        ApplySpecOptions(Parse({"submit", c.arg}), &spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.arg;
    EXPECT_EQ(status.message(), c.message) << c.arg;
  }
}

TEST(ApplySpecOptionsTest, OptionNamesAreTheShortSpellings) {
  const std::set<std::string>& names = SpecOptionNames();
  for (const char* name :
       {"name", "data", "mode", "rounds", "local_steps", "batch_size", "seed",
        "n_layer", "lr", "keep_ratio", "scaling", "checkpoint_every",
        "max_workers", "round_deadline_s", "deadline_factor",
        "deadline_floor_s", "optimizer_state", "deal", "init_from",
        "activation", "transport_dtype", "compute_dtype", "compression",
        "topk_fraction", "overlap_steps", "quota", "quota_in"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
  EXPECT_EQ(names.count("learning_rate"), 0u);
  EXPECT_EQ(names.count("spec"), 0u);
  EXPECT_EQ(names.size(), 47u);
}

twist::v1::RoundRecord Round(int round, double train, double val,
                             double seconds, int64_t tokens) {
  twist::v1::RoundRecord r;
  r.set_round(round);
  r.set_train_loss(train);
  if (val >= 0) {
    r.set_has_val_loss(true);
    r.set_val_loss(val);
  }
  r.set_duration_s(seconds);
  r.set_tokens(tokens);
  return r;
}

twist::v1::Job JobAt(int round, int rounds, twist::v1::JobState state,
                     const std::string& reason = "") {
  twist::v1::Job job;
  job.set_id(1);
  job.mutable_spec()->set_rounds(rounds);
  job.set_round(round);
  job.set_state(state);
  job.set_reason(reason);
  return job;
}

TEST(ProgressViewTest, QueuedJob) {
  ProgressView view;
  EXPECT_EQ(view.Render(JobAt(0, 40, twist::v1::JOB_STATE_QUEUED), 10),
            "[..........] round 0/40  queued");
  EXPECT_EQ(view.EtaSeconds(JobAt(0, 40, twist::v1::JOB_STATE_QUEUED)), -1);
}

TEST(ProgressViewTest, RunningJobWithLossesThroughputAndEta) {
  ProgressView view;
  view.AddRound(Round(0, std::nan(""), 3.0, 4, 0));  // evaluation only
  view.AddRound(Round(1, 2.5, -1, 50, 100000));
  view.AddRound(Round(2, 2.25, 2.4, 70, 150000));
  const twist::v1::Job job = JobAt(2, 4, twist::v1::JOB_STATE_RUNNING);
  // Mean training round 60 s, 2 rounds left; 150000 tokens in 70 s.
  EXPECT_EQ(view.EtaSeconds(job), 120);
  EXPECT_EQ(
      view.Render(job, 8),
      "[####....] round 2/4  train 2.250  val 2.400  2.1k tok/s  ETA 2m00s");
  EXPECT_EQ(
      view.Render(
          JobAt(2, 4, twist::v1::JOB_STATE_WAITING, "1 of 2 workers live"), 8),
      "[####....] round 2/4  train 2.250  val 2.400  2.1k tok/s  ETA 2m00s  "
      "waiting: 1 of 2 workers live");
}

TEST(ProgressViewTest, CompletedAndFailedJobs) {
  ProgressView view;
  view.AddRound(Round(0, 0, 3.5, 1, 0));
  view.AddRound(Round(1, 3.0, -1, 10, 5000));
  view.AddRound(Round(2, 2.75, 2.875, 10, 5000));
  EXPECT_EQ(view.Render(JobAt(2, 2, twist::v1::JOB_STATE_COMPLETED), 6),
            "[######] round 2/2  train 2.750  val 2.875  500 tok/s  completed");
  EXPECT_EQ(view.EtaSeconds(JobAt(2, 2, twist::v1::JOB_STATE_COMPLETED)), 0);

  ProgressView failed;
  failed.AddRound(Round(0, 0, 3.5, 1, 0));
  failed.AddRound(Round(1, std::nan(""), -1, 30, 3000));  // no accepted update
  EXPECT_EQ(failed.Render(
                JobAt(1, 3, twist::v1::JOB_STATE_FAILED, "worker w1 lost"), 6),
            "[##....] round 1/3  val 3.500  100 tok/s  ETA 1m00s  FAILED: "
            "worker w1 lost");
  EXPECT_EQ(failed.Render(JobAt(1, 3, twist::v1::JOB_STATE_CANCELLED), 6),
            "[##....] round 1/3  val 3.500  100 tok/s  ETA 1m00s  cancelled");
}

TEST(FormatTest, Durations) {
  EXPECT_EQ(FormatDuration(0), "0.0s");
  EXPECT_EQ(FormatDuration(9.5), "9.5s");
  EXPECT_EQ(FormatDuration(59.9), "59.9s");
  EXPECT_EQ(FormatDuration(59.96), "1m00s");  // not "60.0s"
  EXPECT_EQ(FormatDuration(60), "1m00s");
  EXPECT_EQ(FormatDuration(75), "1m15s");
  EXPECT_EQ(FormatDuration(3599.4), "59m59s");
  EXPECT_EQ(FormatDuration(3700), "1h01m");
  EXPECT_EQ(FormatDuration(90000), "25h00m");
}

TEST(FormatTest, Counts) {
  EXPECT_EQ(FormatCount(0), "0");
  EXPECT_EQ(FormatCount(999999), "1.0M");  // not "1000.0k"
  EXPECT_EQ(FormatCount(999), "999");
  EXPECT_EQ(FormatCount(1000), "1.0k");
  EXPECT_EQ(FormatCount(12345), "12.3k");
  EXPECT_EQ(FormatCount(2.5e6), "2.5M");
  EXPECT_EQ(FormatCount(3e9), "3.0G");
}

TEST(FormatTest, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(5.0 * 1024 * 1024), "5.0 MiB");
  EXPECT_EQ(FormatBytes(3.0 * 1024 * 1024 * 1024), "3.00 GiB");
}

TEST(SampleTokensTest, NeverDrawsPaddingAndIsSeeded) {
  common::ModelConfig config = twist::testing::SmallConfig();
  config.vocab_size = 320;
  config.vocab_used = 200;
  common::Gpt model = twist::testing::MakeModel(config, 3);
  SamplingOptions options;
  options.max_new_tokens = 100;
  options.temperature = 5.0;  // flat: every used id has a real chance
  options.top_k = 0;
  absl::StatusOr<std::vector<int>> a = SampleTokens(*model, {1, 2, 3}, options);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->size(), 100u);
  for (int id : *a) ASSERT_LT(id, 200);
  absl::StatusOr<std::vector<int>> b = SampleTokens(*model, {1, 2, 3}, options);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);

  EXPECT_EQ(SampleTokens(*model, {1, 250}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SampleTokens(*model, {}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.temperature = 0;
  EXPECT_EQ(SampleTokens(*model, {1}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twist::client
