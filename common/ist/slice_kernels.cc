#include "common/ist/slice_kernels.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <cstring>
#include <type_traits>

namespace twist::common {
namespace {

using c10::BFloat16;

// The shape of a tensor as (outer, along, inner) around `dim`: element
// (o, a, i) lives at o * along * inner + a * inner + i.
struct Layout {
  int64_t outer = 1, along = 1, inner = 1;
};

Layout LayoutOf(const at::Tensor& t, int64_t dim) {
  Layout l;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < dim) {
      l.outer *= t.size(d);
    } else if (d == dim) {
      l.along = t.size(d);
    } else {
      l.inner *= t.size(d);
    }
  }
  return l;
}

// Runs of consecutive positions in `index`: (first position, its place in
// the slice, length). A head's rows or columns, and neighbouring units, are
// copied as one block.
struct Run {
  int64_t from, to, length;
};

std::vector<Run> RunsOf(const std::vector<int64_t>& index) {
  std::vector<Run> runs;
  for (int64_t k = 0, m = static_cast<int64_t>(index.size()); k < m;) {
    int64_t n = 1;
    while (k + n < m && index[k + n] == index[k] + n) ++n;
    runs.push_back({index[k], k, n});
    k += n;
  }
  return runs;
}

// Single elements at scattered positions (FFN columns of c_proj.weight are
// random and mostly not adjacent): a plain indexed loop beats walking runs
// of length one or two.
bool Scattered(const Layout& lf, const std::vector<Run>& runs, size_t m) {
  return lf.inner == 1 && runs.size() * 4 > m;
}

// Element conversion: exact widening, and narrowing to bfloat16 rounded to
// nearest even (c10::BFloat16's constructor, as Tensor::to uses).
template <typename To, typename From>
inline To Convert(From x) {
  if constexpr (std::is_same_v<To, BFloat16>) {
    return BFloat16(static_cast<float>(x));
  } else {
    return static_cast<To>(x);
  }
}

template <typename T, typename O>
void Gather(const T* full, const Layout& lf,
            const std::vector<const std::vector<int64_t>*>& indices,
            const std::vector<O*>& outs) {
  std::vector<std::vector<Run>> runs;
  std::vector<bool> scattered;
  for (const auto* index : indices) {
    runs.push_back(RunsOf(*index));
    scattered.push_back(Scattered(lf, runs.back(), index->size()));
  }
  for (int64_t o = 0; o < lf.outer; ++o) {
    const T* src = full + o * lf.along * lf.inner;
    for (size_t w = 0; w < indices.size(); ++w) {
      const int64_t m = static_cast<int64_t>(indices[w]->size());
      O* dst = outs[w] + o * m * lf.inner;
      if (scattered[w]) {
        const int64_t* index = indices[w]->data();
        for (int64_t k = 0; k < m; ++k) dst[k] = Convert<O>(src[index[k]]);
        continue;
      }
      for (const Run& r : runs[w]) {
        const T* from = src + r.from * lf.inner;
        O* to = dst + r.to * lf.inner;
        const int64_t n = r.length * lf.inner;
        if constexpr (std::is_same_v<T, O>) {
          std::memcpy(to, from, n * sizeof(T));
        } else {
          for (int64_t i = 0; i < n; ++i) to[i] = Convert<O>(from[i]);
        }
      }
    }
  }
}

// The outer step rules of OuterStep, one type each so that each merge loop
// is compiled (and vectorised) for its own arithmetic.
template <typename T>
struct PlainRule {
  static constexpr bool kVelocity = false;
  inline void Step(T& theta, T d, T* /*v*/) const { theta = theta + d; }
};

template <typename T>
struct ScaledRule {
  static constexpr bool kVelocity = false;
  T lr;
  inline void Step(T& theta, T d, T* /*v*/) const { theta = theta + d * lr; }
};

template <typename T>
struct MomentumRule {
  static constexpr bool kVelocity = true;
  T lr, mu;
  bool nesterov;
  inline void Step(T& theta, T d, T* v) const {
    const T g = -d;  // the pseudo-gradient
    const T next = *v * mu + g;
    *v = next;
    const T step = nesterov ? g + next * mu : next;
    theta = theta - step * lr;
  }
};

// Runs of consecutive positions that are all held once, or all shared: each
// becomes one contiguous block per outer index.
struct Block {
  Run run;
  bool single;
};

std::vector<Block> BlocksOf(const std::vector<int64_t>& index,
                            const std::vector<int32_t>& count) {
  std::vector<Block> blocks;
  for (const Run& r : RunsOf(index)) {
    for (int64_t k = 0; k < r.length;) {
      const bool single = count[r.from + k] == 1;
      int64_t n = 1;
      while (k + n < r.length && (count[r.from + k + n] == 1) == single) ++n;
      blocks.push_back({{r.from + k, r.to + k, n}, single});
      k += n;
    }
  }
  return blocks;
}

