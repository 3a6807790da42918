#!/usr/bin/python3
"""pi0_ref.py — an independent numpy reference of π0 / π0.5 inference.

Written from /work/shared/PI0-SPEC.md only (no code, tables or constants shared with the C
implementation in pipeline/). Everything is computed in float64 (weights are read as
stored — f32, or bf16/f16 widened exactly — and then promoted), so the reference is more
precise than the fp32 C path it checks.

Deliberately naive where the C code is clever:
  * the prefix is computed over ALL slots (3 cameras × n_patches + max_token_len tokens),
    masked cameras and padded prompt tokens included, with the big_vision attention rule
    (cumsum of ar_mask, both tokens valid) and the finite mask value -2.3819763e38; the C
    code skips those tokens entirely, so agreement checks that the skipping is exact;
  * the suffix attends to the full prefix cache under the same rule;
  * the last VLM layer is computed in full (o_proj, MLP), although nothing uses its output.

Usage (mirrors pi0rt-infer):
  pi0_ref.py --model DIR --image base=IMG.npy [--image left_wrist=…] [--image right_wrist=…]
             --state S.npy --tokens T.npy --noise N.npy [--steps N] --out A.npy
             [--unnormalize] [--dump DIR]
  pi0_ref.py --model DIR --normalize-state RAW.npy --out S.npy      (normalization only)
  pi0_ref.py --model DIR --unnormalize-actions CHUNK.npy --out A.npy
--tokens holds only the real prompt tokens (int32 [n], n ≤ max_token_len); they are padded
with id 0 (mask false) to max_token_len. --dump writes per-stage intermediates for the
VALID tokens only, in the order the C side dumps them:
  vision.npy          [n_valid_cams · n_patches, W]   image tokens after the projector
  prefix_k_{i}.npy    [n_valid_prefix, K·d]            layer i keys (after RoPE)
  prefix_v_{i}.npy    [n_valid_prefix, K·d]            layer i values
  velocity0.npy       [horizon, action_dim]            v(noise, t=1) of the first step
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

CAMERAS = ("base", "left_wrist", "right_wrist")  # model slots base_0_rgb, left_wrist_0_rgb, …
MASK_VALUE = -2.3819763e38

# ---- safetensors -------------------------------------------------------------------------


def _read_safetensors(path, out):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = raw[base + a:base + b]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {key}: dtype {dt} not supported")
        out[key] = arr.reshape(shape)


# Older layouts (PI0-SPEC.md §2): a leading "model.", and the old transformers PaliGemma
# names (language_model.model.layers…, vision_tower / projector without ".model.", the tied
# embedding as language_model.lm_head). Renamed to the released names on load.
LEGACY_RENAMES = (
    ("paligemma_with_expert.paligemma.language_model.model.",
     "paligemma_with_expert.paligemma.model.language_model."),
    ("paligemma_with_expert.paligemma.language_model.lm_head.",
     "paligemma_with_expert.paligemma.lm_head."),
    ("paligemma_with_expert.paligemma.vision_tower.",
     "paligemma_with_expert.paligemma.model.vision_tower."),
    ("paligemma_with_expert.paligemma.multi_modal_projector.",
     "paligemma_with_expert.paligemma.model.multi_modal_projector."),
)


def canonical_key(k):
    if k.startswith("model."):
        k = k[len("model."):]
    for old, new in LEGACY_RENAMES:
        if k.startswith(old):
            return new + k[len(old):]
    return k


def _shard_paths(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        wm = json.load(f)["weight_map"]
    return [os.path.join(model_dir, shard) for shard in sorted(set(wm.values()))]


def load_tensors(model_dir):
    tensors = {}
    for path in _shard_paths(model_dir):
        _read_safetensors(path, tensors)
    return {canonical_key(k): v for k, v in tensors.items()}


def read_shapes(model_dir):
    """{canonical key: shape} from the safetensors headers alone (no tensor data is read)."""
    shapes = {}
    for path in _shard_paths(model_dir):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n).decode("utf-8"))
        for key, info in header.items():
            if key != "__metadata__":
                shapes[canonical_key(key)] = list(info["shape"])
    return shapes


# ---- model description -------------------------------------------------------------------

PREFIXES = ("",)
V = "paligemma_with_expert.paligemma.model.vision_tower.vision_model."
PROJ = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear."
L = "paligemma_with_expert.paligemma.model.language_model."
E = "paligemma_with_expert.gemma_expert.model."
TIED = "paligemma_with_expert.paligemma.lm_head.weight"

# Gemma variants (heads, kv heads, head_dim) as the spec lists them.
VARIANTS = {"gemma_2b": (8, 1, 256), "gemma_300m": (8, 1, 256), "dummy": (8, 1, 16)}


def attention_shapes(c):
    """Heads of SigLIP, and (heads, KV heads, head dim) of the VLM and of the expert, from
    config.json c: explicit keys first, else the named Gemma variant's."""
    vh, vkv, vd = VARIANTS.get(c.get("paligemma_variant", "gemma_2b"), (8, 1, 256))
    eh, ekv, ed = VARIANTS.get(c.get("action_expert_variant", "gemma_300m"), (8, 1, 256))
    return (int(c.get("vision_num_heads", 16)),
            (int(c.get("vlm_num_heads", vh)), int(c.get("vlm_num_kv_heads", vkv)),
             int(c.get("vlm_head_dim", vd))),
            (int(c.get("expert_num_heads", eh)), int(c.get("expert_num_kv_heads", ekv)),
             int(c.get("expert_head_dim", ed))))


