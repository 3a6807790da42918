#!/usr/bin/python3
"""pi0rt-mkmodel output read back by an independent numpy safetensors reader (written here
from the format description, not from pipeline/): header layout, dtypes, value scales per
tensor kind, bf16 = round-to-nearest-even of the f32 values for the same seed, sharded
index, config.json and norm_stats.json contents. Ends with `N passed, N failed`."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

BUILD = os.environ.get("BUILD", "build")
MK = os.path.join(BUILD, "pi0rt-mkmodel")
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")


def read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out, spans = {}, []
    for k, e in header.items():
        b, en = e["data_offsets"]
        spans.append((b, en, k))
        dt = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}[e["dtype"]]
        a = np.frombuffer(data[b:en], dtype=dt).reshape(e["shape"])
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = (e["dtype"], a)
    spans.sort()
    contiguous = spans[0][0] == 0 and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1)) \
        and spans[-1][1] == len(data)
    return out, meta, n, contiguous


def bf16_rne(x):
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32)
    return (r << 16).view(np.float32)


def mk(args, out):
    r = subprocess.run([MK] + args + ["--out", out], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
    return r.returncode == 0


def main():
    if not os.access(MK, os.X_OK):
        print(f"{MK} not built")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory(prefix="pi0mk.") as d:
        f32, b16, sh = (os.path.join(d, n) for n in ("f32", "bf16", "sh"))
        check("mkmodel tiny pi0 f32", mk(["--size", "tiny", "--variant", "pi0", "--seed", "7"], f32))
        check("mkmodel tiny pi0 bf16", mk(["--size", "tiny", "--variant", "pi0", "--seed", "7", "--dtype", "bf16"], b16))
        f16 = os.path.join(d, "f16")
        check("mkmodel tiny pi0 f16", mk(["--size", "tiny", "--variant", "pi0", "--seed", "7", "--dtype", "f16"], f16))
        check("mkmodel tiny pi0 3 shards", mk(["--size", "tiny", "--variant", "pi0", "--seed", "7", "--shards", "3"], sh))
        A, meta, hl, contig = read_st(os.path.join(f32, "model.safetensors"))
        B, _, hl2, contig2 = read_st(os.path.join(b16, "model.safetensors"))
        check("header padded to 8, data contiguous and complete", hl % 8 == 0 and hl2 % 8 == 0 and contig and contig2)
        check("__metadata__ has format pt", meta is not None and meta.get("format") == "pt")
        check("89 tensors (tiny pi0)", len(A) == 89 and set(A) == set(B), str(len(A)))
        # dtypes: f32 file all F32; bf16 file: matrices BF16, vectors F32
        check("f32 file is all F32", all(t == "F32" for t, _ in A.values()))
        check("bf16 file: ndim>=2 BF16, vectors F32",
              all((t == "BF16") == (a.ndim >= 2) for t, a in B.values()))
        bad = [k for k in A if not np.array_equal(bf16_rne(A[k][1]) if B[k][0] == "BF16" else A[k][1], B[k][1])]
        check("bf16 values = RNE(f32 values), same seed", not bad, ", ".join(bad[:3]))
        C, _, _, _ = read_st(os.path.join(f16, "model.safetensors"))
        bad = [k for k in A if not np.array_equal(A[k][1].astype(np.float16) if C[k][0] == "F16" else A[k][1], C[k][1])
               or (C[k][0] == "F16") != (A[k][1].ndim >= 2)]
        check("f16 file: matrices = float16(f32 values) (numpy RNE), vectors F32", not bad, ", ".join(bad[:3]))
        # value scales
        L = "paligemma_with_expert.paligemma.model.language_model."
        V = "paligemma_with_expert.paligemma.model.vision_tower.vision_model."
        q = A[L + "layers.0.self_attn.q_proj.weight"][1]
        check("linear std ~ 1/sqrt(fan_in)", abs(q.std() * np.sqrt(q.shape[1]) - 1) < 0.1, f"{q.std():.4f}")
        ln = A[V + "encoder.layers.0.layer_norm1.weight"][1]
        check("LayerNorm weight near 1", abs(ln.mean() - 1) < 0.03 and np.abs(ln - 1).max() <= 0.05 + 1e-6)
        rms = A[L + "layers.1.input_layernorm.weight"][1]
        check("Gemma RMSNorm weight near 0 (used as 1+w)", np.abs(rms).max() <= 0.05 + 1e-6)
        emb = A["paligemma_with_expert.paligemma.lm_head.weight"][1]
        check("embedding std ~ 1/sqrt(width)", abs(emb.std() * np.sqrt(emb.shape[1]) - 1) < 0.05)
        check("all values finite", all(np.isfinite(a).all() for _, a in A.values()))
        # shards
        idx = json.load(open(os.path.join(sh, "model.safetensors.index.json")))
        wm = idx["weight_map"]
        shards = sorted(set(wm.values()))
        merged = {}
        for s in shards:
            T, _, _, c = read_st(os.path.join(sh, s))
            merged.update(T)
            check(f"shard {s}: keys match the weight_map", all(wm[k] == s for k in T) and c)
        check("3 shards cover every key once with the same values",
              len(shards) == 3 and set(merged) == set(A) and set(wm) == set(A)
              and all(np.array_equal(merged[k][1], A[k][1]) for k in A))
        # config / norm stats
        cfg = json.load(open(os.path.join(f32, "config.json")))
        need = ["action_dim", "action_horizon", "precision", "pi05", "max_token_len", "num_steps",
                "vision_num_heads", "vlm_num_heads", "vlm_num_kv_heads", "vlm_head_dim",
                "expert_num_heads", "expert_num_kv_heads", "expert_head_dim"]
        check("config.json has openpi fields + every override key", all(k in cfg for k in need)
              and cfg["pi05"] is False and cfg["action_dim"] == 32)
        ns = json.load(open(os.path.join(f32, "norm_stats.json")))["norm_stats"]
        ok = True
        for q_ in ("state", "actions"):
            s = {k: np.array(v) for k, v in ns[q_].items()}
            ok &= len(s["mean"]) == 32 and (s["std"] > 0).all() and (s["q01"] < s["q99"]).all()
        check("norm_stats.json: std > 0, q01 < q99, 32 dims", ok)
        p5 = os.path.join(d, "p5")
        check("mkmodel tiny pi05", mk(["--size", "tiny", "--variant", "pi05"], p5))
        P, _, _, _ = read_st(os.path.join(p5, "model.safetensors"))
        E = "paligemma_with_expert.gemma_expert.model."
        check("pi05: 92 tensors, dense adaptive norms, no state_proj",
              len(P) == 92 and P[E + "layers.0.input_layernorm.dense.weight"][1].shape == (96, 32)
              and "state_proj.weight" not in P and P["time_mlp_in.weight"][1].shape == (32, 32))
        # the other direction: a file written here the way the `safetensors` library does
        # (keys sorted, compact JSON, header padded to 8 with spaces, data in key order),
        # with F16 matrices, read by the C loader (bench_loader load prints checksums)
        lib = os.path.join(d, "lib")
        os.makedirs(lib)
        for n in ("config.json", "norm_stats.json"):
            open(os.path.join(lib, n), "w").write(open(os.path.join(f32, n)).read())
        header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
        for k in sorted(A):
            a = A[k][1]
            if a.ndim >= 2:
                a, dt = a.astype(np.float16), "F16"
            else:
                dt = "F32"
            b = a.astype("<f2" if dt == "F16" else "<f4").tobytes()
            header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
            blobs.append(b)
            off += len(b)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(lib, "model.safetensors"), "wb") as fp:
            fp.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
        tool = os.path.join(BUILD, "tests", "bench_loader")
        r = subprocess.run([tool, "load", lib], capture_output=True, text=True)
        sums = [json.loads(x) for x in r.stdout.splitlines() if "checksums" in x]
        want_out = float(A["action_out_proj.weight"][1].astype(np.float16).astype(np.float64).sum())
        want_row = float(A["paligemma_with_expert.paligemma.lm_head.weight"][1][1].astype(np.float16).astype(np.float64).sum())
        ok = r.returncode == 0 and sums and abs(sums[0]["action_out_sum"] - want_out) < 1e-4 \
            and abs(sums[0]["embed_row1_sum"] - want_row) < 1e-4
        check("C loader reads a library-style F16 file written here (checksums)", ok,
              f"{r.stderr.strip()} {sums} want {want_out:.6g} {want_row:.6g}")
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
