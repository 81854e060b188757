#include "common/slice_kernels.h"

#include <ATen/ATen.h>

#include <cstring>

namespace twist::common {
namespace {

// The shape of a tensor as (outer, along, inner) around `dim`: element
// (o, a, i) lives at o * along * inner + a * inner + i.
struct Layout {
  int64_t outer = 1, along = 1, inner = 1;
};

Layout LayoutOf(const at::Tensor& t, int64_t dim) {
  Layout l;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < dim)
      l.outer *= t.size(d);
    else if (d == dim)
      l.along = t.size(d);
    else
      l.inner *= t.size(d);
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

// Copies one outer row `o` of a slice described by `runs` (m positions).
template <typename T>
inline void GatherRow(const T* full, const Layout& lf,
                      const std::vector<Run>& runs, int64_t m, int64_t o,
                      T* out) {
  const T* src = full + o * lf.along * lf.inner;
  T* dst = out + o * m * lf.inner;
  for (const Run& r : runs) {
    if (r.length * lf.inner == 1) {
      dst[r.to] = src[r.from];
    } else {
      std::memcpy(dst + r.to * lf.inner, src + r.from * lf.inner,
                  r.length * lf.inner * sizeof(T));
    }
  }
}

// Single elements at scattered positions (FFN columns of c_proj.weight are
// random and mostly not adjacent): a plain indexed loop beats walking runs
// of length one or two.
bool Scattered(const Layout& lf, const std::vector<Run>& runs, size_t m) {
  return lf.inner == 1 && runs.size() * 4 > m;
}

template <typename T>
void Gather(const T* full, const Layout& lf,
            const std::vector<const std::vector<int64_t>*>& indices,
            const std::vector<T*>& outs) {
  std::vector<std::vector<Run>> runs;
  for (const auto* index : indices) runs.push_back(RunsOf(*index));
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (size_t w = 0; w < indices.size(); ++w) {
      const int64_t m = static_cast<int64_t>(indices[w]->size());
      if (Scattered(lf, runs[w], m)) {
        const int64_t* index = indices[w]->data();
        const T* src = full + o * lf.along;
        T* dst = outs[w] + o * m;
        for (int64_t k = 0; k < m; ++k) dst[k] = src[index[k]];
      } else {
        GatherRow(full, lf, runs[w], m, o, outs[w]);
      }
    }
  }
}

// Runs of consecutive positions that are all held once, or all shared: each
// becomes one contiguous block per outer index, a loop the compiler
// vectorises.
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

// Merges one outer row `o` of one update (m positions).
template <typename T>
inline void MergeRow(T* full, const Layout& lf,
                     const std::vector<Block>& blocks, int64_t m,
                     const T* update, bool is_delta, T* sum, int64_t o) {
  {
    T* theta = full + o * lf.along * lf.inner;
    T* acc = sum == nullptr ? nullptr : sum + o * lf.along * lf.inner;
    const T* w = update + o * m * lf.inner;
    for (const Block& b : blocks) {
      T* t = theta + b.run.from * lf.inner;
      const T* u = w + b.run.to * lf.inner;
      const int64_t n = b.run.length * lf.inner;
      if (b.single) {
        // The same arithmetic as theta + (sum of one delta) / 1.
        if (is_delta) {
          for (int64_t i = 0; i < n; ++i) t[i] = t[i] + u[i];
        } else {
          for (int64_t i = 0; i < n; ++i) t[i] = t[i] + (u[i] - t[i]);
        }
      } else {
        T* s = acc + b.run.from * lf.inner;
        if (is_delta) {
          for (int64_t i = 0; i < n; ++i) s[i] += u[i];
        } else {
          for (int64_t i = 0; i < n; ++i) s[i] += u[i] - t[i];
        }
      }
    }
  }
}

// MergeRow for scattered single elements (inner == 1), the same arithmetic.
template <typename T>
inline void MergeScatteredRow(T* full, int64_t along, const int64_t* index,
                              int64_t m, const int32_t* count, const T* update,
                              bool is_delta, T* sum, int64_t o) {
  T* theta = full + o * along;
  T* acc = sum == nullptr ? nullptr : sum + o * along;
  const T* u = update + o * m;
  for (int64_t k = 0; k < m; ++k) {
    const int64_t a = index[k];
    const T change = is_delta ? u[k] : u[k] - theta[a];
    if (count[a] == 1) {
      theta[a] = theta[a] + change;
    } else {
      acc[a] += change;
    }
  }
}

template <typename T>
void Merge(T* full, const Layout& lf,
           const std::vector<const std::vector<int64_t>*>& indices,
           const std::vector<const T*>& updates,
           const std::vector<bool>& is_delta, const std::vector<int32_t>& count,
           T* sum) {
  std::vector<std::vector<Block>> blocks;
  std::vector<bool> scattered;
  for (const auto* index : indices) {
    blocks.push_back(BlocksOf(*index, count));
    scattered.push_back(Scattered(lf, RunsOf(*index), index->size()));
  }
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (size_t w = 0; w < indices.size(); ++w) {
      const int64_t m = static_cast<int64_t>(indices[w]->size());
      if (scattered[w]) {
        MergeScatteredRow(full, lf.along, indices[w]->data(), m, count.data(),
                          updates[w], is_delta[w], sum, o);
      } else {
        MergeRow(full, lf, blocks[w], m, updates[w], is_delta[w], sum, o);
      }
    }
  }
}

