// The language-model loss without the whole logits tensor: the mean
// cross-entropy of linear(x, weight, bias) against the targets, computed a
// block of rows at a time. The logits of a GPT-2 sequence (1024 x 50304
// floats, 206 MB) and their softmax and gradient never exist at once; a block
// holds about 32 MB of them.
//
// With gradients, each block's gradient of the mean loss with respect to its
// logits ((softmax - one-hot) / N) is known in the forward pass already (the
// loss is the graph's end), so it is multiplied into the gradients of x and
// of the weight there and then; the backward pass only scales them by the
// incoming gradient. The arithmetic is that of
// cross_entropy(linear(x, weight, bias), targets) up to the order of
// floating-point sums, with no recomputation; the loss and the gradients are
// computed in float32 (float64 for a float64 model) whatever the forward's
// arithmetic.
#ifndef TWIST_COMMON_MODEL_CHUNKED_CROSS_ENTROPY_H_
#define TWIST_COMMON_MODEL_CHUNKED_CROSS_ENTROPY_H_

#include <torch/torch.h>

#include <cstdint>

namespace twist::common {

// Logit elements per block (rows = max(1, kLogitsPerBlock / V)).
inline constexpr int64_t kLogitsPerBlock = int64_t{1} << 23;

// x (N, C), weight (V, C), bias (V) or undefined, targets (N) int64 in
// [0, V) -> the mean cross-entropy, a float32 (float64) scalar. Gradients flow to x
// and weight (when they require them and grad mode is on), never to bias.
// `rows_per_block` <= 0 picks kLogitsPerBlock / V.
torch::Tensor ChunkedCrossEntropy(const torch::Tensor& x,
                                 const torch::Tensor& weight,
                                 const torch::Tensor& bias,
                                 const torch::Tensor& targets,
                                 int64_t rows_per_block = 0);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_CHUNKED_CROSS_ENTROPY_H_
