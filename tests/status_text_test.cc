// Tests of the status documents: the JSON of /api/v1/... and the Prometheus
// text of /metrics, built from the same messages the gRPC API returns.
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/prometheus_text.h"
#include "coordinator/status_json.h"
#include "gtest/gtest.h"

namespace twist::coordinator {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Job 3, "a\"b": a running local_sgd job at round 7 of 10.
twist::v1::Job RunningJob() {
  twist::v1::Job job;
  job.set_id(3);
  job.mutable_spec()->set_name("a\"b");
  job.mutable_spec()->set_mode(twist::v1::MODE_LOCAL_SGD);
  job.mutable_spec()->set_rounds(10);
  job.mutable_spec()->set_seed(1);
  job.mutable_spec()->mutable_model()->set_n_layer(4);
  job.mutable_spec()->mutable_optimizer()->set_learning_rate(0.001);
  job.mutable_spec()->mutable_data()->set_path("/data/brown");
  job.mutable_spec()->set_round_deadline_s(600);
  job.set_state(twist::v1::JOB_STATE_RUNNING);
  job.set_round(7);
  job.set_created_at(1700000000.5);
  job.set_started_at(1700000001);
  job.set_parameters(12345);
  job.set_last_train_loss(2.5);
  job.set_bytes_sent_total(1000);
  job.set_bytes_received_total(2000);
  job.set_last_round_duration_s(1.5);
  return job;
}

twist::v1::WorkerInfo Worker(const std::string& id, const std::string& name,
                             bool live) {
  twist::v1::WorkerInfo w;
  w.set_id(id);
  w.set_name(name);
  w.set_device("cpu");
  w.set_capacity(2);
  w.set_threads(8);
  w.set_address("10.0.0.1:5000");
  w.set_joined_at(1700000000);
  w.set_last_heartbeat_at(1700000100);
  w.set_live(live);
  w.set_status(live ? "idle" : "dropped");
  w.set_tokens_per_s(1500.5);
  w.set_resident_parameters(777);
  w.set_rounds_done(4);
  return w;
}

TEST(StatusJsonTest, JobSummaryHasEveryFieldWithNullForWhatIsAbsent) {
  const json expected = {
      {"id", 3},
      {"name", "a\"b"},
      {"state", "running"},
      {"reason", ""},
      {"mode", "local_sgd"},
      {"round", 7},
      {"rounds_total", 10},
      {"created_at", 1700000000.5},
      {"started_at", 1700000001.0},
      {"finished_at", nullptr},
      {"parameters", 12345},
      {"last_train_loss", 2.5},
      {"last_val_loss", nullptr},
      {"bytes_sent_total", 1000},
      {"bytes_received_total", 2000},
      {"rejected_updates_total", 0},
      {"notice", ""},
  };
  EXPECT_EQ(JobSummaryJson(RunningJob()), expected)
      << JobSummaryJson(RunningJob()).dump(2);
}

TEST(StatusJsonTest, StatesModesAndNonFiniteLosses) {
  twist::v1::Job job = RunningJob();
  job.set_state(twist::v1::JOB_STATE_FAILED);
  job.set_reason("worker lost");
  job.mutable_spec()->set_mode(twist::v1::MODE_TWIST);
  job.set_last_train_loss(kNaN);
  job.set_last_val_loss(std::numeric_limits<double>::infinity());
  job.set_finished_at(1700000050.25);
  const json j = JobSummaryJson(job);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["reason"], "worker lost");
  EXPECT_EQ(j["mode"], "twist");
  EXPECT_TRUE(j["last_train_loss"].is_null());
  EXPECT_TRUE(j["last_val_loss"].is_null());
  EXPECT_EQ(j["finished_at"], 1700000050.25);
  // null, not NaN: the document must stay valid JSON.
  EXPECT_EQ(j.dump().find("NaN"), std::string::npos) << j.dump();
  EXPECT_EQ(j.dump().find("nan"), std::string::npos) << j.dump();
}

