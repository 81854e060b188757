#!/usr/bin/env python3
"""Benchmark 3 (PyTorch side): the training step of the same subnetwork in
PyTorch from Python (Debian's python3-torch), with the model of
tests/reference_gpt.py, the same shapes, batch, optimizer (AdamW with decay on
matrices, gradient clipping at 1.0) and threads as bench/worker_step_bench.

    python_step.py --keep=0.5 [--threads=1] [--steps=20] [--n_layer=4 ...]
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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    heads = max(1, round(a.keep * a.n_head))
    ffn = max(1, round(a.keep * 4 * a.n_embd))
    head_dim = a.n_embd // a.n_head
    model = GPT(a.n_layer, a.n_embd, head_dim, [heads] * a.n_layer, [ffn] * a.n_layer,
                a.block_size, 256)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(256, (1 << 20,), dtype=torch.long)

    def step():
        ix = torch.randint(len(data) - a.block_size - 1, (a.batch_size,))
        x = torch.stack([data[i:i + a.block_size] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + a.block_size] for i in ix])
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    step_s = (time.perf_counter() - start) / a.steps
    params = sum(q.numel() for q in model.parameters())
    print("JSON " + json.dumps({
        "bench": "worker_step", "impl": "python", "keep": a.keep, "threads": a.threads,
        "parameters": params, "step_s": step_s,
        "tokens_per_s": a.batch_size * a.block_size / step_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