class Model:
    def __init__(self, model_dir):
        self.t = load_tensors(model_dir)
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.norm_stats = None
        ns = os.path.join(model_dir, "norm_stats.json")
        if os.path.exists(ns):
            with open(ns) as f:
                self.norm_stats = json.load(f)["norm_stats"]
        c = self.cfg
        self.pi05 = self.has("time_mlp_in.weight")
        pw = self.w(V + "embeddings.patch_embedding.weight")
        self.vw, _, self.patch, _ = pw.shape
        self.n_patches = self.w(V + "embeddings.position_embedding.weight").shape[0]
        self.image = 224
        self.v_depth = self.count(V + "encoder.layers.", "layer_norm1.weight")
        self.v_heads, (self.l_heads, self.l_kv, self.l_hd), (self.e_heads, self.e_kv,
                                                              self.e_hd) = attention_shapes(c)
        self.depth = self.count(L + "layers.", "self_attn.q_proj.weight")
        assert self.count(E + "layers.", "self_attn.q_proj.weight") == self.depth
        self.W = self.w(L + "layers.0.self_attn.q_proj.weight").shape[1]
        self.Ew = self.w(E + "layers.0.self_attn.q_proj.weight").shape[1]
        self.action_dim = self.w("action_in_proj.weight").shape[1]
        self.horizon = int(c.get("action_horizon", 50))
        self.num_steps = int(c.get("num_steps", 10))
        self.max_token_len = int(c.get("max_token_len", 200 if self.pi05 else 48))

    def key(self, name):
        for p in PREFIXES:
            if p + name in self.t:
                return p + name
        return None

    def has(self, name):
        return self.key(name) is not None

    def w(self, name):
        k = self.key(name)
        if k is None:
            raise KeyError(name)
        return self.t[k].astype(np.float64)

    def count(self, prefix, probe):
        n = 0
        while self.has(prefix + f"{n}." + probe):
            n += 1
        return n

    def embed_table(self):
        k = self.key(L + "embed_tokens.weight") or self.key(TIED)
        return self.t[k]


# ---- building blocks ---------------------------------------------------------------------


def linear(x, m, name, bias=True):
    y = x @ m.w(name + ".weight").T
    if bias:
        y = y + m.w(name + ".bias")
    return y