TEST(StatusJsonTest, RoundJsonHasNullTrainLossForRoundZeroAndNaN) {
  twist::v1::RoundRecord zero;
  zero.set_round(0);
  zero.set_train_loss(5.0);  // ignored: round 0 does not train
  zero.set_has_val_loss(true);
  zero.set_val_loss(5.5);
  const json z = RoundJson(zero);
  EXPECT_TRUE(z["train_loss"].is_null());
  EXPECT_EQ(z["val_loss"], 5.5);
  EXPECT_EQ(z["tokens_per_s"], 0.0);  // no duration
  EXPECT_TRUE(z["finished_at"].is_null());
  EXPECT_EQ(z["workers"], json::array());

  twist::v1::RoundRecord r;
  r.set_round(3);
  r.set_train_loss(kNaN);
  r.set_bytes_sent(10);
  r.set_bytes_received(20);
  r.set_duration_s(2);
  r.set_merge_s(0.25);
  r.set_eval_s(0.5);
  r.set_tokens(1000);
  r.set_finished_at(1700000002);
  auto* w = r.add_workers();
  w->set_worker_id("w1");
  w->set_worker_name("alpha");
  w->set_slot(0);
  w->set_accepted(false);
  w->set_reason("update rejected: NaN");
  w->set_train_loss(kNaN);
  w->set_tokens(500);
  w->set_compute_s(1.25);
  w->set_receive_s(0.125);
  w->set_send_s(0.0625);
  w->set_bytes_sent(4);
  w->set_bytes_received(8);
  w->set_parameters(99);
  const json expected = {
      {"round", 3},
      {"train_loss", nullptr},
      {"val_loss", nullptr},
      {"bytes_sent", 10},
      {"bytes_received", 20},
      {"duration_s", 2.0},
      {"merge_s", 0.25},
      {"eval_s", 0.5},
      {"tokens", 1000},
      {"tokens_per_s", 500.0},
      {"finished_at", 1700000002.0},
      {"deadline_s", 0.0},
      {"workers", json::array({json{
                      {"worker_id", "w1"},
                      {"worker_name", "alpha"},
                      {"slot", 0},
                      {"accepted", false},
                      {"reason", "update rejected: NaN"},
                      {"train_loss", nullptr},
                      {"tokens", 500},
                      {"compute_s", 1.25},
                      {"steps_ahead", 0},
                      {"receive_s", 0.125},
                      {"send_s", 0.0625},
                      {"bytes_sent", 4},
                      {"bytes_received", 8},
                      {"parameters", 99},
                      {"seconds", 0.0},
                      {"idle_fraction", 0.0},
                  }})},
  };
  EXPECT_EQ(RoundJson(r), expected) << RoundJson(r).dump(2);
}

TEST(StatusJsonTest, WorkerJsonNamesEveryField) {
  const json expected = {
      {"id", "w1"},
      {"name", "alpha"},
      {"device", "cpu"},
      {"capacity", 2.0},
      {"threads", 8},
      {"address", "10.0.0.1:5000"},
      {"joined_at", 1700000000.0},
      {"last_heartbeat_at", 1700000100.0},
      {"live", true},
      {"status", "idle"},
      {"tokens_per_s", 1500.5},
      {"resident_parameters", 777},
      {"rounds_done", 4},
  };
  EXPECT_EQ(WorkerJson(Worker("w1", "alpha", true)), expected);
}

TEST(StatusJsonTest, JobDetailHasTheSpecRoundsAndOnlyLiveWorkers) {
  twist::v1::Job job = RunningJob();
  job.add_rounds()->set_round(0);
  job.add_rounds()->set_round(1);
  const json j = JobDetailJson(
      job, {Worker("w1", "alpha", true), Worker("w2", "beta", false),
            Worker("w3", "gamma", true)});
  // The summary's fields are all there.
  const json summary = JobSummaryJson(job);
  for (const auto& [key, value] : summary.items()) {
    EXPECT_EQ(j[key], value) << key;
  }
  ASSERT_TRUE(j["workers"].is_array());
  ASSERT_EQ(j["workers"].size(), 2u);
  EXPECT_EQ(j["workers"][0]["id"], "w1");
  EXPECT_EQ(j["workers"][1]["id"], "w3");
  ASSERT_EQ(j["rounds"].size(), 2u);
  EXPECT_EQ(j["rounds"][1]["round"], 1);

  // The spec in protobuf's JSON mapping with the .proto's field names.
  ASSERT_TRUE(j.contains("spec")) << j.dump(2);
  const json& spec = j["spec"];
  ASSERT_TRUE(spec.is_object());
  EXPECT_EQ(spec["name"], "a\"b");
  EXPECT_EQ(spec["mode"], "MODE_LOCAL_SGD");
  EXPECT_EQ(spec["rounds"], 10);
  EXPECT_EQ(spec["seed"], "1");  // 64-bit integers are strings in that mapping
  EXPECT_EQ(spec["model"]["n_layer"], 4);
  EXPECT_EQ(spec["optimizer"]["learning_rate"], 0.001);
  EXPECT_EQ(spec["data"]["path"], "/data/brown");
  EXPECT_EQ(spec["round_deadline_s"], 600.0);
  // Zero fields are printed too, under their own names.
  EXPECT_EQ(spec["max_workers"], 0);
  EXPECT_EQ(spec["heads_per_worker"], 0);
  EXPECT_EQ(spec["capacity_weighted"], false);
  EXPECT_FALSE(spec.contains("headsPerWorker"));
  EXPECT_FALSE(spec.contains("roundDeadlineS"));
}

