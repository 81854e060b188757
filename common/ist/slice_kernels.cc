#include "common/ist/slice_kernels.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
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
// is compiled (and vectorised) for its own arithmetic. `Velocity` is the
// element type the rule's velocity is stored in.
template <typename T>
struct PlainRule {
  static constexpr bool kVelocity = false;
  using Velocity = T;
  inline void Step(T& theta, T d, Velocity* /*v*/) const { theta = theta + d; }
};

template <typename T>
struct ScaledRule {
  static constexpr bool kVelocity = false;
  using Velocity = T;
  T lr;
  inline void Step(T& theta, T d, Velocity* /*v*/) const {
    theta = theta + d * lr;
  }
};

// x rounded to bfloat16, to nearest even: c10::BFloat16's rounding of every
// value but NaN, without its branch for NaN (a velocity is finite: every
// update is checked), so that the merge loops vectorise.
inline BFloat16 NarrowFinite(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += ((bits >> 16) & 1) + 0x7FFF;
  return BFloat16(static_cast<uint16_t>(bits >> 16), BFloat16::from_bits());
}

// Momentum with the velocity stored as V (the model's type or bfloat16).
// The round's step uses the velocity before it is stored: only what carries
// to the next round is rounded.
template <typename T, typename V>
struct MomentumRule {
  static constexpr bool kVelocity = true;
  using Velocity = V;
  T lr, mu;
  bool nesterov;
  inline void Step(T& theta, T d, Velocity* v) const {
    const T g = -d;  // the pseudo-gradient
    const T next = Convert<T>(*v) * mu + g;
    if constexpr (std::is_same_v<V, BFloat16>) {
      *v = NarrowFinite(static_cast<float>(next));
    } else {
      *v = next;
    }
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

// The positions along the merged dimension are worked through in tiles of
// `positions` each, so that a tile of the full tensor and of the shared sums
// stays in cache while every update merges its part of it. A tile holds at
// most `tile_bytes` of one outer row (kMergeTileBytes); a row of single
// elements (inner 1) is one tile.
struct Tiling {
  int64_t positions = 1;  // per tile
  int64_t count = 1;      // tiles per outer row

  int64_t TileOf(int64_t position) const { return position / positions; }
  int64_t First(int64_t tile) const { return tile * positions; }
};

Tiling TilingOf(const Layout& lf, int64_t element_bytes, int64_t tile_bytes) {
  Tiling t;
  t.positions = lf.inner == 1
                    ? lf.along
                    : std::max<int64_t>(1, tile_bytes / (lf.inner * element_bytes));
  t.positions = std::max<int64_t>(1, std::min(t.positions, lf.along));
  t.count = (lf.along + t.positions - 1) / t.positions;
  return t;
}

// Where one update's values go in one tensor, worked out once per tensor:
// contiguous blocks, split at tile boundaries and listed per tile, or (a
// row of single elements, one tile) for scattered columns the (position,
// place in the slice) pairs of positions held once and of shared ones, so
// the per-row loops have no branch on the holder count.
struct UpdatePlan {
  bool scattered = false;
  std::vector<std::vector<Block>> tiles;
  std::vector<int64_t> single_at, single_from;
  std::vector<int64_t> shared_at, shared_from;
};

UpdatePlan PlanUpdate(const Layout& lf, const Tiling& tiling,
                      const std::vector<int64_t>& index,
                      const std::vector<int32_t>& count) {
  UpdatePlan plan;
  const std::vector<Run> runs = RunsOf(index);
  plan.scattered = Scattered(lf, runs, index.size());
  if (plan.scattered) {  // inner 1: one tile
    for (size_t k = 0; k < index.size(); ++k) {
      const bool single = count[index[k]] == 1;
      (single ? plan.single_at : plan.shared_at).push_back(index[k]);
      (single ? plan.single_from : plan.shared_from)
          .push_back(static_cast<int64_t>(k));
    }
    return plan;
  }
  plan.tiles.resize(tiling.count);
  for (const Run& r : runs) {
    for (int64_t k = 0; k < r.length;) {
      const int64_t at = r.from + k;
      const bool single = count[at] == 1;
      const int64_t tile = tiling.TileOf(at);
      const int64_t tile_end = tiling.First(tile) + tiling.positions;
      int64_t n = 1;
      while (k + n < r.length && at + n < tile_end &&
             (count[at + n] == 1) == single) {
        ++n;
      }
      plan.tiles[tile].push_back({{at, r.to + k, n}, single});
      k += n;
    }
  }
  return plan;
}

// The runs of positions along `dim` held more than once, split at tile
// boundaries and listed per tile.
std::vector<std::vector<Run>> SharedRuns(const std::vector<int32_t>& count,
                                         const Tiling& tiling) {
  std::vector<std::vector<Run>> tiles(tiling.count);
  for (int64_t a = 0, along = static_cast<int64_t>(count.size()); a < along;) {
    if (count[a] <= 1) {
      ++a;
      continue;
    }
    const int64_t tile = tiling.TileOf(a);
    const int64_t tile_end = tiling.First(tile) + tiling.positions;
    int64_t n = 1;
    while (a + n < along && a + n < tile_end && count[a + n] > 1) ++n;
    tiles[tile].push_back({a, a, n});
    a += n;
  }
  return tiles;
}

// theta[i] gets its step for the n positions of a block held once.
template <bool kDelta, typename T, typename U, typename Rule>
inline void StepBlock(T* theta, const U* u, typename Rule::Velocity* v,
                      int64_t n, const Rule& rule) {
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

// Merges tile `tile` of outer row `o` of one update. `sum` holds the tile's
// shared changes, from the tile's first position on.
template <bool kDelta, typename T, typename U, typename Rule>
inline void MergeTile(T* full, const Layout& lf, const Tiling& tiling,
                      const UpdatePlan& plan, int64_t m, const U* update,
                      T* sum, typename Rule::Velocity* velocity,
                      const Rule& rule, int64_t o, int64_t tile) {
  const int64_t row = o * lf.along * lf.inner;
  T* theta = full + row;
  typename Rule::Velocity* vel = velocity == nullptr ? nullptr : velocity + row;
  const U* w = update + o * m * lf.inner;
  if (plan.scattered) {  // inner == 1, one tile from position 0
    const int64_t* at = plan.single_at.data();
    const int64_t* from = plan.single_from.data();
    for (size_t i = 0, n = plan.single_at.size(); i < n; ++i) {
      const T x = Convert<T>(w[from[i]]);
      T& t = theta[at[i]];
      const T d = kDelta ? x : x - t;
      if constexpr (Rule::kVelocity) {
        rule.Step(t, d, vel + at[i]);
      } else {
        rule.Step(t, d, nullptr);
      }
    }
    at = plan.shared_at.data();
    from = plan.shared_from.data();
    for (size_t i = 0, n = plan.shared_at.size(); i < n; ++i) {
      const T x = Convert<T>(w[from[i]]);
      sum[at[i]] += kDelta ? x : x - theta[at[i]];
    }
    return;
  }
  const int64_t first = tiling.First(tile);
  for (const Block& b : plan.tiles[tile]) {
    const int64_t at = b.run.from * lf.inner;
    const int64_t n = b.run.length * lf.inner;
    const U* u = w + b.run.to * lf.inner;
    if (b.single) {
      StepBlock<kDelta>(theta + at, u, vel == nullptr ? nullptr : vel + at, n,
                        rule);
    } else {
      AccumulateBlock<kDelta>(sum + (b.run.from - first) * lf.inner, theta + at,
                              u, n);
    }
  }
}

// All updates of one tensor, one tile of an outer row at a time so that the
// tile of the full tensor and its shared sums stay in cache while every
// update merges its part of it; within a tile, updates go in order, so
// shared sums add up in update order. Then the tile's shared positions get
// their step, d = sum / count. The tiling changes only the order in which
// positions are visited, never the arithmetic of one position.
template <typename T, typename U, typename Rule>
void Merge(T* full, const Layout& lf, const Tiling& tiling,
           const std::vector<const std::vector<int64_t>*>& indices,
           const std::vector<const U*>& updates,
           const std::vector<bool>& is_delta, const std::vector<int32_t>& count,
           T* sum, typename Rule::Velocity* velocity, const Rule& rule) {
  const size_t n = indices.size();
  std::vector<UpdatePlan> plans;
  plans.reserve(n);
  for (size_t w = 0; w < n; ++w) {
    plans.push_back(PlanUpdate(lf, tiling, *indices[w], count));
  }
  const std::vector<std::vector<Run>> shared = SharedRuns(count, tiling);
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (int64_t tile = 0; tile < tiling.count; ++tile) {
      const int64_t first = tiling.First(tile);
      for (const Run& r : shared[tile]) {  // the tile's scratch, shared only
        std::memset(sum + (r.from - first) * lf.inner, 0,
                    r.length * lf.inner * sizeof(T));
      }
      for (size_t w = 0; w < n; ++w) {
        const int64_t m = static_cast<int64_t>(indices[w]->size());
        if (is_delta[w]) {
          MergeTile<true>(full, lf, tiling, plans[w], m, updates[w], sum,
                          velocity, rule, o, tile);
        } else {
          MergeTile<false>(full, lf, tiling, plans[w], m, updates[w], sum,
                           velocity, rule, o, tile);
        }
      }
      // The tile's shared positions get their step: d = sum / count.
      auto step = [&](int64_t at, T d) {
        if constexpr (Rule::kVelocity) {
          rule.Step(full[at], d, velocity + at);
        } else {
          rule.Step(full[at], d, nullptr);
        }
      };
      for (const Run& r : shared[tile]) {
        const T* d = sum + (r.from - first) * lf.inner;
        if (lf.inner == 1) {
          // A run of single elements (columns) is one loop, each position
          // with its own count: the same arithmetic, vectorised.
          const int64_t at = o * lf.along + r.from;
          const int32_t* c = count.data() + r.from;
          for (int64_t i = 0; i < r.length; ++i) {
            step(at + i, d[i] / static_cast<T>(c[i]));
          }
          continue;
        }
        for (int64_t a = 0; a < r.length; ++a) {
          const T c = static_cast<T>(count[r.from + a]);
          const int64_t at = (o * lf.along + r.from + a) * lf.inner;
          for (int64_t i = 0; i < lf.inner; ++i) {
            step(at + i, d[a * lf.inner + i] / c);
          }
        }
      }
    }
  }
}

// Calls `f` with the rule of `step` for element type T, its velocity stored
// as `velocity_type` (with momentum: T or bfloat16).
template <typename T, typename F>
void WithRule(const OuterStep& step, at::ScalarType velocity_type, F&& f) {
  if (step.plain()) {
    f(PlainRule<T>{});
  } else if (step.momentum == 0.0) {
    f(ScaledRule<T>{static_cast<T>(step.learning_rate)});
  } else if (velocity_type == at::kBFloat16) {
    f(MomentumRule<T, BFloat16>{static_cast<T>(step.learning_rate),
                                static_cast<T>(step.momentum), step.nesterov});
  } else {
    f(MomentumRule<T, T>{static_cast<T>(step.learning_rate),
                         static_cast<T>(step.momentum), step.nesterov});
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
void MergeAs(const at::Tensor& full, const Layout& lf, const Tiling& tiling,
             const std::vector<const std::vector<int64_t>*>& indices,
             const std::vector<at::Tensor>& updates,
             const std::vector<bool>& is_delta,
             const std::vector<int32_t>& count, const at::Tensor& sum,
             const OuterStep& step, const at::Tensor& velocity) {
  // Updates of one tensor share an element type (one transport dtype per
  // round); mixed ones would be merged in turn, each with its own type.
  const bool narrow =
      !updates.empty() && updates[0].scalar_type() == at::kBFloat16;
  const at::ScalarType velocity_type =
      velocity.defined() ? velocity.scalar_type() : full.scalar_type();
  WithRule<T>(step, velocity_type, [&](const auto& rule) {
    using V = typename std::decay_t<decltype(rule)>::Velocity;
    V* v = velocity.defined() ? reinterpret_cast<V*>(velocity.data_ptr())
                              : nullptr;
    if (narrow) {
      Merge(full.data_ptr<T>(), lf, tiling, indices,
            UpdatePointers<T, BFloat16>(updates), is_delta, count,
            DataOrNull<T>(sum), v, rule);
    } else {
      Merge(full.data_ptr<T>(), lf, tiling, indices,
            UpdatePointers<T, T>(updates), is_delta, count, DataOrNull<T>(sum),
            v, rule);
    }
  });
}

}  // namespace

bool KernelSupports(const at::Tensor& full, at::ScalarType slice_type) {
  const bool full_ok =
      full.device().is_cpu() && full.is_contiguous() &&
      (full.scalar_type() == at::kFloat || full.scalar_type() == at::kDouble);
  return full_ok &&
         (slice_type == full.scalar_type() || slice_type == at::kBFloat16);
}

void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs) {
  const Layout lf = LayoutOf(full, dim);
  auto run = [&](auto full_type, auto out_type) {
    using T = decltype(full_type);
    using O = decltype(out_type);
    std::vector<O*> out;
    for (const auto& t : outs) {
      out.push_back(reinterpret_cast<O*>(t.data_ptr()));
    }
    Gather(full.data_ptr<T>(), lf, indices, out);
  };
  const bool narrow = !outs.empty() && outs[0].scalar_type() == at::kBFloat16;
  if (full.scalar_type() == at::kFloat) {
    narrow ? run(float(), BFloat16()) : run(float(), float());
  } else {
    narrow ? run(double(), BFloat16()) : run(double(), double());
  }
}

int64_t SumElements(const at::Tensor& full, int64_t dim, int64_t tile_bytes) {
  const Layout l = LayoutOf(full, dim);
  return TilingOf(l, full.element_size(), tile_bytes).positions * l.inner;
}

void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum,
                 const OuterStep& step, const at::Tensor& velocity,
                 int64_t tile_bytes) {
  const Layout lf = LayoutOf(full, dim);
  const Tiling tiling = TilingOf(lf, full.element_size(), tile_bytes);
  if (full.scalar_type() == at::kFloat) {
    MergeAs<float>(full, lf, tiling, indices, updates, is_delta, count, sum,
                   step, velocity);
  } else {
    MergeAs<double>(full, lf, tiling, indices, updates, is_delta, count, sum,
                    step, velocity);
  }
}

}  // namespace twist::common
