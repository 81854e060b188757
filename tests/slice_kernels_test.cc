// Tests of the slicing and merging kernels (common/ist/slice_kernels.h)
// against LibTorch's own indexing: gathers equal index_select byte for byte,
// and a merge gives the same bytes whatever its tile size.
#include "common/ist/slice_kernels.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace twist::common {
namespace {

// Positions along a dimension of `along`: runs of various lengths starting
// at odd places, and single positions, so that copies start and end off any
// alignment.
std::vector<std::vector<int64_t>> MixedIndices(int64_t along) {
  std::vector<int64_t> a, b, c;
  for (int64_t i = 0; i < along; ++i) {
    if (i % 7 < 3) a.push_back(i);   // runs of 3
    if (i % 5 == 1) b.push_back(i);  // single positions
    if (i > along / 3) c.push_back(i);  // one long run
  }
  return {a, b, c};
}

std::vector<const std::vector<int64_t>*> Pointers(
    const std::vector<std::vector<int64_t>>& indices) {
  std::vector<const std::vector<int64_t>*> out;
  for (const auto& i : indices) out.push_back(&i);
  return out;
}

at::Tensor IndexTensor(const std::vector<int64_t>& index) {
  return at::tensor(index, at::kLong);
}

TEST(SliceKernelsTest, GatherEqualsIndexSelect) {
  at::manual_seed(3);
  // A tensor that fits the caches, and one (16 MB) that does not.
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{24, 128}, {2050, 2047}}) {
    const at::Tensor full = at::randn(shape);
    for (int64_t dim : {0, 1}) {
      const auto indices = MixedIndices(full.size(dim));
      std::vector<at::Tensor> outs;
      for (const auto& index : indices) {
        std::vector<int64_t> s = shape;
        s[dim] = static_cast<int64_t>(index.size());
        outs.push_back(at::full(s, -1.0f));
      }
      GatherSlices(full, dim, Pointers(indices), outs);
      for (size_t k = 0; k < indices.size(); ++k) {
        EXPECT_TRUE(outs[k].equal(full.index_select(dim, IndexTensor(indices[k]))))
            << "shape " << shape[0] << "x" << shape[1] << ", dim " << dim
            << ", slice " << k;
      }
    }
  }
}

// One tensor's merge with the given tile size, on copies of the inputs.
at::Tensor MergeWithTile(const at::Tensor& full, int64_t dim,
                         const std::vector<std::vector<int64_t>>& indices,
                         const std::vector<at::Tensor>& updates,
                         const std::vector<bool>& is_delta,
                         const OuterStep& step, int64_t tile_bytes,
                         at::Tensor* velocity) {
  std::vector<int32_t> count(full.size(dim), 0);
  for (const auto& index : indices) {
    for (int64_t a : index) ++count[a];
  }
  at::Tensor out = full.clone();
  const at::Tensor sum = at::empty({SumElements(full, dim, tile_bytes)});
  *velocity = at::ones_like(full) * 0.1;
  MergeSlices(out, dim, Pointers(indices), updates, is_delta, count, sum, step,
              step.momentum != 0 ? *velocity : at::Tensor(), tile_bytes);
  return out;
}

TEST(SliceKernelsTest, MergeGivesTheSameBytesForAnyTileSize) {
  at::manual_seed(5);
  const at::Tensor full = at::randn({6, 40, 24});  // (outer, along, inner)
  const int64_t dim = 1;
  // Three updates, partly overlapping: positions held once and shared ones,
  // runs that cross any tile boundary.
  const auto indices = MixedIndices(full.size(dim));
  std::vector<at::Tensor> updates;
  for (const auto& index : indices) {
    updates.push_back(full.index_select(dim, IndexTensor(index)) +
                      at::randn({6, static_cast<int64_t>(index.size()), 24}) *
                          0.01);
  }
  OuterStep nesterov;
  nesterov.learning_rate = 0.7;
  nesterov.momentum = 0.9;
  for (const OuterStep& step : {OuterStep(), nesterov}) {
    for (const std::vector<bool>& is_delta :
         {std::vector<bool>{false, false, false},
          std::vector<bool>{true, false, true}}) {
      at::Tensor v_whole, v;
      // A tile larger than a row: the whole row at once.
      const at::Tensor whole = MergeWithTile(full, dim, indices, updates,
                                             is_delta, step, 1 << 30, &v_whole);
      EXPECT_FALSE(whole.equal(full));
      // One position, three positions (runs split at every tile), default.
      for (int64_t tile_bytes : {int64_t{1}, int64_t{3 * 24 * 4}, kMergeTileBytes}) {
        const at::Tensor tiled = MergeWithTile(full, dim, indices, updates,
                                               is_delta, step, tile_bytes, &v);
        EXPECT_TRUE(tiled.equal(whole)) << "tile of " << tile_bytes << " bytes";
        if (step.momentum != 0) EXPECT_TRUE(v.equal(v_whole));
      }
    }
  }
}