def layernorm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rmsnorm_raw(x, eps=1e-6):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope(x, pos, n_heads, hd, theta=10000.0):
    """x [T, n_heads*hd], pos [T]; HF rotate_half layout."""
    half = hd // 2
    inv = theta ** (-2.0 * np.arange(half) / hd)
    ang = pos[:, None].astype(np.float64) * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)  # [T, hd]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)
    xs = x.reshape(x.shape[0], n_heads, hd)
    rot = np.concatenate([-xs[..., half:], xs[..., :half]], -1)
    out = xs * cos[:, None, :] + rot * sin[:, None, :]
    return out.reshape(x.shape)


def attention(q, k, v, n_heads, n_kv, hd, mask=None):
    """q [Tq, H*hd], k/v [Tk, K*hd], mask bool [Tq, Tk] or None."""
    Tq, Tk = q.shape[0], k.shape[0]
    qh = q.reshape(Tq, n_heads, hd).transpose(1, 0, 2)
    kh = k.reshape(Tk, n_kv, hd).transpose(1, 0, 2)
    vh = v.reshape(Tk, n_kv, hd).transpose(1, 0, 2)
    rep = n_heads // n_kv
    kh = np.repeat(kh, rep, axis=0)
    vh = np.repeat(vh, rep, axis=0)
    s = np.einsum("hqd,hkd->hqk", qh, kh) * hd ** -0.5
    if mask is not None:
        s = np.where(mask[None], s, MASK_VALUE)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(-1, keepdims=True)
    o = np.einsum("hqk,hkd->hqd", p, vh)
    return o.transpose(1, 0, 2).reshape(Tq, n_heads * hd)


def make_att_2d_masks(pad_mask, ar_mask):
    """big_vision rule: q may attend k iff cumsum(ar)[k] <= cumsum(ar)[q], both valid."""
    c = np.cumsum(ar_mask)
    att = c[None, :] <= c[:, None]
    valid = pad_mask[None, :] & pad_mask[:, None]
    return att & valid


# ---- preprocessing -----------------------------------------------------------------------


