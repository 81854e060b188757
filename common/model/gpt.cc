#include "common/model/gpt.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/model/chunked_cross_entropy.h"

namespace twist::common {

ScaledLinearImpl::ScaledLinearImpl(int64_t in_features, int64_t out_features) {
  weight =
      register_parameter("weight", torch::empty({out_features, in_features}));
  bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor ScaledLinearImpl::forward(const torch::Tensor& x, double scale) {
  if (scale == 1.0) return torch::linear(x, weight, bias);
  // bias + scale * x W^T in one product (alpha), not three passes.
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight.t(), /*beta=*/1,
                      /*alpha=*/scale)
      .view(sizes);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int n_embd, int n_head,
                                                 int head_dim)
    : n_head_(n_head), head_dim_(head_dim) {
  const int64_t hd = static_cast<int64_t>(n_head) * head_dim;
  c_attn = register_module("c_attn", ScaledLinear(n_embd, 3 * hd));
  c_proj = register_module("c_proj", ScaledLinear(hd, n_embd));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x,
                                               const torch::Tensor& head_mask,
                                               double scale) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  // A sublayer without heads contributes only its output bias.
  if (n_head_ == 0) return c_proj->bias.expand({B, T, C});
  const int64_t H = n_head_, D = head_dim_;
  auto y = HeadOutputs(x);  // (B, H, T, D)
  if (head_mask.defined()) y = y * head_mask.view({1, H, 1, 1});
  y = y.transpose(1, 2).contiguous().view({B, T, H * D});  // (B, T, H*D)
  return c_proj->forward(y, scale);
}

torch::Tensor CausalSelfAttentionImpl::HeadOutputs(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = n_head_, D = head_dim_;
  auto qkv = c_attn->forward(x).split(H * D, /*dim=*/2);  // 3 x (B, T, H*D)
  auto q = qkv[0].view({B, T, H, D}).transpose(1, 2);  // (B, H, T, D)
  auto k = qkv[1].view({B, T, H, D}).transpose(1, 2);
  auto v = qkv[2].view({B, T, H, D}).transpose(1, 2);
  return CausalAttention(q, k, v);  // (B, H, T, D)
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, bool fused) {
#if TORCH_VERSION_MAJOR >= 2
  if (fused) {
    // Scales by 1/sqrt(D) itself.
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{},
                                            /*dropout_p=*/0.0,
                                            /*is_causal=*/true);
  }
#else
  TORCH_CHECK(!fused, "fused attention needs LibTorch 2.0 or newer");
#endif
  const int64_t T = q.size(2), D = q.size(3);
  // 1/sqrt(D) on q (B, H, T, D) rather than on the scores (B, H, T, T).
  auto att = (q * (1.0 / std::sqrt(static_cast<double>(D))))
                 .matmul(k.transpose(-2, -1));  // (B, H, T, T)
  auto future =
      torch::ones({T, T}, torch::dtype(torch::kBool).device(q.device()))
          .triu(/*diagonal=*/1);
  // In place: the product's backward needs q and k, not its output.
  att.masked_fill_(future, -std::numeric_limits<double>::infinity());
  att = torch::softmax(att, /*dim=*/-1);
  return att.matmul(v);  // (B, H, T, D)
}

MlpImpl::MlpImpl(int n_embd, int ffn_width, Activation activation)
    : ffn_width_(ffn_width), activation_(activation) {
  c_fc = register_module("c_fc", ScaledLinear(n_embd, ffn_width));
  c_proj = register_module("c_proj", ScaledLinear(ffn_width, n_embd));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x,
                               const torch::Tensor& column_mask, double scale) {
  if (ffn_width_ == 0) {
    return c_proj->bias.expand({x.size(0), x.size(1), x.size(2)});
  }
  auto h = Hidden(x);  // (B, T, F)
  if (column_mask.defined()) h = h * column_mask;
  return c_proj->forward(h, scale);
}

torch::Tensor MlpImpl::Hidden(const torch::Tensor& x) {
  return activation_ == Activation::kGeluTanh
             ? torch::gelu(c_fc->forward(x), "tanh")  // GPT-2's approximation
             : torch::gelu(c_fc->forward(x));         // exact erf GELU
}

namespace {
torch::nn::LayerNorm MakeLayerNorm(int n_embd) {
  // eps 1e-5 and an affine gain and bias, as torch.nn.LayerNorm's defaults.
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({n_embd}).eps(1e-5).elementwise_affine(true));
}
}  // namespace

BlockImpl::BlockImpl(int n_embd, int n_head, int head_dim, int ffn_width,
                     Activation activation) {
  ln_1 = register_module("ln_1", MakeLayerNorm(n_embd));
  attn = register_module("attn", CausalSelfAttention(n_embd, n_head, head_dim));
  ln_2 = register_module("ln_2", MakeLayerNorm(n_embd));
  mlp = register_module("mlp", Mlp(n_embd, ffn_width, activation));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x,
                                 const torch::Tensor& head_mask,
                                 const torch::Tensor& column_mask,
                                 double attn_scale, double mlp_scale) {
  auto y = x + attn->forward(ln_1->forward(x), head_mask, attn_scale);
  return y + mlp->forward(ln_2->forward(y), column_mask, mlp_scale);
}

TransformerImpl::TransformerImpl(const ModelConfig& config) {
  wte = register_module("wte",
                        torch::nn::Embedding(config.vocab_size, config.n_embd));
  wpe = register_module("wpe",
                        torch::nn::Embedding(config.block_size, config.n_embd));
  h = register_module("h", torch::nn::ModuleList());
  for (int l = 0; l < config.n_layer; ++l) {
    Block block(config.n_embd, config.n_head[l], config.head_dim,
                config.ffn_width[l], config.activation);
    h->push_back(block);
    blocks.push_back(block);
  }
  ln_f = register_module("ln_f", MakeLayerNorm(config.n_embd));
}