template <typename T>
void Apply(T* full, const Layout& lf, const std::vector<int32_t>& count,
           const T* sum) {
  for (int64_t o = 0; o < lf.outer; ++o) {
    for (int64_t a = 0; a < lf.along; ++a) {
      if (count[a] <= 1) continue;
      const T n = static_cast<T>(count[a]);
      T* t = full + (o * lf.along + a) * lf.inner;
      const T* s = sum + (o * lf.along + a) * lf.inner;
      for (int64_t i = 0; i < lf.inner; ++i) t[i] = t[i] + s[i] / n;
    }
  }
}

}  // namespace

bool KernelSupports(const at::Tensor& t) {
  return t.device().is_cpu() && t.is_contiguous() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs) {
  const Layout lf = LayoutOf(full, dim);
  if (full.scalar_type() == at::kFloat) {
    std::vector<float*> out;
    for (const auto& t : outs) out.push_back(t.data_ptr<float>());
    Gather(full.data_ptr<float>(), lf, indices, out);
  } else {
    std::vector<double*> out;
    for (const auto& t : outs) out.push_back(t.data_ptr<double>());
    Gather(full.data_ptr<double>(), lf, indices, out);
  }
}

void GatherSlice(const at::Tensor& full, int64_t dim,
                 const std::vector<int64_t>& index, const at::Tensor& out) {
  GatherSlices(full, dim, {&index}, {out});
}

void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum) {
  const Layout lf = LayoutOf(full, dim);
  if (full.scalar_type() == at::kFloat) {
    std::vector<const float*> u;
    for (const auto& t : updates) u.push_back(t.data_ptr<float>());
    Merge(full.data_ptr<float>(), lf, indices, u, is_delta, count,
          sum.defined() ? sum.data_ptr<float>() : nullptr);
  } else {
    std::vector<const double*> u;
    for (const auto& t : updates) u.push_back(t.data_ptr<double>());
    Merge(full.data_ptr<double>(), lf, indices, u, is_delta, count,
          sum.defined() ? sum.data_ptr<double>() : nullptr);
  }
}

void MergeSlice(const at::Tensor& full, int64_t dim,
                const std::vector<int64_t>& index, const at::Tensor& update,
                bool is_delta, const std::vector<int32_t>& count,
                const at::Tensor& sum) {
  MergeSlices(full, dim, {&index}, {update}, {is_delta}, count, sum);
}

void ApplySums(const at::Tensor& full, int64_t dim,
               const std::vector<int32_t>& count, const at::Tensor& sum) {
  const Layout lf = LayoutOf(full, dim);
  if (full.scalar_type() == at::kFloat) {
    Apply(full.data_ptr<float>(), lf, count, sum.data_ptr<float>());
  } else {
    Apply(full.data_ptr<double>(), lf, count, sum.data_ptr<double>());
  }
}

}  // namespace twist::common