// theta[i] gets its step for the n positions of a block held once.
template <bool kDelta, typename T, typename U, typename Rule>
inline void StepBlock(T* theta, const U* u, T* v, int64_t n,
                      const Rule& rule) {
  for (int64_t i = 0; i < n; ++i) {
    const T w = Convert<T>(u[i]);
    const T d = kDelta ? w : w - theta[i];
    if constexpr (Rule::kVelocity) {
      rule.Step(theta[i], d, v + i);
    } else {
      rule.Step(theta[i], d, nullptr);
    }
  }
}

// sum[i] accumulates the change of the n positions of a shared block.
template <bool kDelta, typename T, typename U>
inline void AccumulateBlock(T* sum, const T* theta, const U* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T w = Convert<T>(u[i]);
    sum[i] += kDelta ? w : w - theta[i];
  }
}

// Merges outer row `o` of one update.
template <bool kDelta, typename T, typename U, typename Rule>
inline void MergeRow(T* full, const Layout& lf, const std::vector<Block>& blocks,
                     bool scattered, const int64_t* index, int64_t m,
                     const int32_t* count, const U* update, T* sum, T* velocity,
                     const Rule& rule, int64_t o) {
  const int64_t row = o * lf.along * lf.inner;
  T* theta = full + row;
  T* acc = sum == nullptr ? nullptr : sum + row;
  T* vel = velocity == nullptr ? nullptr : velocity + row;
  const U* w = update + o * m * lf.inner;
  if (scattered) {  // inner == 1
    for (int64_t k = 0; k < m; ++k) {
      const int64_t a = index[k];
      if (count[a] == 1) {
        StepBlock<kDelta>(theta + a, w + k, vel == nullptr ? nullptr : vel + a,
                          1, rule);
      } else {
        AccumulateBlock<kDelta>(acc + a, theta + a, w + k, 1);
      }
    }
    return;
  }
  for (const Block& b : blocks) {
    const int64_t at = b.run.from * lf.inner;
    const int64_t n = b.run.length * lf.inner;
    const U* u = w + b.run.to * lf.inner;
    if (b.single) {
      StepBlock<kDelta>(theta + at, u, vel == nullptr ? nullptr : vel + at, n,
                        rule);
    } else {
      AccumulateBlock<kDelta>(acc + at, theta + at, u, n);
    }
  }
}

// All updates of one tensor, one outer row at a time so that a row of the
// full tensor stays in cache while every update merges its part of it;
// within a row, updates go in order, so shared sums add up in update order.
template <typename T, typename U, typename Rule>
void Merge(T* full, const Layout& lf,
           const std::vector<const std::vector<int64_t>*>& indices,
           const std::vector<const U*>& updates,
           const std::vector<bool>& is_delta, const std::vector<int32_t>& count,
           T* sum, T* velocity, const Rule& rule) {
  const size_t n = indices.size();
  std::vector<std::vector<Block>> blocks(n);
  std::vector<bool> scattered(n);
  for (size_t w = 0; w < n; ++w) {
    scattered[w] = Scattered(lf, RunsOf(*indices[w]), indices[w]->size());
    if (!scattered[w]) blocks[w] = BlocksOf(*indices[w], count);
  }
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (size_t w = 0; w < n; ++w) {
      const int64_t m = static_cast<int64_t>(indices[w]->size());
      if (is_delta[w]) {
        MergeRow<true>(full, lf, blocks[w], scattered[w], indices[w]->data(),
                       m, count.data(), updates[w], sum, velocity, rule, o);
      } else {
        MergeRow<false>(full, lf, blocks[w], scattered[w], indices[w]->data(),
                        m, count.data(), updates[w], sum, velocity, rule, o);
      }
    }
  }
}

template <typename T, typename Rule>
void Apply(T* full, const Layout& lf, const std::vector<int32_t>& count,
           const T* sum, T* velocity, const Rule& rule) {
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (int64_t a = 0; a < lf.along; ++a) {
      if (count[a] <= 1) continue;
      const T n = static_cast<T>(count[a]);
      const int64_t at = (o * lf.along + a) * lf.inner;
      for (int64_t i = 0; i < lf.inner; ++i) {
        if constexpr (Rule::kVelocity) {
          rule.Step(full[at + i], sum[at + i] / n, velocity + at + i);
        } else {
          rule.Step(full[at + i], sum[at + i] / n, nullptr);
        }
      }
    }
  }
}