def resize_with_pad(img, size=224):
    """uint8 HWC RGB → uint8 [size, size, 3]: PIL BILINEAR keeping aspect, centred black pad."""
    from PIL import Image
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.copy()
    ratio = max(w / size, h / size)
    rh, rw = int(h / ratio), int(w / ratio)
    im = Image.fromarray(np.ascontiguousarray(img)).resize((rw, rh), resample=Image.BILINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    ph, pw = max(0, int((size - rh) / 2)), max(0, int((size - rw) / 2))
    out[ph:ph + rh, pw:pw + rw] = np.asarray(im)
    return out


def to_unit(img_u8):
    return img_u8.astype(np.float64) / 255.0 * 2.0 - 1.0


# ---- vision ------------------------------------------------------------------------------


def vision(m, x):
    """x float [224, 224, 3] in [-1, 1] → [n_patches, W] image tokens after the projector."""
    p = m.patch
    g = m.image // p
    chw = x.transpose(2, 0, 1)  # [3, 224, 224]
    # conv p×p stride p as an explicit loop over the kernel (not a patchify reshape)
    wconv = m.w(V + "embeddings.patch_embedding.weight")  # [vw, 3, p, p]
    h = np.zeros((g, g, m.vw))
    for c in range(3):
        for kh in range(p):
            for kw in range(p):
                pix = chw[c, kh::p, kw::p][:g, :g]  # [g, g]
                h += pix[:, :, None] * wconv[None, None, :, c, kh, kw]
    h = h.reshape(g * g, m.vw) + m.w(V + "embeddings.patch_embedding.bias")
    h = h + m.w(V + "embeddings.position_embedding.weight")
    hd = m.vw // m.v_heads
    for i in range(m.v_depth):
        pre = V + f"encoder.layers.{i}."
        x1 = layernorm(h, m.w(pre + "layer_norm1.weight"), m.w(pre + "layer_norm1.bias"))
        q = linear(x1, m, pre + "self_attn.q_proj")
        k = linear(x1, m, pre + "self_attn.k_proj")
        v = linear(x1, m, pre + "self_attn.v_proj")
        a = attention(q, k, v, m.v_heads, m.v_heads, hd)
        h = h + linear(a, m, pre + "self_attn.out_proj")
        x2 = layernorm(h, m.w(pre + "layer_norm2.weight"), m.w(pre + "layer_norm2.bias"))
        h = h + linear(gelu_tanh(linear(x2, m, pre + "mlp.fc1")), m, pre + "mlp.fc2")
    h = layernorm(h, m.w(V + "post_layernorm.weight"), m.w(V + "post_layernorm.bias"))
    return linear(h, m, PROJ[:-1])


# ---- prefix ------------------------------------------------------------------------------


def gemma_mlp(x, m, pre):
    g = x @ m.w(pre + "mlp.gate_proj.weight").T
    u = x @ m.w(pre + "mlp.up_proj.weight").T
    return (gelu_tanh(g) * u) @ m.w(pre + "mlp.down_proj.weight").T


def prefix(m, images, valid, tokens, tok_mask):
    """images: 3 float [224,224,3] (zeros where invalid); valid: 3 bools; tokens int
    [max_token_len]; tok_mask bool. Returns (Ks, Vs, pad_mask, vision tokens of valid cams)."""
    parts, pad = [], []
    vis_valid = []
    for img, ok in zip(images, valid):
        t = vision(m, img)
        parts.append(t)
        pad.append(np.full(t.shape[0], bool(ok)))
        if ok:
            vis_valid.append(t)
    table = m.embed_table()
    emb = table[tokens].astype(np.float64) * math.sqrt(m.W)
    parts.append(emb)
    pad.append(tok_mask.astype(bool))
    h = np.concatenate(parts, 0)
    pad_mask = np.concatenate(pad, 0)
    ar_mask = np.zeros(h.shape[0], np.int64)
    mask = make_att_2d_masks(pad_mask, ar_mask)
    pos = np.cumsum(pad_mask.astype(np.int64)) - 1
    Ks, Vs = [], []
    for i in range(m.depth):
        pre = L + f"layers.{i}."
        x = rmsnorm_raw(h) * (1.0 + m.w(pre + "input_layernorm.weight"))
        q = x @ m.w(pre + "self_attn.q_proj.weight").T
        k = x @ m.w(pre + "self_attn.k_proj.weight").T
        v = x @ m.w(pre + "self_attn.v_proj.weight").T
        q = rope(q, pos, m.l_heads, m.l_hd)
        k = rope(k, pos, m.l_kv, m.l_hd)
        Ks.append(k)
        Vs.append(v)
        a = attention(q, k, v, m.l_heads, m.l_kv, m.l_hd, mask)
        h = h + a @ m.w(pre + "self_attn.o_proj.weight").T
        x = rmsnorm_raw(h) * (1.0 + m.w(pre + "post_attention_layernorm.weight"))
        h = h + gemma_mlp(x, m, pre)
    vis = np.concatenate(vis_valid, 0) if vis_valid else np.zeros((0, m.W))
    return Ks, Vs, pad_mask, vis


# ---- suffix / denoising ------------------------------------------------------------------


def time_embedding(t, width):
    fraction = np.linspace(0.0, 1.0, width // 2)
    period = 4e-3 * (4.0 / 4e-3) ** fraction
    a = t * 2.0 * np.pi / period
    return np.concatenate([np.sin(a), np.cos(a)])


def expert_norm(m, x, name, cond):
    """Plain (1+w) RMSNorm for π0; adaptive for π0.5 → (y, gate or None)."""
    if not m.pi05:
        return rmsnorm_raw(x) * (1.0 + m.w(name + ".weight")), None
    mod = cond @ m.w(name + ".dense.weight").T + m.w(name + ".dense.bias")
    w = x.shape[-1]
    scale, shift, gate = mod[:w], mod[w:2 * w], mod[2 * w:]
    return rmsnorm_raw(x) * (1.0 + scale) + shift, gate


def velocity(m, Ks, Vs, pad_mask, state, x_t, t):
    H = m.horizon
    temb = time_embedding(t, m.Ew)
    act = linear(x_t, m, "action_in_proj")  # [H, Ew]
    if m.pi05:
        c = silu(linear(temb, m, "time_mlp_in"))
        cond = silu(linear(c, m, "time_mlp_out"))
        h = act
        ar = np.array([1] + [0] * (H - 1))
    else:
        cond = None
        st = linear(state[None, :], m, "state_proj")  # [1, Ew]
        cat = np.concatenate([act, np.repeat(temb[None, :], H, 0)], -1)
        a = silu(linear(cat, m, "action_time_mlp_in"))
        a = linear(a, m, "action_time_mlp_out")
        h = np.concatenate([st, a], 0)
        ar = np.array([1, 1] + [0] * (H - 1))
    S = h.shape[0]
    suf_pad = np.ones(S, bool)
    suf_att = make_att_2d_masks(suf_pad, ar)
    pre_att = np.repeat(pad_mask[None, :], S, 0)
    full = np.concatenate([pre_att, suf_att], -1)
    pos = int(pad_mask.sum()) + np.cumsum(suf_pad.astype(np.int64)) - 1
    for i in range(m.depth):
        pre = E + f"layers.{i}."
        x, gate = expert_norm(m, h, pre + "input_layernorm", cond)
        q = x @ m.w(pre + "self_attn.q_proj.weight").T
        k = x @ m.w(pre + "self_attn.k_proj.weight").T
        v = x @ m.w(pre + "self_attn.v_proj.weight").T
        q = rope(q, pos, m.e_heads, m.e_hd)
        k = rope(k, pos, m.e_kv, m.e_hd)
        kk = np.concatenate([Ks[i], k], 0)
        vv = np.concatenate([Vs[i], v], 0)
        a = attention(q, kk, vv, m.e_heads, m.e_kv, m.e_hd, full)
        o = a @ m.w(pre + "self_attn.o_proj.weight").T
        h = h + (o if gate is None else gate * o)
        x, gate = expert_norm(m, h, pre + "post_attention_layernorm", cond)
        o = gemma_mlp(x, m, pre)
        h = h + (o if gate is None else gate * o)
    x, _ = expert_norm(m, h, E + "norm", cond)
    return linear(x[-H:], m, "action_out_proj")


def infer(m, images_u8, state, tokens, noise, steps=None, dump=None, exact_time=False):
    """images_u8: dict camera → uint8 HWC; returns the normalized chunk [H, A] (float64).
    exact_time: t_s = 1 − s/steps and dt in float64 instead of openpi's float32 schedule
    (only to show that the tests can tell the two apart)."""
    imgs, valid = [], []
    for cam in CAMERAS:
        if cam in images_u8:
            imgs.append(to_unit(resize_with_pad(images_u8[cam], m.image)))
            valid.append(True)
        else:
            imgs.append(np.zeros((m.image, m.image, 3)))
            valid.append(False)
    n = len(tokens)
    assert n <= m.max_token_len
    tok = np.zeros(m.max_token_len, np.int64)
    tok[:n] = tokens
    tmask = np.arange(m.max_token_len) < n
    Ks, Vs, pad_mask, vis = prefix(m, imgs, valid, tok, tmask)
    st = np.zeros(m.action_dim)
    st[:len(state)] = state
    steps = steps or m.num_steps
    x = noise.astype(np.float64).copy()
    # openpi's sample_actions schedule: float32 time from 1.0, float32 dt = -1/steps added
    # each step (0.9, 0.79999995, … for 10 steps), and x += dt·v with that float32 dt
    t, dt = np.float32(1.0), np.float32(-1.0 / steps)
    v0 = None
    for s in range(steps):
        if exact_time:
            t, dt = 1.0 - s / steps, -1.0 / steps
        v = velocity(m, Ks, Vs, pad_mask, st, x, float(t))
        if s == 0:
            v0 = v
        x = x + float(dt) * v
        t = np.float32(t + dt)
    if dump:
        os.makedirs(dump, exist_ok=True)
        np.save(os.path.join(dump, "vision.npy"), vis.astype(np.float32))
        for i in range(m.depth):
            np.save(os.path.join(dump, f"prefix_k_{i}.npy"), Ks[i][pad_mask].astype(np.float32))
            np.save(os.path.join(dump, f"prefix_v_{i}.npy"), Vs[i][pad_mask].astype(np.float32))
        np.save(os.path.join(dump, "velocity0.npy"), v0.astype(np.float32))
    return x


def normalize_state(m, raw):
    """Robot state → model state (PI0-SPEC.md §6, openpi Normalize then zero padding):
    z-score for π0, quantile for π0.5 over the first len(raw) dims of the "state" stats,
    padded with zeros to action_dim."""
    st = m.norm_stats["state"]
    raw = np.asarray(raw, np.float64)
    d = len(raw)
    if m.pi05:
        q01, q99 = np.asarray(st["q01"])[:d], np.asarray(st["q99"])[:d]
        y = (raw - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0
    else:
        mean, std = np.asarray(st["mean"])[:d], np.asarray(st["std"])[:d]
        y = (raw - mean) / (std + 1e-6)
    out = np.zeros(m.action_dim)
    out[:d] = y
    return out


def unnormalize(m, chunk):
    st = m.norm_stats["actions"]
    d = min(chunk.shape[1], len(st["mean"]))
    out = chunk.copy()
    if m.pi05:
        q01, q99 = np.asarray(st["q01"])[:d], np.asarray(st["q99"])[:d]
        out[:, :d] = (chunk[:, :d] + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
    else:
        mean, std = np.asarray(st["mean"])[:d], np.asarray(st["std"])[:d]
        out[:, :d] = chunk[:, :d] * (std + 1e-6) + mean
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", action="append", default=[], help="CAM=FILE.npy")
    ap.add_argument("--state")
    ap.add_argument("--tokens")
    ap.add_argument("--noise")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--unnormalize", action="store_true")
    ap.add_argument("--dump")
    ap.add_argument("--normalize-state", metavar="RAW.npy",
                    help="only normalize a raw robot state (written as float64 [action_dim])")
    ap.add_argument("--unnormalize-actions", metavar="CHUNK.npy",
                    help="only unnormalize a normalized chunk (written as float64)")
    a = ap.parse_args(argv)
    m = Model(a.model)
    if a.normalize_state or a.unnormalize_actions:
        if a.normalize_state:
            res = normalize_state(m, np.load(a.normalize_state))
        else:
            res = unnormalize(m, np.load(a.unnormalize_actions).astype(np.float64))
        np.save(a.out, res)
        return
    if not (a.state and a.tokens and a.noise):
        ap.error("--state, --tokens and --noise are required for inference")
    imgs = {}
    for spec in a.image:
        cam, path = spec.split("=", 1)
        if cam not in CAMERAS:
            sys.exit(f"pi0_ref: unknown camera {cam}")
        imgs[cam] = np.load(path)
    chunk = infer(m, imgs, np.load(a.state).astype(np.float64), np.load(a.tokens),
                  np.load(a.noise), a.steps, a.dump)
    if a.unnormalize:
        chunk = unnormalize(m, chunk)
    np.save(a.out, chunk.astype(np.float32))


if __name__ == "__main__":
    main()
