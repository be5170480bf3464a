#!/usr/bin/python3
"""gen_torch_train_ref.py: the PyTorch reference for training (tests/test_train_torch_ref.c).

Builds a tiny Llama-family model (GGUF conventions: RoPE on pairs (2i, 2i+1) as llama.cpp's
LLAMA_ROPE_TYPE_NORM, grouped-query attention, SwiGLU, untied output) from a fixed seed, adds a
LoRA adapter on q, k, v, o (rank 4, alpha 8, B nonzero so that dA is too), and computes in float64,
on a batch of 2 rows of 8 tokens with masked targets and two packed segments in row 1:
  - the logits and the mean cross-entropy over unmasked targets;
  - dA and dB of every LoRA pair (the base frozen);
  - the gradient of every base weight for a full fine-tune of the same model without the adapter.
Written with Debian's python3-torch; run `/usr/bin/python3 tests/ref/gen_torch_train_ref.py OUT`.
The test suite reads only the dump, never Python.

Dump layout (little-endian):
  u32 magic 0x52544d53 ("SMTR"), u32 version 1
  i32 n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, B, T, rank, targets (bit mask of
      sm_proj: q=0, k=1, v=2, o=3, gate=4, up=5, down=6)
  f32 alpha, rope_theta, norm_eps
  i32 tokens[B*T], targets[B*T] (-1 masked), seg[B*T]
  f32 weights[n_weights]         in tests/ref/tiny_model.h's order (no biases)
  f32 lora[n_lora]               per layer, per targeted projection in sm_proj order: A (rank, in), B (out, rank)
  f32 logits[B*T*n_vocab]        with the adapter
  f64 loss                       with the adapter
  f32 lora_grads[n_lora]         same layout as lora
  f64 full_loss                  without the adapter
  f32 full_grads[n_weights]      same layout as weights, without the adapter
"""
import struct
import sys

import numpy as np
import torch

MAGIC, VERSION = 0x52544D53, 1
V, C, L, H, KV, F, B, T, R, ALPHA = 64, 32, 2, 4, 2, 48, 2, 8, 4, 8.0
HD = C // H
THETA, EPS = 10000.0, 1e-5
TARGETS = [0, 1, 2, 3]  # q, k, v, o
PROJ = ["q", "k", "v", "o", "gate", "up", "down"]


def proj_shape(p):  # (out, in)
    return {"q": (H * HD, C), "k": (KV * HD, C), "v": (KV * HD, C), "o": (C, H * HD),
            "gate": (F, C), "up": (F, C), "down": (C, F)}[p]


