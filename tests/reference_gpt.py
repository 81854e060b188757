#!/usr/bin/env python3
"""An independent reference for TwIST's C++ GPT, written against PyTorch.

A plain nanoGPT-style model (torch.nn.Linear, nn.LayerNorm, nn.GELU, nn.Embedding,
the output head tied to the token embedding) loads a model file exported by
TwIST with load_state_dict(strict=True) and runs the tokens of a case file.
It exits 0 when its logits equal the C++ logits stored in the case file.

    reference_gpt.py MODEL.safetensors CASE.safetensors [TOLERANCE]

CASE holds "idx" (B, T) int64 tokens and "logits" (B, T, V) from C++. The
activation is the exact GELU, or its tanh approximation when the model's
metadata says twist.activation=gelu_tanh.

    reference_gpt.py write-hf FOLDER

writes what a Hugging Face GPT-2 checkpoint holds, for a small seeded model
with GPT-2's tanh GELU: FOLDER/model.safetensors with the hub's names and
Conv1D (in, out) layouts, the attention-mask buffers h.N.attn.bias and
h.N.attn.masked_bias, no lm_head (tied); FOLDER/config.json; and
FOLDER/case.safetensors with "idx" and this model's "logits".

The safetensors reader and writer are written here too, so this script needs
only torch.
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn
from torch.nn import functional as F

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
    "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
    "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        if end == begin:
            tensors[name] = torch.empty(entry["shape"], dtype=dtype)
            continue
        buf = bytearray(data[base + begin:base + end])
        tensors[name] = torch.frombuffer(buf, dtype=dtype).reshape(entry["shape"])
    return tensors, metadata


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, head_dim):
        super().__init__()
        self.n_head, self.head_dim = n_head, head_dim
        self.c_attn = nn.Linear(n_embd, 3 * n_head * head_dim)
        self.c_proj = nn.Linear(n_head * head_dim, n_embd)

    def forward(self, x):
        B, T, C = x.size()
        H, D = self.n_head, self.head_dim
        if H == 0:
            return self.c_proj(x.new_zeros(B, T, 0))
        q, k, v = self.c_attn(x).split(H * D, dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, H * D)
        return self.c_proj(y)


NAMES = {v: k for k, v in DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        t = t.contiguous()
        blob = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class MLP(nn.Module):
    def __init__(self, n_embd, width, activation="gelu"):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, width)
        self.gelu = nn.GELU(approximate="tanh" if activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(width, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, head_dim, width, activation):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, head_dim)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, width, activation)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n_layer, n_embd, head_dim, n_head, ffn_width, block_size, vocab_size,
                 activation="gelu"):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head[i], head_dim, ffn_width[i], activation)
                             for i in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT

    def forward(self, idx):
        T = idx.size(1)
        pos = torch.arange(T, dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def write_hf(folder):
    """A seeded GPT-2-shaped model saved as the hub saves GPT-2."""
    import os
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(5)
    n_layer, n_embd, n_head, block_size, vocab_size = 2, 48, 4, 32, 300
    model = GPT(n_layer, n_embd, n_embd // n_head, [n_head] * n_layer,
                [4 * n_embd] * n_layer, block_size, vocab_size, "gelu_tanh")
    with torch.no_grad():
        for p in model.parameters():  # biases and norms away from 0 and 1 too
            p.copy_(torch.randn_like(p) * 0.2)
    tensors = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        hub = name[len("transformer."):]
        tensors[hub] = p.t().contiguous() if hub.endswith(CONV1D) else p
    for i in range(n_layer):  # the hub's mask buffers: not parameters
        tensors[f"h.{i}.attn.bias"] = torch.tril(
            torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_safetensors(f"{folder}/model.safetensors", tensors, {"format": "pt"})
    with open(f"{folder}/config.json", "w") as f:
        json.dump({"model_type": "gpt2", "n_layer": n_layer, "n_embd": n_embd,
                   "n_head": n_head, "n_positions": block_size, "vocab_size": vocab_size,
                   "activation_function": "gelu_new"}, f)
    idx = torch.randint(0, vocab_size, (3, block_size), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        logits = model(idx)
    save_safetensors(f"{folder}/case.safetensors", {"idx": idx, "logits": logits})


def main():
    if sys.argv[1] == "write-hf":
        write_hf(sys.argv[2])
        return
    model_path, case_path = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    state, meta = load_safetensors(model_path)
    ints = lambda key: [int(v) for v in meta[key].split(",") if v]
    model = GPT(int(meta["twist.n_layer"]), int(meta["twist.n_embd"]),
                int(meta["twist.head_dim"]), ints("twist.n_head"),
                ints("twist.ffn_width"), int(meta["twist.block_size"]),
                int(meta["twist.vocab_size"]), meta.get("twist.activation", "gelu"))
    if "lm_head.weight" not in state:  # written only in nanoGPT's layout
        state["lm_head.weight"] = state["transformer.wte.weight"]
    model.load_state_dict(state, strict=True)
    case, _ = load_safetensors(case_path)
    with torch.no_grad():
        logits = model(case["idx"])
    expected = case["logits"].to(logits.dtype)
    err = (logits - expected).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    print(f"reference: max |logits difference| = {err:.3g} (logit scale {scale:.3g})")
    # 3, not 1 (what an exception or a missing module exits with): the
    # logits were computed and differ.
    sys.exit(0 if err <= tolerance * scale else 3)


if __name__ == "__main__":
    main()
