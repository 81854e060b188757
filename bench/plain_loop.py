"""The baseline users would pick instead: a plain PyTorch training loop.

Starts from a model file (the job's round-0 weights, `learning_bench init`),
takes the job's batch windows in the job's order (global step g: the batch of
round g // L + 1, slot 0, local step g % L, drawn by the project's SplitMix64
exactly as common/data/batches.cc does), the job's learning-rate schedule
(linear warm-up, cosine to min_lr_ratio of the peak over R * L steps), AdamW
with weight decay on matrices only, and gradient clipping; writes the trained
model as a safetensors file with the input's metadata, so that
`learning_bench score` scores it with the same code as the jobs.

  /usr/bin/python3 bench/plain_loop.py --init=FILE --data=DIR --out=FILE
      --steps=2000 --local_steps=50 --seed=1 --batch_size=12 --lr=1e-3
      --warmup_steps=100 --min_lr_ratio=0.1 --beta1=0.9 --beta2=0.99
      --weight_decay=0.1 --grad_clip=1.0 [--threads=2] [--save_every=N]

With --save_every=N it also writes the model after every N steps (OUT with
the step before the extension, e.g. plain-500.safetensors) and prints a JSON
line for each, with the seconds since training started (the saves' own time
left out): the loop's curve against wall time.
"""
import argparse
import json
import math
import os
import struct
import sys
import time


def threads_from_argv():
    for a in sys.argv[1:]:
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


os.environ["OPENBLAS_NUM_THREADS"] = threads_from_argv()
os.environ["OMP_NUM_THREADS"] = threads_from_argv()
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference_gpt import GPT, load_safetensors  # noqa: E402

MASK = (1 << 64) - 1


def mix64(x):
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def derive_seed(words):
    h = 0x243F6A8885A308D3
    for w in words:
        h = mix64(h ^ mix64((w + 0x9E3779B97F4A7C15) & MASK))
    return h


class SplitMix64:
    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        return mix64(self.state)

    def uniform_below(self, n):
        limit = MASK - (MASK % n)
        x = self.next()
        while x >= limit:
            x = self.next()
        return x % n


BATCH_SEED_TAG = 0x5457495354424154  # "TWISTBAT"


def batch_starts(size, batch, context, seed, round_, slot, step):
    rng = SplitMix64(derive_seed([BATCH_SEED_TAG, seed, round_, slot, step]))
    return [rng.uniform_below(size - context) for _ in range(batch)]


def lr_at(step, peak, min_ratio, warmup, total):
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    low = peak * min_ratio
    if step >= total:
        return low
    progress = (step - warmup) / max(1, total - warmup)
    return low + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - low)


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser()
    for name, kind, default in [
            ("init", str, None), ("data", str, None), ("out", str, None),
            ("steps", int, 2000), ("local_steps", int, 50), ("seed", int, 1),
            ("batch_size", int, 12), ("lr", float, 1e-3),
            ("warmup_steps", int, 100), ("min_lr_ratio", float, 0.1),
            ("beta1", float, 0.9), ("beta2", float, 0.99),
            ("weight_decay", float, 0.1), ("grad_clip", float, 1.0),
            ("threads", int, 1), ("save_every", int, 0)]:
        p.add_argument("--" + name, type=kind, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    state, meta = load_safetensors(a.init)
    ints = lambda key: [int(v) for v in meta[key].split(",") if v]
    model = GPT(int(meta["twist.n_layer"]), int(meta["twist.n_embd"]),
                int(meta["twist.head_dim"]), ints("twist.n_head"),
                ints("twist.ffn_width"), int(meta["twist.block_size"]),
                int(meta["twist.vocab_size"]))
    if "lm_head.weight" not in state:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    model.load_state_dict(state, strict=True)
    context = int(meta["twist.block_size"])
    train = np.memmap(os.path.join(a.data, "train.bin"), dtype="<u2", mode="r")
    # Parameters once each (lm_head is tied to wte).
    params = dict(model.named_parameters())
    decay = [t for n, t in params.items() if t.dim() >= 2]
    no_decay = [t for n, t in params.items() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8)
    model.train()

    def save(path):
        out = {n: t for n, t in model.state_dict().items() if n != "lm_head.weight"
               and not n.endswith(".attn.bias")}
        save_safetensors(path, out, meta)

    start = time.time()
    saving = 0.0  # seconds spent writing intermediate models
    for g in range(a.steps):
        starts = batch_starts(len(train), a.batch_size, context, a.seed,
                              g // a.local_steps + 1, 0, g % a.local_steps)
        x = torch.from_numpy(np.stack([train[s:s + context] for s in starts]).astype(np.int64))
        y = torch.from_numpy(np.stack([train[s + 1:s + 1 + context] for s in starts]).astype(np.int64))
        lr = lr_at(g, a.lr, a.min_lr_ratio, a.warmup_steps, a.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        if a.save_every > 0 and (g + 1) % a.save_every == 0 and g + 1 < a.steps:
            saved_at = time.time()
            base, ext = os.path.splitext(a.out)
            path = f"{base}-{g + 1}{ext}"
            save(path)
            print(json.dumps({"bench": "plain_loop_save", "step": g + 1, "path": path,
                              "elapsed_s": saved_at - start - saving}), flush=True)
            saving += time.time() - saved_at
    wall = time.time() - start - saving
    save(a.out)
    if a.save_every > 0:
        print(json.dumps({"bench": "plain_loop_save", "step": a.steps, "path": a.out,
                          "elapsed_s": wall}), flush=True)
    print(json.dumps({"bench": "plain_loop", "steps": a.steps, "wall_s": wall,
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