TEST(SliceKernelsTest, BFloat16VelocityStepsLikeAFloatOneAndStoresItRounded) {
  at::manual_seed(6);
  const at::Tensor full = at::randn({6, 40, 24});
  const int64_t dim = 1;
  const auto indices = MixedIndices(full.size(dim));
  std::vector<at::Tensor> updates;
  std::vector<int32_t> count(full.size(dim), 0);
  for (const auto& index : indices) {
    for (int64_t a : index) ++count[a];
    updates.push_back(full.index_select(dim, IndexTensor(index)) +
                      at::randn({6, static_cast<int64_t>(index.size()), 24}) *
                          0.01);
  }
  const std::vector<bool> is_delta = {false, true, false};
  OuterStep nesterov;
  nesterov.learning_rate = 0.7;
  nesterov.momentum = 0.9;
  const at::Tensor sum = at::empty({SumElements(full, dim)});
  // The same starting velocity, once widened to float32.
  at::Tensor narrow = (at::randn_like(full) * 0.01).to(at::kBFloat16);
  at::Tensor wide = narrow.to(at::kFloat);
  at::Tensor with_narrow = full.clone(), with_wide = full.clone();
  MergeSlices(with_narrow, dim, Pointers(indices), updates, is_delta, count,
              sum, nesterov, narrow);
  MergeSlices(with_wide, dim, Pointers(indices), updates, is_delta, count, sum,
              nesterov, wide);
  // The round's step is the same to the bit; what is kept for the next
  // round is the float32 velocity rounded to nearest.
  EXPECT_TRUE(with_narrow.equal(with_wide));
  EXPECT_FALSE(with_narrow.equal(full));
  EXPECT_TRUE(narrow.equal(wide.to(at::kBFloat16)));
  EXPECT_FALSE(wide.equal(narrow.to(at::kFloat)));  // rounding did happen
}

// The gathers and merges of every instruction set this CPU runs, against
// the generic kernels', byte for byte: rows and columns, float32 and
// bfloat16 slices and updates, plain and Nesterov steps with float32 and
// bfloat16 velocities, on tensors long enough for every vector loop and its
// tail.
TEST(SliceKernelsTest, EveryInstructionSetGivesTheSameBytes) {
  const std::vector<KernelIsa> isas = SupportedKernelIsas();
  ASSERT_EQ(isas.front(), KernelIsa::kGeneric);
  if (isas.size() == 1) {
    GTEST_SKIP() << "this build or CPU has only the generic kernels";
  }
  const KernelIsa active = ActiveKernelIsa();
  EXPECT_EQ(active, isas.back());  // the widest, unless chosen
  at::manual_seed(8);
  OuterStep nesterov;
  nesterov.learning_rate = 0.7;
  nesterov.momentum = 0.9;
  // Everything one kernel set computes, as a list of tensors.
  auto compute = [&]() {
    std::vector<at::Tensor> out;
    at::manual_seed(9);
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{6, 301, 40}, {64, 1001}}) {
      const at::Tensor full = at::randn(shape);
      const int64_t dim = 1;
      const auto indices = MixedIndices(full.size(dim));
      std::vector<int32_t> count(full.size(dim), 0);
      for (const auto& index : indices) {
        for (int64_t a : index) ++count[a];
      }
      for (at::ScalarType type : {at::kFloat, at::kBFloat16}) {
        std::vector<at::Tensor> slices, updates;
        for (const auto& index : indices) {
          std::vector<int64_t> s = shape;
          s[dim] = static_cast<int64_t>(index.size());
          slices.push_back(at::empty(s, at::TensorOptions().dtype(type)));
          updates.push_back((at::randn(s) * 0.01).to(type));
        }
        GatherSlices(full, dim, Pointers(indices), slices);
        out.insert(out.end(), slices.begin(), slices.end());
        const std::vector<bool> is_delta = {type == at::kBFloat16, false,
                                            type == at::kBFloat16};
        for (at::ScalarType velocity_type : {at::kFloat, at::kBFloat16}) {
          for (const OuterStep& step : {OuterStep(), nesterov}) {
            at::Tensor merged = full.clone();
            at::Tensor velocity =
                (at::randn(shape) * 0.01).to(velocity_type);
            const at::Tensor sum = at::empty({SumElements(full, dim)});
            MergeSlices(merged, dim, Pointers(indices), updates, is_delta,
                        count, sum, step,
                        step.momentum != 0 ? velocity : at::Tensor());
            out.push_back(merged);
            out.push_back(velocity);
          }
        }
      }
    }
    return out;
  };
  ASSERT_TRUE(UseKernelIsa(KernelIsa::kGeneric));
  const std::vector<at::Tensor> want = compute();
  for (KernelIsa isa : isas) {
    ASSERT_TRUE(UseKernelIsa(isa));
    const std::vector<at::Tensor> got = compute();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].scalar_type(), want[i].scalar_type());
      EXPECT_EQ(std::memcmp(got[i].data_ptr(), want[i].data_ptr(),
                            want[i].numel() * want[i].element_size()),
                0)
          << KernelIsaName(isa) << ", result " << i;
    }
  }
  ASSERT_TRUE(UseKernelIsa(active));
}

TEST(SliceKernelsTest, MergeScratchIsOneTile) {
  const at::Tensor ffn_in = at::zeros({3072, 768});  // GPT-2's c_fc weight
  EXPECT_EQ(SumElements(ffn_in, 0, kMergeTileBytes),
            kMergeTileBytes / (768 * 4) * 768);
  // A row of single elements (columns of a matrix) is one tile: the row.
  EXPECT_EQ(SumElements(at::zeros({768, 3072}), 1, kMergeTileBytes), 3072);
  // Never less than one position.
  EXPECT_EQ(SumElements(at::zeros({4, 100000}), 0, 16), 100000);
}

}  // namespace
}  // namespace twist::common
