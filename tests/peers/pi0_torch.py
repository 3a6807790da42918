#!/usr/bin/python3
"""pi0_torch.py — a plain PyTorch port of π0 / π0.5 inference: the peer `make bench-peers`
times pi0rt against.

Written from /work/shared/PI0-SPEC.md; every computation is a torch op (torch.nn.functional,
torch.matmul), numpy only reads the .npy inputs and writes the chunk. It loads the same
safetensors checkpoint directory as pi0rt-infer and takes the same inputs, and does the same
work as the C model: masked cameras and padded prompt slots are left out of the prefix
(equivalent under the attention rule, PI0-SPEC.md §4.4), the last VLM layer computes only
its K/V, and the suffix attends to the prefix cache. Weights are converted to the compute
dtype (float32, or float64 with --dtype f64) once at load, bf16 / f16 checkpoints included.

Usage (mirrors pi0rt-infer):
  pi0_torch.py --model DIR --image base=IMG.npy [--image left_wrist=…] [--image right_wrist=…]
               --state S.npy --tokens T.npy --noise N.npy [--steps N] [--threads N]
               [--repeat N] [--dtype f32|f64] [--json] --out A.npy
The chunk is written in the compute dtype (float32, float64 with --dtype f64).
Images must be uint8 [224, 224, 3] (no resize here). --json prints one line: load_s, the
inference time of every run (runs_ms; inference only: from the loaded inputs to the chunk)
and best_ms, the fastest run after the first (the first alone when --repeat is 1).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# The checkpoint's layout (key names, legacy renames, Gemma variants) is the spec's, shared
# with the numpy reference; the arithmetic below is this port's own.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "ref"))
from pi0_ref import E, L, PROJ, TIED, V, attention_shapes, canonical_key  # noqa: E402

CAMERAS = ("base", "left_wrist", "right_wrist")
CAMERA_ALIASES = {"base_0_rgb": "base", "left_wrist_0_rgb": "left_wrist",
                  "right_wrist_0_rgb": "right_wrist"}
MASK_VALUE = -2.3819763e38  # finite mask score (PI0-SPEC.md §4.4)

UNUSED = ("paligemma_with_expert.gemma_expert.lm_head.",)
STORED = {"F32": (torch.float32, torch.float32), "BF16": (torch.int16, torch.bfloat16),
          "F16": (torch.float16, torch.float16)}


def load_checkpoint(model_dir, dtype):
    """{released key: tensor in dtype}. Each tensor is read straight from the file into its
    own buffer (no mmap of the whole file, no second copy of the weights)."""
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        paths = [single]
    else:
        with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        paths = [os.path.join(model_dir, s) for s in shards]
    out = {}
    for path in paths:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            base = 8 + n
            items = sorted((info["data_offsets"][0], k, info) for k, info in header.items()
                           if k != "__metadata__")
            for start, key, info in items:
                key = canonical_key(key)
                if key.startswith(UNUSED):
                    continue
                if info["dtype"] not in STORED:
                    sys.exit(f"pi0_torch: {path}: tensor {key}: dtype {info['dtype']} "
                             "not supported")
                raw_dt, dt = STORED[info["dtype"]]
                t = torch.empty(info["shape"], dtype=raw_dt)
                f.seek(base + start)
                if f.readinto(t.numpy()) != info["data_offsets"][1] - start:
                    sys.exit(f"pi0_torch: {path}: tensor {key}: file truncated")
                t = t.view(dt)
                out[key] = t if dt == dtype else t.to(dtype)
    return out


class Pi0:
    def __init__(self, model_dir, dtype=torch.float32):
        self.dtype = dtype
        self.t = load_checkpoint(model_dir, dtype)
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.pi05 = "time_mlp_in.weight" in self.t
        pw = self.t[V + "embeddings.patch_embedding.weight"]
        self.vw, self.patch = pw.shape[0], pw.shape[2]
        self.v_depth = self.count(V + "encoder.layers.", "layer_norm1.weight")
        self.v_heads, (self.l_heads, self.l_kv, self.l_hd), (self.e_heads, self.e_kv,
                                                              self.e_hd) = attention_shapes(c)
        self.depth = self.count(L + "layers.", "self_attn.q_proj.weight")
        if self.count(E + "layers.", "self_attn.q_proj.weight") != self.depth:
            sys.exit(f"pi0_torch: {model_dir}: VLM and expert depths differ")
        self.W = self.t[L + "layers.0.self_attn.q_proj.weight"].shape[1]
        self.Ew = self.t[E + "layers.0.self_attn.q_proj.weight"].shape[1]
        self.action_dim = self.t["action_in_proj.weight"].shape[1]
        self.horizon = int(c.get("action_horizon", 50))
        self.num_steps = int(c.get("num_steps", 10))
        self.max_token_len = int(c.get("max_token_len", 200 if self.pi05 else 48))
        self.embed = self.t.get(L + "embed_tokens.weight")
        if self.embed is None:
            self.embed = self.t[TIED]

    def count(self, prefix, probe):
        n = 0
        while f"{prefix}{n}.{probe}" in self.t:
            n += 1
        return n

    def linear(self, x, name, bias=True):
        return F.linear(x, self.t[name + ".weight"], self.t[name + ".bias"] if bias else None)

    # ---- blocks ----------------------------------------------------------------------

    def rmsnorm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def rope(self, x, pos, n_heads, hd):
        """x [T, n_heads·hd], pos [T] (int64); HF rotate_half layout, angles in float64."""
        half = hd // 2
        inv = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float64) / hd)
        ang = pos.to(torch.float64)[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1).to(x.dtype)[:, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1).to(x.dtype)[:, None, :]
        xs = x.view(x.shape[0], n_heads, hd)
        rot = torch.cat([-xs[..., half:], xs[..., :half]], -1)
        return (xs * cos + rot * sin).reshape(x.shape)

    def attention(self, q, k, v, n_heads, n_kv, hd, mask=None):
        """q [Tq, H·hd], k/v [Tk, K·hd], mask bool [Tq, Tk] or None. The query heads that share
        a kv head are stacked into one matmul per kv head (MQA: one for all heads)."""
        tq, tk, rep = q.shape[0], k.shape[0], n_heads // n_kv
        qg = q.view(tq, n_kv, rep, hd).permute(1, 2, 0, 3).reshape(n_kv, rep * tq, hd)
        kh = k.view(tk, n_kv, hd).transpose(0, 1)
        vh = v.view(tk, n_kv, hd).transpose(0, 1)
        s = torch.matmul(qg, kh.transpose(1, 2)) * hd ** -0.5  # [K, rep·Tq, Tk]
        if mask is not None:
            s = s.view(n_kv, rep, tq, tk).masked_fill(~mask, MASK_VALUE).view(n_kv, rep * tq, tk)
        p = torch.softmax(s, dim=-1)
        o = torch.matmul(p, vh)  # [K, rep·Tq, hd]
        return o.view(n_kv, rep, tq, hd).permute(2, 0, 1, 3).reshape(tq, n_heads * hd)

    def gemma_mlp(self, x, pre):
        g = F.linear(x, self.t[pre + "mlp.gate_proj.weight"])
        u = F.linear(x, self.t[pre + "mlp.up_proj.weight"])
        return F.linear(F.gelu(g, approximate="tanh") * u, self.t[pre + "mlp.down_proj.weight"])

    # ---- prefix ----------------------------------------------------------------------

    def vision(self, img):
        """img [3, 224, 224] in [-1, 1] → [n_patches, W] image tokens after the projector."""
        h = F.conv2d(img[None], self.t[V + "embeddings.patch_embedding.weight"],
                     self.t[V + "embeddings.patch_embedding.bias"], stride=self.patch)
        h = h[0].flatten(1).transpose(0, 1) + self.t[V + "embeddings.position_embedding.weight"]
        hd = self.vw // self.v_heads
        for i in range(self.v_depth):
            pre = V + f"encoder.layers.{i}."
            x = F.layer_norm(h, (self.vw,), self.t[pre + "layer_norm1.weight"],
                             self.t[pre + "layer_norm1.bias"], 1e-6)
            q = self.linear(x, pre + "self_attn.q_proj")
            k = self.linear(x, pre + "self_attn.k_proj")
            v = self.linear(x, pre + "self_attn.v_proj")
            a = self.attention(q, k, v, self.v_heads, self.v_heads, hd)
            h = h + self.linear(a, pre + "self_attn.out_proj")
            x = F.layer_norm(h, (self.vw,), self.t[pre + "layer_norm2.weight"],
                             self.t[pre + "layer_norm2.bias"], 1e-6)
            h = h + self.linear(F.gelu(self.linear(x, pre + "mlp.fc1"), approximate="tanh"),
                                pre + "mlp.fc2")
        h = F.layer_norm(h, (self.vw,), self.t[V + "post_layernorm.weight"],
                         self.t[V + "post_layernorm.bias"], 1e-6)
        return self.linear(h, PROJ[:-1])

    def prefix(self, images, tokens):
        """images: [3, 224, 224] of the valid cameras in slot order; tokens: the real prompt
        ids. Returns the K and V of every VLM layer over the valid prefix tokens."""
        parts = [self.vision(img) for img in images]
        parts.append(self.embed[tokens] * math.sqrt(self.W))
        h = torch.cat(parts, 0)
        pos = torch.arange(h.shape[0])
        ks, vs = [], []
        for i in range(self.depth):
            pre = L + f"layers.{i}."
            x = self.rmsnorm(h) * (1.0 + self.t[pre + "input_layernorm.weight"])
            k = self.rope(F.linear(x, self.t[pre + "self_attn.k_proj.weight"]), pos,
                          self.l_kv, self.l_hd)
            v = F.linear(x, self.t[pre + "self_attn.v_proj.weight"])
            ks.append(k)
            vs.append(v)
            if i == self.depth - 1:
                break  # the last layer's output feeds nothing: only its K/V are needed
            q = self.rope(F.linear(x, self.t[pre + "self_attn.q_proj.weight"]), pos,
                          self.l_heads, self.l_hd)
            a = self.attention(q, k, v, self.l_heads, self.l_kv, self.l_hd)
            h = h + F.linear(a, self.t[pre + "self_attn.o_proj.weight"])
            x = self.rmsnorm(h) * (1.0 + self.t[pre + "post_attention_layernorm.weight"])
            h = h + self.gemma_mlp(x, pre)
        return ks, vs

    # ---- suffix ----------------------------------------------------------------------

    def time_embedding(self, t):
        fraction = torch.linspace(0.0, 1.0, self.Ew // 2, dtype=torch.float64)
        period = 4e-3 * (4.0 / 4e-3) ** fraction
        a = t * 2.0 * math.pi / period
        return torch.cat([a.sin(), a.cos()]).to(self.dtype)

    def expert_norm(self, x, name, cond):
        """(1 + w) RMSNorm for π0; adaptive (scale, shift, gate from cond) for π0.5."""
        if not self.pi05:
            return self.rmsnorm(x) * (1.0 + self.t[name + ".weight"]), None
        scale, shift, gate = self.linear(cond, name + ".dense").chunk(3)
        return self.rmsnorm(x) * (1.0 + scale) + shift, gate

    def velocity(self, ks, vs, state, x_t, t):
        H = self.horizon
        temb = self.time_embedding(t)
        act = self.linear(x_t, "action_in_proj")
        if self.pi05:
            cond = F.silu(self.linear(F.silu(self.linear(temb, "time_mlp_in")), "time_mlp_out"))
            h = act
        else:
            cond = None
            st = self.linear(state[None], "state_proj")
            a = torch.cat([act, temb.expand(H, -1)], -1)
            a = self.linear(F.silu(self.linear(a, "action_time_mlp_in")), "action_time_mlp_out")
            h = torch.cat([st, a], 0)
        S, n = h.shape[0], ks[0].shape[0]
        # every suffix token sees the whole (valid) prefix; π0's state token sees only
        # itself of the suffix, the action tokens see all of it
        mask = torch.ones(S, n + S, dtype=torch.bool)
        if not self.pi05:
            mask[0, n + 1:] = False
        pos = n + torch.arange(S)
        for i in range(self.depth):
            pre = E + f"layers.{i}."
            x, gate = self.expert_norm(h, pre + "input_layernorm", cond)
            q = self.rope(F.linear(x, self.t[pre + "self_attn.q_proj.weight"]), pos,
                          self.e_heads, self.e_hd)
            k = self.rope(F.linear(x, self.t[pre + "self_attn.k_proj.weight"]), pos,
                          self.e_kv, self.e_hd)
            v = F.linear(x, self.t[pre + "self_attn.v_proj.weight"])
            a = self.attention(q, torch.cat([ks[i], k]), torch.cat([vs[i], v]), self.e_heads,
                               self.e_kv, self.e_hd, mask)
            o = F.linear(a, self.t[pre + "self_attn.o_proj.weight"])
            h = h + (o if gate is None else gate * o)
            x, gate = self.expert_norm(h, pre + "post_attention_layernorm", cond)
            o = self.gemma_mlp(x, pre)
            h = h + (o if gate is None else gate * o)
        x, _ = self.expert_norm(h, E + "norm", cond)
        return self.linear(x[-H:], "action_out_proj")

    @torch.no_grad()
    def infer(self, images_u8, state, tokens, noise, steps=None):
        """images_u8: {camera: uint8 tensor [224, 224, 3]}; state: [n ≤ action_dim];
        tokens: int64 [n ≤ max_token_len]; noise [horizon, action_dim]. Returns the
        normalized chunk [horizon, action_dim]."""
        imgs = [images_u8[c].permute(2, 0, 1).to(self.dtype) / 255.0 * 2.0 - 1.0
                for c in CAMERAS if c in images_u8]
        ks, vs = self.prefix(imgs, tokens)
        st = torch.zeros(self.action_dim, dtype=self.dtype)
        st[:state.shape[0]] = state
        steps = steps or self.num_steps
        # openpi's schedule: float32 t from 1.0 and float32 dt = −1/steps
        t = torch.tensor(1.0, dtype=torch.float32)
        dt = torch.tensor(-1.0 / steps, dtype=torch.float32)
        x = noise.to(self.dtype).clone()
        for _ in range(steps):
            x = x + float(dt) * self.velocity(ks, vs, st, x, float(t))
            t = t + dt
        return x


def fail(msg):
    print(f"pi0_torch: {msg}", file=sys.stderr)
    sys.exit(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", action="append", default=[], metavar="CAM=FILE.npy")
    ap.add_argument("--state", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--noise", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = torch.float32 if a.dtype == "f32" else torch.float64
    t0 = time.perf_counter()
    m = Pi0(a.model, dtype)
    load_s = time.perf_counter() - t0
    imgs = {}
    for spec in a.image:
        cam, _, path = spec.partition("=")
        cam = CAMERA_ALIASES.get(cam, cam)
        if cam not in CAMERAS:
            fail(f"--image {spec}: unknown camera {cam}")
        img = np.load(path)
        if img.dtype != np.uint8 or img.shape != (224, 224, 3):
            fail(f"{path}: want uint8 [224, 224, 3], got {img.dtype} {list(img.shape)}")
        imgs[cam] = torch.from_numpy(img)
    state = torch.from_numpy(np.load(a.state).astype(np.float64))
    tokens = torch.from_numpy(np.load(a.tokens).astype(np.int64))
    noise = torch.from_numpy(np.load(a.noise).astype(np.float64))
    if state.dim() != 1 or state.shape[0] > m.action_dim:
        fail(f"{a.state}: want [n ≤ {m.action_dim}], got {list(state.shape)}")
    if tokens.dim() != 1 or tokens.shape[0] > m.max_token_len:
        fail(f"{a.tokens}: want [n ≤ {m.max_token_len}], got {list(tokens.shape)}")
    if list(noise.shape) != [m.horizon, m.action_dim]:
        fail(f"{a.noise}: want [{m.horizon}, {m.action_dim}], got {list(noise.shape)}")
    runs = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        chunk = m.infer(imgs, state, tokens, noise, a.steps)
        runs.append((time.perf_counter() - t0) * 1e3)
    np.save(a.out, chunk.numpy())  # float32, or float64 with --dtype f64
    if a.json:
        best = min(runs[1:]) if len(runs) > 1 else runs[0]
        print(json.dumps({"impl": "torch", "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cameras": len(imgs),
                          "tokens": int(tokens.shape[0]), "steps": a.steps or m.num_steps,
                          "load_s": round(load_s, 3), "runs_ms": [round(r, 3) for r in runs],
                          "best_ms": round(best, 3)}), flush=True)


if __name__ == "__main__":
    main()