// Calls `f` with the rule of `step` for element type T.
template <typename T, typename F>
void WithRule(const OuterStep& step, F&& f) {
  if (step.plain()) {
    f(PlainRule<T>{});
  } else if (step.momentum == 0.0) {
    f(ScaledRule<T>{static_cast<T>(step.learning_rate)});
  } else {
    f(MomentumRule<T>{static_cast<T>(step.learning_rate),
                      static_cast<T>(step.momentum), step.nesterov});
  }
}

// Zeroes the positions of `sum` with count > 1, where shared changes add up.
template <typename T>
void ZeroShared(T* sum, const Layout& lf, const std::vector<int32_t>& count) {
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (int64_t a = 0; a < lf.along;) {
      if (count[a] <= 1) {
        ++a;
        continue;
      }
      int64_t n = 1;
      while (a + n < lf.along && count[a + n] > 1) ++n;
      std::memset(sum + (o * lf.along + a) * lf.inner, 0,
                  n * lf.inner * sizeof(T));
      a += n;
    }
  }
}

template <typename T>
T* DataOrNull(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

template <typename T, typename U>
std::vector<const U*> UpdatePointers(const std::vector<at::Tensor>& updates) {
  std::vector<const U*> out;
  for (const auto& t : updates) {
    out.push_back(reinterpret_cast<const U*>(t.data_ptr()));
  }
  return out;
}

template <typename T>
void MergeAs(const at::Tensor& full, const Layout& lf,
             const std::vector<const std::vector<int64_t>*>& indices,
             const std::vector<at::Tensor>& updates,
             const std::vector<bool>& is_delta,
             const std::vector<int32_t>& count, const at::Tensor& sum,
             const OuterStep& step, const at::Tensor& velocity) {
  // Updates of one tensor share an element type (one transport dtype per
  // round); mixed ones would be merged in turn, each with its own type.
  const bool narrow =
      !updates.empty() && updates[0].scalar_type() == at::kBFloat16;
  if (sum.defined()) ZeroShared(sum.data_ptr<T>(), lf, count);
  WithRule<T>(step, [&](const auto& rule) {
    if (narrow) {
      Merge(full.data_ptr<T>(), lf, indices,
            UpdatePointers<T, BFloat16>(updates), is_delta, count,
            DataOrNull<T>(sum), DataOrNull<T>(velocity), rule);
    } else {
      Merge(full.data_ptr<T>(), lf, indices, UpdatePointers<T, T>(updates),
            is_delta, count, DataOrNull<T>(sum), DataOrNull<T>(velocity), rule);
    }
  });
}

}  // namespace

bool KernelSupports(const at::Tensor& full, at::ScalarType slice_type) {
  const bool full_ok =
      full.device().is_cpu() && full.is_contiguous() &&
      (full.scalar_type() == at::kFloat || full.scalar_type() == at::kDouble);
  return full_ok && (slice_type == full.scalar_type() ||
                     slice_type == at::kBFloat16);
}

void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs) {
  const Layout lf = LayoutOf(full, dim);
  auto run = [&](auto full_type, auto out_type) {
    using T = decltype(full_type);
    using O = decltype(out_type);
    std::vector<O*> out;
    for (const auto& t : outs) out.push_back(reinterpret_cast<O*>(t.data_ptr()));
    Gather(full.data_ptr<T>(), lf, indices, out);
  };
  const bool narrow =
      !outs.empty() && outs[0].scalar_type() == at::kBFloat16;
  if (full.scalar_type() == at::kFloat) {
    narrow ? run(float(), BFloat16()) : run(float(), float());
  } else {
    narrow ? run(double(), BFloat16()) : run(double(), double());
  }
}

void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum,
                 const OuterStep& step, const at::Tensor& velocity) {
  const Layout lf = LayoutOf(full, dim);
  if (full.scalar_type() == at::kFloat) {
    MergeAs<float>(full, lf, indices, updates, is_delta, count, sum, step,
                   velocity);
  } else {
    MergeAs<double>(full, lf, indices, updates, is_delta, count, sum, step,
                    velocity);
  }
}

void ApplyShared(const at::Tensor& full, int64_t dim,
                 const std::vector<int32_t>& count, const at::Tensor& sum,
                 const OuterStep& step, const at::Tensor& velocity) {
  const Layout lf = LayoutOf(full, dim);
  if (full.scalar_type() == at::kFloat) {
    WithRule<float>(step, [&](const auto& rule) {
      Apply(full.data_ptr<float>(), lf, count, sum.data_ptr<float>(),
            DataOrNull<float>(velocity), rule);
    });
  } else {
    WithRule<double>(step, [&](const auto& rule) {
      Apply(full.data_ptr<double>(), lf, count, sum.data_ptr<double>(),
            DataOrNull<double>(velocity), rule);
    });
  }
}

}  // namespace twist::common