// One metric family of the exposition: its HELP, TYPE and sample lines.
struct Family {
  std::string type;
  std::string help;
  std::vector<std::string> samples;
};

// Parses the text format, checking its structure: every family opens with
// "# HELP name ..." then "# TYPE name type", is declared once, and is followed
// only by its own samples. Fills `order` with the family names in order.
std::map<std::string, Family> ParseExposition(const std::string& text,
                                              std::vector<std::string>* order) {
  std::map<std::string, Family> families;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line, current;
  bool expect_type = false;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      EXPECT_FALSE(expect_type) << "HELP without TYPE before: " << line;
      const std::string rest = line.substr(7);
      current = rest.substr(0, rest.find(' '));
      EXPECT_EQ(families.count(current), 0u)
          << "family declared twice: " << current;
      families[current].help = rest.substr(current.size() + 1);
      EXPECT_FALSE(families[current].help.empty()) << current;
      order->push_back(current);
      expect_type = true;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      EXPECT_TRUE(expect_type) << "TYPE without HELP: " << line;
      const std::string rest = line.substr(7);
      EXPECT_EQ(rest.substr(0, rest.find(' ')), current) << line;
      families[current].type = rest.substr(current.size() + 1);
      expect_type = false;
    } else {
      EXPECT_FALSE(expect_type) << "sample before TYPE: " << line;
      const std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_EQ(name, current) << "sample outside its family: " << line;
      EXPECT_NE(line.find(' '), std::string::npos) << line;
      families[current].samples.push_back(line);
    }
  }
  return families;
}

std::vector<twist::v1::Job> TwoJobs() {
  twist::v1::Job completed;
  completed.set_id(4);
  completed.mutable_spec()->set_name("back\\slash\nline");
  completed.mutable_spec()->set_rounds(2);
  completed.set_state(twist::v1::JOB_STATE_COMPLETED);
  completed.set_round(2);
  completed.set_last_train_loss(kNaN);
  completed.set_last_val_loss(3.25);
  completed.set_bytes_sent_total(5);
  completed.set_bytes_received_total(6);
  completed.set_last_round_duration_s(0.75);
  return {RunningJob(), completed};
}

TEST(PrometheusTextTest, FamiliesAreDeclaredOnceAndHoldOnlyTheirSamples) {
  std::vector<std::string> order;
  const std::map<std::string, Family> families = ParseExposition(
      PrometheusText(TwoJobs(),
                     {Worker("w1", "alpha", true), Worker("w2", "beta", false)},
                     42),
      &order);
  EXPECT_EQ(order, (std::vector<std::string>{
                       "twist_coordinator_incarnation",
                       "twist_job_state",
                       "twist_job_round",
                       "twist_job_rounds_planned",
                       "twist_job_train_loss",
                       "twist_job_validation_loss",
                       "twist_job_sent_bytes_total",
                       "twist_job_received_bytes_total",
                       "twist_job_rejected_updates_total",
                       "twist_stale_updates_total",
                       "twist_job_round_duration_seconds",
                       "twist_workers_live",
                       "twist_worker_up",
                       "twist_worker_tokens_per_second",
                       "twist_worker_last_heartbeat_timestamp_seconds",
                   }));
  for (const auto& [name, family] : families) {
    const bool total =
        name.size() > 6 && name.substr(name.size() - 6) == "_total";
    if (family.type == "counter") {
      EXPECT_TRUE(total) << name << ": counters end in _total";
    } else {
      EXPECT_EQ(family.type, "gauge") << name;
      EXPECT_FALSE(total) << name << ": only counters end in _total";
    }
  }
  EXPECT_EQ(families.at("twist_job_sent_bytes_total").type, "counter");
  EXPECT_EQ(families.at("twist_job_received_bytes_total").type, "counter");
  EXPECT_EQ(families.at("twist_job_state").samples.size(),
            12u);  // 6 states x 2 jobs
  EXPECT_EQ(families.at("twist_job_train_loss").samples.size(), 2u);
  EXPECT_EQ(families.at("twist_job_validation_loss").samples.size(), 1u);
  EXPECT_EQ(families.at("twist_worker_up").samples.size(), 2u);
}

