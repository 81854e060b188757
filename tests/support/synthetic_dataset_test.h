// A GoogleTest fixture whose test suite shares one small synthetic dataset,
// prepared in-process into a temporary folder before the suite's first test
// and removed after its last.
#ifndef TWIST_TESTS_SUPPORT_SYNTHETIC_DATASET_TEST_H_
#define TWIST_TESTS_SUPPORT_SYNTHETIC_DATASET_TEST_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/in_process_cluster.h"
#include "tests/test_models.h"

namespace twist::testing {

class SyntheticDatasetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    auto data = PrepareSyntheticDatasetInProcess(*dir_, 40000);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new std::string(*data);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete data_;
    dir_ = data_ = nullptr;
  }

  // The suite's temporary folder and the dataset in it.
  static inline std::string* dir_ = nullptr;
  static inline std::string* data_ = nullptr;
};

}  // namespace twist::testing

#endif  // TWIST_TESTS_SUPPORT_SYNTHETIC_DATASET_TEST_H_
