// The coordinator's exposure policy (ExposureFor): which listen addresses,
// TLS flags and token files go together, decided without a server.
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/rpc/security.h"
#include "gtest/gtest.h"

namespace twist::common {
namespace {

constexpr char kRefusal[] =
    " without TLS and tokens: anyone on the network could submit jobs or pose "
    "as a worker. Give --tls_cert/--tls_key and "
    "--client_token_file/--worker_token_file (see docs/security.md), or pass "
    "--insecure on a network you trust";

ExposureOptions Loopback() {
  ExposureOptions options;
  options.listen = "127.0.0.1:7070";
  options.http = "127.0.0.1:8080";
  return options;
}

void WithTls(ExposureOptions* options) {
  options->security.tls_cert_file = "server.pem";
  options->security.tls_key_file = "server.key";
}

void WithTokens(ExposureOptions* options) {
  options->security.client_token_file = "client.token";
  options->security.worker_token_file = "worker.token";
}

TEST(ExposurePolicyTest, LoopbackNeedsNeitherTlsNorTokens) {
  for (const std::string host : {"127.0.0.1", "127.3.2.1", "localhost", "[::1]"}) {
    ExposureOptions options;
    options.listen = host + ":7070";
    options.http = host + ":0";
    absl::StatusOr<Exposure> exposure = ExposureFor(options);
    ASSERT_TRUE(exposure.ok()) << host << ": " << exposure.status();
    EXPECT_EQ(exposure->listen_host, host);
    EXPECT_EQ(exposure->listen_port, 7070);
    EXPECT_TRUE(exposure->serve_http);
    EXPECT_EQ(exposure->http_host, host);
    EXPECT_EQ(exposure->http_port, 0);
    EXPECT_FALSE(exposure->insecure);
    EXPECT_EQ(exposure->warning, "");
  }
}

TEST(ExposurePolicyTest, AnEmptyHttpAddressTurnsHttpOff) {
  ExposureOptions options = Loopback();
  options.http = "";
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_FALSE(exposure->serve_http);
  EXPECT_EQ(exposure->http_host, "");
}

TEST(ExposurePolicyTest, BeyondLoopbackWithoutTlsAndTokensIsRefused) {
  ExposureOptions options = Loopback();
  options.listen = "0.0.0.0:7070";
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  EXPECT_EQ(exposure.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(exposure.status().message(),
            std::string("refusing to listen on --listen=0.0.0.0:7070") +
                kRefusal);

  options = Loopback();
  options.http = "10.0.0.1:8080";
  exposure = ExposureFor(options);
  EXPECT_EQ(exposure.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(exposure.status().message(),
            std::string("refusing to listen on --http=10.0.0.1:8080") +
                kRefusal);
}

TEST(ExposurePolicyTest, ListenIsCheckedBeforeHttp) {
  ExposureOptions options;
  options.listen = "0.0.0.0:7070";
  options.http = "0.0.0.0:8080";
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  EXPECT_TRUE(absl::StartsWith(exposure.status().message(),
                               "refusing to listen on --listen=0.0.0.0:7070"))
      << exposure.status();
}

TEST(ExposurePolicyTest, TlsAloneOrTokensAloneIsNotEnoughBeyondLoopback) {
  ExposureOptions tls = Loopback();
  tls.listen = "0.0.0.0:7070";
  WithTls(&tls);
  EXPECT_EQ(ExposureFor(tls).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ExposureOptions tokens = Loopback();
  tokens.listen = "0.0.0.0:7070";
  WithTokens(&tokens);
  EXPECT_EQ(ExposureFor(tokens).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // One token file is enough to turn tokens on.
  ExposureOptions one_token = tls;
  one_token.security.worker_token_file = "worker.token";
  EXPECT_TRUE(ExposureFor(one_token).ok());
}

TEST(ExposurePolicyTest, TlsWithoutTokensServesLoopback) {
  ExposureOptions options = Loopback();
  WithTls(&options);
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_FALSE(exposure->insecure);
}

TEST(ExposurePolicyTest, TlsAndTokensServeAnyAddress) {
  ExposureOptions options;
  options.listen = "0.0.0.0:7070";
  options.http = "[2001:db8::1]:8080";
  WithTls(&options);
  WithTokens(&options);
  options.security.tls_client_ca_file = "ca.pem";
  options.security.require_worker_cert = true;
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_FALSE(exposure->insecure);
  EXPECT_EQ(exposure->warning, "");
  EXPECT_EQ(exposure->listen_host, "0.0.0.0");
  EXPECT_EQ(exposure->http_host, "[2001:db8::1]");
  EXPECT_EQ(exposure->http_port, 8080);
}

TEST(ExposurePolicyTest, InsecureAllowsItWithAWarningOfWhatIsMissing) {
  ExposureOptions options = Loopback();
  options.http = "0.0.0.0:8080";
  options.insecure = true;
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_TRUE(exposure->insecure);
  EXPECT_EQ(exposure->warning,
            "--insecure: listening beyond loopback without TLS and tokens; "
            "anyone who reaches these ports can submit jobs and join as a "
            "worker");

  WithTls(&options);
  exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_TRUE(absl::StartsWith(
      exposure->warning, "--insecure: listening beyond loopback without tokens;"))
      << exposure->warning;

  options.security = ServerSecurity();
  WithTokens(&options);
  exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_TRUE(absl::StartsWith(
      exposure->warning, "--insecure: listening beyond loopback without TLS;"))
      << exposure->warning;
}

TEST(ExposurePolicyTest, InsecureOnLoopbackOrWithTlsAndTokensExposesNothing) {
  ExposureOptions options = Loopback();
  options.insecure = true;
  absl::StatusOr<Exposure> exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_FALSE(exposure->insecure);
  EXPECT_EQ(exposure->warning, "");

  options.listen = "0.0.0.0:7070";
  WithTls(&options);
  WithTokens(&options);
  exposure = ExposureFor(options);
  ASSERT_TRUE(exposure.ok()) << exposure.status();
  EXPECT_FALSE(exposure->insecure);
}

TEST(ExposurePolicyTest, AddressesMustBeHostAndPort) {
  for (const std::string address :
       {"127.0.0.1", ":7070", "localhost:port", "localhost:70000",
        "localhost:-1"}) {
    ExposureOptions options = Loopback();
    options.listen = address;
    absl::StatusOr<Exposure> exposure = ExposureFor(options);
    EXPECT_EQ(exposure.status().code(), absl::StatusCode::kInvalidArgument)
        << address;
    EXPECT_EQ(exposure.status().message(),
              "--listen=" + address + " is not HOST:PORT");
  }
  ExposureOptions options = Loopback();
  options.http = "nowhere";
  EXPECT_EQ(ExposureFor(options).status().message(),
            "--http=nowhere is not HOST:PORT");
  // Even with --insecure: a malformed address is not "beyond loopback".
  options.insecure = true;
  EXPECT_EQ(ExposureFor(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ExposurePolicyTest, TlsFlagsThatNeedEachOtherAreRefusedFirst) {
  const std::string need_tls =
      "--tls_client_ca and --require_worker_cert need TLS: give --tls_cert "
      "and --tls_key";
  ExposureOptions options = Loopback();
  options.security.tls_client_ca_file = "ca.pem";
  EXPECT_EQ(ExposureFor(options).status().message(), need_tls);
  options = Loopback();
  options.security.require_worker_cert = true;
  EXPECT_EQ(ExposureFor(options).status().message(), need_tls);

  options = Loopback();
  options.security.tls_cert_file = "server.pem";
  EXPECT_EQ(ExposureFor(options).status().message(),
            "--tls_cert needs --tls_key (its private key)");

  options = Loopback();
  WithTls(&options);
  options.security.require_worker_cert = true;
  EXPECT_EQ(ExposureFor(options).status().message(),
            "--require_worker_cert needs --tls_client_ca (the CA of the "
            "workers' certificates)");

  // Before the addresses: a bad combination is reported even where the
  // address would be refused too.
  options = Loopback();
  options.listen = "0.0.0.0:7070";
  options.security.tls_cert_file = "server.pem";
  EXPECT_EQ(ExposureFor(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckServerSecurity(options.security).code(),
            absl::StatusCode::kInvalidArgument);
  WithTls(&options);
  EXPECT_TRUE(CheckServerSecurity(options.security).ok());
}

}  // namespace
}  // namespace twist::common