def rope_angles(pos):
    """The angles of kernels.c: theta = pos, then theta *= theta_scale, in float32."""
    theta_scale = np.float32(np.power(np.float32(THETA), np.float32(-2.0) / np.float32(HD)))
    out = np.zeros((len(pos), HD // 2), dtype=np.float64)
    for t, p in enumerate(pos):
        theta = np.float32(p)
        for i in range(HD // 2):
            out[t, i] = float(theta)
            theta = np.float32(theta * theta_scale)
    return torch.tensor(out, dtype=torch.float64)


def rope(x, ang):  # x (N, heads, HD): pairs (2i, 2i+1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def rmsnorm(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def forward(W, lora, tokens, seg):
    """logits (B*T, V); W: dict of weights; lora: dict (l, p) -> (A, B) or None."""
    n = B * T
    start, pos = [], []
    for b in range(B):
        s0 = 0
        for t in range(T):
            if t > 0 and seg[b * T + t] != seg[b * T + t - 1]:
                s0 = t
            start.append(s0)
            pos.append(t - s0)
    ang = rope_angles(pos)
    mask = torch.full((B, T, T), float("-inf"), dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            mask[b, t, start[b * T + t]:t + 1] = 0.0
    s = ALPHA / R

    def project(l, p, x):
        y = x @ W[f"{l}.{p}"].T
        if lora and (l, p) in lora:
            a, bm = lora[(l, p)]
            y = y + s * (x @ a.T) @ bm.T
        return y

    x = W["tok"][torch.tensor(tokens)]
    for l in range(L):
        xn = rmsnorm(x, W[f"{l}.attn_norm"])
        q = rope(project(l, "q", xn).view(n, H, HD), ang)
        k = rope(project(l, "k", xn).view(n, KV, HD), ang)
        v = project(l, "v", xn).view(n, KV, HD)
        q = q.view(B, T, H, HD).transpose(1, 2)
        k = k.view(B, T, KV, HD).transpose(1, 2).repeat_interleave(H // KV, dim=1)
        v = v.view(B, T, KV, HD).transpose(1, 2).repeat_interleave(H // KV, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / HD ** 0.5 + mask[:, None], dim=-1)
        ao = (att @ v).transpose(1, 2).reshape(n, H * HD)
        x = x + project(l, "o", ao)
        xn = rmsnorm(x, W[f"{l}.ffn_norm"])
        g, u = project(l, "gate", xn), project(l, "up", xn)
        x = x + project(l, "down", torch.nn.functional.silu(g) * u)
    return rmsnorm(x, W["out_norm"]) @ W["output"].T


def weight_order():
    order = [("tok", (V, C))]
    for l in range(L):
        order.append((f"{l}.attn_norm", (C,)))
        for p in PROJ:
            if p == "gate":
                order.append((f"{l}.ffn_norm", (C,)))
            order.append((f"{l}.{p}", proj_shape(p)))
    order += [("out_norm", (C,)), ("output", (V, C))]
    return order


def loss_of(logits, targets):
    t = torch.tensor(targets)
    keep = t >= 0
    return torch.nn.functional.cross_entropy(logits[keep], t[keep], reduction="mean")


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "train_ref.bin"
    g = torch.Generator().manual_seed(20261126)
    W = {}
    for name, shape in weight_order():
        if len(shape) == 1:
            W[name] = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            W[name] = 0.15 * torch.randn(shape, generator=g, dtype=torch.float64)
    # round to float32, so that the C side holds exactly these values
    W = {k: v.float().double() for k, v in W.items()}
    lora = {}
    for l in range(L):
        for pi in TARGETS:
            p = PROJ[pi]
            out, inp = proj_shape(p)
            bound = 1.0 / inp ** 0.5  # PEFT's Kaiming-uniform for A
            a = (torch.rand((R, inp), generator=g, dtype=torch.float64) * 2 - 1) * bound
            bm = 0.05 * torch.randn((out, R), generator=g, dtype=torch.float64)  # nonzero, as after some steps
            lora[(l, p)] = (a.float().double(), bm.float().double())
    tokens = torch.randint(0, V, (B * T,), generator=g).tolist()
    targets = torch.randint(0, V, (B * T,), generator=g).tolist()
    for i in (0, 1, 2, 9, 10):  # masked prompt tokens
        targets[i] = -1
    seg = [0] * T + [0] * 5 + [1] * 3  # row 1: two packed sequences

    # LoRA: base frozen
    for a, bm in lora.values():
        a.requires_grad_(True)
        bm.requires_grad_(True)
    logits = forward(W, lora, tokens, seg)
    loss = loss_of(logits, targets)
    loss.backward()

    # full fine-tune: every weight, no adapter
    Wf = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    full_loss = loss_of(forward(Wf, None, tokens, seg), targets)
    full_loss.backward()

    def f32(t):
        return t.detach().numpy().astype("<f4").tobytes()

    with open(out_path, "wb") as f:
        f.write(struct.pack("<II", MAGIC, VERSION))
        mask = sum(1 << p for p in TARGETS)
        f.write(struct.pack("<10i", V, C, L, H, KV, F, B, T, R, mask))
        f.write(struct.pack("<3f", ALPHA, THETA, EPS))
        for arr in (tokens, targets, seg):
            f.write(struct.pack(f"<{B * T}i", *arr))
        for name, _ in weight_order():
            f.write(f32(W[name].flatten()))
        for l in range(L):
            for pi in TARGETS:
                a, bm = lora[(l, PROJ[pi])]
                f.write(f32(a.flatten()))
                f.write(f32(bm.flatten()))
        f.write(f32(logits.flatten()))
        f.write(struct.pack("<d", loss.item()))
        for l in range(L):
            for pi in TARGETS:
                a, bm = lora[(l, PROJ[pi])]
                f.write(f32(a.grad.flatten()))
                f.write(f32(bm.grad.flatten()))
        f.write(struct.pack("<d", full_loss.item()))
        for name, _ in weight_order():
            f.write(f32(Wf[name].grad.flatten()))
    print(f"{out_path}: loss {loss.item():.9f} (LoRA), {full_loss.item():.9f} (full), torch {torch.__version__}")


if __name__ == "__main__":
    main()