GptImpl::GptImpl(const ModelConfig& config) : config_(config) {
  transformer = register_module("transformer", Transformer(config));
  scales_.attn.assign(config.n_layer, 1.0);
  scales_.mlp.assign(config.n_layer, 1.0);
}

torch::Tensor GptImpl::Features(const torch::Tensor& idx,
                                const UnitMasks* masks) {
  const int64_t T = idx.size(1);
  TORCH_CHECK(T <= config_.block_size, "sequence of length ", T,
              " is longer than the model's context ", config_.block_size);
  auto pos = torch::arange(T, torch::dtype(torch::kLong).device(idx.device()));
  auto x = transformer->wte->forward(idx) + transformer->wpe->forward(pos);
  static const torch::Tensor kNoMask;
  for (int l = 0; l < config_.n_layer; ++l) {
    x = transformer->blocks[l]->forward(x, masks ? masks->heads[l] : kNoMask,
                                        masks ? masks->ffn[l] : kNoMask,
                                        scales_.attn[l], scales_.mlp[l]);
  }
  return transformer->ln_f->forward(x);  // (B, T, C)
}

torch::Tensor GptImpl::forward(const torch::Tensor& idx,
                               const UnitMasks* masks) {
  auto x = Features(idx, masks);  // (B, T, C)
  const torch::Tensor padding = PaddingBias(x);  // (V) or undefined
  return padding.defined()
             ? torch::linear(x, transformer->wte->weight, padding)
             : torch::linear(x, transformer->wte->weight);  // (B, T, V), tied
}

torch::Tensor GptImpl::Loss(const torch::Tensor& idx,
                            const torch::Tensor& targets,
                            const UnitMasks* masks) {
  auto x = Features(idx, masks);  // (B, T, C)
  // Block by block: the (B T, V) logits never exist at once.
  return ChunkedCrossEntropy(x.view({-1, x.size(-1)}),  // (B T, C)
                             transformer->wte->weight, PaddingBias(x),
                             targets.reshape({-1}));  // (B T)
}

torch::Tensor GptImpl::PaddingBias(const torch::Tensor& x) const {
  const int64_t used = config_.UsedVocab(), V = config_.vocab_size;
  if (used == V) return torch::Tensor();
  // Padding ids get no probability and no gradient: -inf added by the
  // output product itself, which stays as wide as the padded vocabulary (a
  // multiple of 64, the shape fast matrix kernels want).
  auto padding = torch::zeros({V}, x.options().dtype(torch::kFloat));  // (V)
  padding.narrow(0, used, V - used).fill_(-std::numeric_limits<float>::infinity());
  return padding;
}

void GptImpl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * config_.n_layer);
  // Draw on the CPU so the same seed gives the same model on any device.
  auto normal = [&](torch::Tensor& t, double stddev) {
    auto cpu = torch::empty(t.sizes(), t.options().device(torch::kCPU));
    cpu.normal_(0.0, stddev, gen);
    t.copy_(cpu);
  };
  normal(transformer->wte->weight, 0.02);
  normal(transformer->wpe->weight, 0.02);
  for (auto& block : transformer->blocks) {
    for (auto* norm : {&block->ln_1, &block->ln_2}) {
      (*norm)->weight.fill_(1.0);
      (*norm)->bias.zero_();
    }
    normal(block->attn->c_attn->weight, 0.02);
    block->attn->c_attn->bias.zero_();
    normal(block->attn->c_proj->weight, residual_std);
    block->attn->c_proj->bias.zero_();
    normal(block->mlp->c_fc->weight, 0.02);
    block->mlp->c_fc->bias.zero_();
    normal(block->mlp->c_proj->weight, residual_std);
    block->mlp->c_proj->bias.zero_();
  }
  transformer->ln_f->weight.fill_(1.0);
  transformer->ln_f->bias.zero_();
}

void GptImpl::SetPartialSumScales(const PartialSumScales& scales) {
  TORCH_CHECK(static_cast<int>(scales.attn.size()) == config_.n_layer &&
                  static_cast<int>(scales.mlp.size()) == config_.n_layer,
              "partial-sum scales need one entry per layer");
  scales_ = scales;
}

NamedTensors ParameterTensors(GptImpl& model) {
  NamedTensors out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    out.Set(item.key(), item.value());
  }
  return out;
}

absl::StatusOr<torch::Device> ResolveDevice(const std::string& name) {
  if (name.empty() || name == "auto") {
    if (torch::cuda::is_available()) return torch::Device(torch::kCUDA, 0);
    return torch::Device(torch::kCPU);
  }
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name != "cuda") {
      const std::string rest = name.substr(4);
      if (rest.size() < 2 || rest.size() > 5 || rest[0] != ':' ||
          rest.find_first_not_of("0123456789", 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "device '", name, "' is malformed: use auto, cpu, cuda or cuda:N"));
      }
      index = std::stoi(rest.substr(1));
    }
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device '", name,
          "' requested but this LibTorch has no CUDA or no GPU is visible; "
          "use --device=cpu or build against a CUDA LibTorch"));
    }
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", name, "' does not exist: this machine has ",
                       torch::cuda::device_count(), " CUDA devices"));
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "device '", name, "' is not known: use auto, cpu, cuda or cuda:N"));
}

}  // namespace twist::common
