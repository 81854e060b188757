// A GPT-2-style decoder in LibTorch: pre-LayerNorm blocks, GELU (exact, as
// torch.nn.GELU), learned positions, input and output embeddings tied, biases
// everywhere. Parameter names and shapes are nanoGPT's `GPT`
// ("transformer.h.0.attn.c_attn.weight", ...), so exported weights load there.
//
// Unlike nanoGPT, heads per layer and FFN width per layer are free: the same
// module is the full model and any subnetwork of it (fewer heads of the same
// width D, a narrower FFN, possibly nothing at all in a sublayer, which then
// outputs only its bias). A sublayer's partial sum over its units can be scaled
// before the bias is added, y = s * W x + b, which is how a subnetwork matches
// the full model's output in expectation.
//
// Shapes: see common/model/model_config.h for the legend.
#ifndef TWIST_COMMON_MODEL_GPT_H_
#define TWIST_COMMON_MODEL_GPT_H_

#include <torch/torch.h>
#include <torch/version.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// Per-layer 0/1 masks over units, to run a subnetwork inside the full model
// (the reference the subnetwork is tested against, and pruning scores).
struct UnitMasks {
  std::vector<torch::Tensor> heads;  // per layer, (H_l)
  std::vector<torch::Tensor> ffn;    // per layer, (F_l)
};

// Multipliers of each sublayer's partial sum, per layer; 1 for a full model.
struct PartialSumScales {
  std::vector<double> attn;
  std::vector<double> mlp;
};

// LibTorch 2.0 and newer have scaled_dot_product_attention, which runs
// flash or memory-efficient kernels on CUDA and never materialises the
// (B, H, T, T) scores there; Debian's 1.13 does not.
constexpr bool kHasFusedAttention = TORCH_VERSION_MAJOR >= 2;

// Causal self-attention softmax(q k^T / sqrt(D) + mask) v of q, k, v
// (B, H, T, D) -> (B, H, T, D). `fused` picks scaled_dot_product_attention
// (only where kHasFusedAttention) over the explicit products; both compute
// the same function.
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v,
                              bool fused = kHasFusedAttention);

// y = scale * x W^T + b. Parameters "weight" (out, in) and "bias" (out).
// Either size may be zero.
class ScaledLinearImpl : public torch::nn::Module {
 public:
  ScaledLinearImpl(int64_t in_features, int64_t out_features);
  torch::Tensor forward(const torch::Tensor& x, double scale = 1.0);

  torch::Tensor weight;  // (out, in)
  torch::Tensor bias;    // (out)
};
TORCH_MODULE(ScaledLinear);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int n_embd, int n_head, int head_dim);
  // x (B, T, C) -> (B, T, C). head_mask (H) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& head_mask,
                        double scale);
  // Each head's output before the projection: x (B, T, C) -> (B, H, T, D).
  // Requires at least one head.
  torch::Tensor HeadOutputs(const torch::Tensor& x);

  int n_head() const { return n_head_; }

  ScaledLinear c_attn{nullptr};  // (3*H*D, C): q rows, then k rows, then v rows
  ScaledLinear c_proj{nullptr};  // (C, H*D)

 private:
  int n_head_;
  int head_dim_;
};
TORCH_MODULE(CausalSelfAttention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int n_embd, int ffn_width, Activation activation);
  // x (B, T, C) -> (B, T, C). column_mask (F) or undefined.
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& column_mask, double scale);

  // The activations before the output projection: x (B, T, C) -> (B, T, F).
  torch::Tensor Hidden(const torch::Tensor& x);

  ScaledLinear c_fc{nullptr};    // (F, C)
  ScaledLinear c_proj{nullptr};  // (C, F)

 private:
  int ffn_width_;
  Activation activation_;
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int n_embd, int n_head, int head_dim, int ffn_width,
            Activation activation);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& head_mask,
                        const torch::Tensor& column_mask, double attn_scale,
                        double mlp_scale);

  torch::nn::LayerNorm ln_1{nullptr};
  CausalSelfAttention attn{nullptr};
  torch::nn::LayerNorm ln_2{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

// nanoGPT's `transformer` ModuleDict.
class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& config);

  torch::nn::Embedding wte{nullptr};  // (V, C), also the output projection
  torch::nn::Embedding wpe{nullptr};  // (T, C)
  torch::nn::ModuleList h{nullptr};
  std::vector<Block> blocks;  // the same modules as h, typed
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Transformer);

class GptImpl : public torch::nn::Module {
 public:
  // Parameters are allocated but not initialised; call InitWeights() for a
  // fresh model or copy weights in (LoadParameters in common/model/model_io.h).
  explicit GptImpl(const ModelConfig& config);

  // idx (B, T) int64 token ids, T <= block_size -> logits (B, T, V).
  torch::Tensor forward(const torch::Tensor& idx,
                        const UnitMasks* masks = nullptr);

  // Mean cross-entropy of next-token prediction, targets (B, T), in float32;
  // the logits are computed a block of positions at a time
  // (common/model/chunked_cross_entropy.h), never all at once.
  torch::Tensor Loss(const torch::Tensor& idx, const torch::Tensor& targets,
                     const UnitMasks* masks = nullptr);

  // GPT-2 initialisation: N(0, 0.02) weights and embeddings, N(0, 0.02 /
  // sqrt(2 L)) for the residual projections, zero biases, unit LayerNorm
  // gains. Deterministic for a seed on a given device.
  void InitWeights(uint64_t seed);

  // Scales of each sublayer's partial sum; all 1 after construction.
  void SetPartialSumScales(const PartialSumScales& scales);
  const PartialSumScales& partial_sum_scales() const { return scales_; }

  const ModelConfig& config() const { return config_; }

  Transformer transformer{nullptr};

 private:
  // The final LayerNorm's output: idx (B, T) -> (B, T, C).
  torch::Tensor Features(const torch::Tensor& idx, const UnitMasks* masks);
  // The output product's bias: -inf on the padding ids (V), undefined when
  // the vocabulary has none. In float32, on x's device.
  torch::Tensor PaddingBias(const torch::Tensor& x) const;

  ModelConfig config_;
  PartialSumScales scales_;
};
TORCH_MODULE(Gpt);

// The model's parameters by name, sharing storage with the module (writing
// into them writes the model). The tied embedding appears once.
NamedTensors ParameterTensors(GptImpl& model);

// Picks "cuda" when LibTorch was built with CUDA and a device is visible,
// "cpu" otherwise; an explicit "cpu" or "cuda:N" is checked and returned.
// InvalidArgument for a malformed name, FailedPrecondition for a CUDA device
// that this build or machine does not have.
absl::StatusOr<torch::Device> ResolveDevice(const std::string& name);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_GPT_H_
