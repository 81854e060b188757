#!/usr/bin/env python3
"""Benchmark 3 (PyTorch side): the training step of the same subnetwork in
PyTorch from Python (Debian's python3-torch), with the model of
tests/reference_gpt.py, the same shapes, batch, optimizer (AdamW with decay on
matrices, gradient clipping at 1.0) and threads as bench/worker_step_bench.

    python_step.py --keep=0.5 [--threads=1] [--steps=20] [--warmup=3] [--n_layer=4 ...]
                   [--vocab_size=256] [--autocast] [--device=cpu|cuda] [--sdpa]
                   [--activation=gelu|gelu_tanh] [--bench=worker_step]

--autocast runs the forward pass under torch.autocast(dtype=torch.bfloat16),
as a PyTorch user trains in mixed precision; --sdpa computes attention with
F.scaled_dot_product_attention (PyTorch 2.0 and newer), as nanoGPT does.
"""
import argparse
import json
import os
import resource
import sys
import time


def threads_from_argv():
    for a in sys.argv[1:]:
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# torch.set_num_threads does not reach OpenBLAS, which would otherwise use
# every core for matrix products: pin it to the same count before loading.
os.environ["OPENBLAS_NUM_THREADS"] = threads_from_argv()
os.environ["OMP_NUM_THREADS"] = threads_from_argv()
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference_gpt import GPT  # noqa: E402


def sdpa_forward(attn):
    def forward(x):
        B, T, _ = x.size()
        H, D = attn.n_head, attn.head_dim
        q, k, v = attn.c_attn(x).split(H * D, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return attn.c_proj(y.transpose(1, 2).contiguous().view(B, T, H * D))
    return forward


def device_forward(model, device):
    def forward(idx):
        T = idx.size(1)
        pos = torch.arange(T, dtype=torch.long, device=device)
        x = model.transformer.wte(idx) + model.transformer.wpe(pos)
        for block in model.transformer.h:
            x = block(x)
        return model.lm_head(model.transformer.ln_f(x))
    return forward


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--keep", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n_layer", type=int, default=4)
    p.add_argument("--n_head", type=int, default=4)
    p.add_argument("--n_embd", type=int, default=128)
    p.add_argument("--block_size", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--vocab_size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--autocast", action="store_true")
    p.add_argument("--sdpa", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--activation", default="gelu")
    p.add_argument("--bench", default="worker_step")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    heads = max(1, round(a.keep * a.n_head))
    ffn = max(1, round(a.keep * 4 * a.n_embd))
    head_dim = a.n_embd // a.n_head
    model = GPT(a.n_layer, a.n_embd, head_dim, [heads] * a.n_layer, [ffn] * a.n_layer,
                a.block_size, a.vocab_size, a.activation)
    if a.sdpa:
        for block in model.transformer.h:
            block.attn.forward = sdpa_forward(block.attn)
    if device.type != "cpu":
        # The reference builds its position ids and mask on the CPU.
        model.forward = device_forward(model, device)
    model.to(device)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(a.vocab_size, (1 << 20,), dtype=torch.long)

    def step():
        ix = torch.randint(len(data) - a.block_size - 1, (a.batch_size,))
        x = torch.stack([data[i:i + a.block_size] for i in ix]).to(device)
        y = torch.stack([data[i + 1:i + 1 + a.block_size] for i in ix]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.autocast):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # one wait for the device per step, as the C++ loop

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    step_s = (time.perf_counter() - start) / a.steps
    params = sum(q.numel() for q in model.parameters())
    print("JSON " + json.dumps({
        "bench": a.bench, "impl": "python", "keep": a.keep, "threads": a.threads,
        "device": str(device), "compute_dtype": "bfloat16" if a.autocast else "float32",
        "sdpa": a.sdpa, "batch_size": a.batch_size, "context": a.block_size,
        "n_layer": a.n_layer, "n_embd": a.n_embd,
        "parameters": params, "step_s": step_s,
        "tokens_per_s": a.batch_size * a.block_size / step_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