TEST(PrometheusTextTest, ExactSamplesWithEscapedLabels) {
  const std::string text = PrometheusText(
      TwoJobs(), {Worker("w1", "alpha", true), Worker("w2", "be\"ta", false)},
      42);
  std::set<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  const std::vector<std::string> expected = {
      "twist_coordinator_incarnation 42",
      R"(twist_job_round{job_id="3",job_name="a\"b"} 7)",
      R"(twist_job_rounds_planned{job_id="3",job_name="a\"b"} 10)",
      R"(twist_job_train_loss{job_id="3",job_name="a\"b"} 2.5)",
      R"(twist_job_sent_bytes_total{job_id="3",job_name="a\"b"} 1000)",
      R"(twist_job_received_bytes_total{job_id="3",job_name="a\"b"} 2000)",
      R"(twist_job_round_duration_seconds{job_id="3",job_name="a\"b"} 1.5)",
      R"(twist_job_round{job_id="4",job_name="back\\slash\nline"} 2)",
      R"(twist_job_train_loss{job_id="4",job_name="back\\slash\nline"} NaN)",
      R"(twist_job_validation_loss{job_id="4",job_name="back\\slash\nline"} 3.25)",
      R"(twist_job_round_duration_seconds{job_id="4",job_name="back\\slash\nline"} 0.75)",
      "twist_workers_live 1",
      R"(twist_worker_up{worker_id="w1",worker_name="alpha"} 1)",
      R"(twist_worker_up{worker_id="w2",worker_name="be\"ta"} 0)",
      R"(twist_worker_tokens_per_second{worker_id="w1",worker_name="alpha"} 1500.5)",
      R"(twist_worker_last_heartbeat_timestamp_seconds{worker_id="w1",worker_name="alpha"} 1700000100)",
  };
  for (const std::string& line : expected) {
    EXPECT_EQ(lines.count(line), 1u) << "missing: " << line << "\nin:\n"
                                     << text;
  }
  // No validation loss for job 3: it has none yet.
  EXPECT_EQ(text.find(R"(twist_job_validation_loss{job_id="3")"),
            std::string::npos);
}

TEST(PrometheusTextTest, JobStateIsOneHot) {
  const std::string text = PrometheusText(TwoJobs(), {}, 1);
  const std::string running =
      R"(twist_job_state{job_id="3",job_name="a\"b",state=")";
  const std::string done =
      R"(twist_job_state{job_id="4",job_name="back\\slash\nline",state=")";
  for (const std::string state :
       {"queued", "waiting", "running", "completed", "failed", "cancelled"}) {
    const std::string a =
        running + state + "\"} " + (state == "running" ? "1" : "0") + "\n";
    const std::string b =
        done + state + "\"} " + (state == "completed" ? "1" : "0") + "\n";
    EXPECT_NE(text.find(a), std::string::npos) << a << text;
    EXPECT_NE(text.find(b), std::string::npos) << b << text;
  }
}

TEST(PrometheusTextTest, NoJobsOrWorkersStillDeclaresEveryFamily) {
  std::vector<std::string> order;
  const auto families = ParseExposition(PrometheusText({}, {}, 9), &order);
  EXPECT_EQ(order.size(), 15u);
  EXPECT_EQ(families.at("twist_coordinator_incarnation").samples,
            (std::vector<std::string>{"twist_coordinator_incarnation 9"}));
  EXPECT_EQ(families.at("twist_workers_live").samples,
            (std::vector<std::string>{"twist_workers_live 0"}));
  EXPECT_TRUE(families.at("twist_job_state").samples.empty());
}

// Counters and timestamps are exact integers or fractions of a second that a
// float64 holds exactly; the text must not round them.
TEST(PrometheusTextTest, SamplesKeepFullPrecision) {
  twist::v1::Job job = RunningJob();
  job.set_bytes_sent_total(12345678901);  // 12.3 GB: an ordinary long job
  twist::v1::WorkerInfo worker = Worker("w1", "alpha", true);
  worker.set_last_heartbeat_at(1700000100.25);
  const std::string text = PrometheusText({job}, {worker}, 1);
  EXPECT_NE(
      text.find("twist_job_sent_bytes_total{job_id=\"3\",job_name=\"a\\\"b\"} "
                "12345678901\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "twist_worker_last_heartbeat_timestamp_seconds{worker_id=\"w1\","
          "worker_name=\"alpha\"} 1700000100.25\n"),
      std::string::npos)
      << text;
}

TEST(PrometheusTextTest, EscapeLabelValueEscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue(""), "");
}

}  // namespace
}  // namespace twist::coordinator
