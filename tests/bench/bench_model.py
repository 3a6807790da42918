#!/usr/bin/python3
"""bench_model.py — model benchmark (make bench): one JSON line per result.

  * the machine's f32 FMA peak first (`pi0rt-bench peak`), measured again after every run
    (the best so far is used: peak and run then see the same machine load); every model
    line adds the whole model's and each stage's fraction of it (of_f32_peak,
    vision/prefix/denoise_of_f32_peak);
  * tiny π0 / π0.5 latency (1 camera 640x480, 48 tokens, 10 steps; best of 20 runs), and
    small π0 (best of 10);
  * full-size π0, f32 and bf16 (pi0rt-mkmodel --size full into a temp dir under
    $BUILD/bench-tmp, removed right after), 1 camera + 48 tokens, 10 steps, best of
    PI0_BENCH_REPS (default 2) runs after the first (which pages the weights in):
    breakdown, total GFLOP (every GEMM and attention FLOP of the work actually done,
    counted from the checkpoint's sizes), achieved GFLOP/s, blas_gflops (raw cblas_sgemm
    at the prefix MLP shape x[n_prefix, W]·W[mlp, W]ᵀ, `pi0rt-bench blas`, measured just
    before and just after the inference; the larger is used),
    ratio_to_blas_bound = (GFLOP / blas_gflops) / measured seconds, and peak RSS; the f32
    checkpoint also with --precision bf16 (speedup_vs_f32: against the f32 line just
    before).

Environment: BUILD (default build), PI0_BENCH_FULL=0 skips the full-size runs,
PI0_BENCH_THREADS (default: all allowed CPUs).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "ref"))
from pi0_ref import attention_shapes, read_shapes  # noqa: E402  (tests/ref/pi0_ref.py)

BUILD = os.environ.get("BUILD", "build")
INFER = os.path.join(BUILD, "pi0rt-infer")
MKMODEL = os.path.join(BUILD, "pi0rt-mkmodel")
BLAS = os.path.join(BUILD, "pi0rt-bench")
THREADS = os.environ.get("PI0_BENCH_THREADS")
REPS = int(os.environ.get("PI0_BENCH_REPS", "2"))

def sizes(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    sh = read_shapes(model_dir)

    def find(suffix):
        for k, v in sh.items():
            if k.endswith(suffix):
                return v
        raise KeyError(suffix)

    def depth(part, probe):
        return len({k for k in sh if part in k and k.endswith(probe)})

    s = {}
    s["pi05"] = any(k.endswith("time_mlp_in.weight") and "action_time" not in k for k in sh)
    pw = find("patch_embedding.weight")
    s["vw"], s["pp"] = pw[0], 3 * pw[2] * pw[3]
    s["np"] = find("position_embedding.weight")[0]
    s["vdepth"] = depth("vision_model.encoder.layers.", "layer_norm1.weight")
    s["vmlp"] = find("encoder.layers.0.mlp.fc1.weight")[0]
    _, (s["heads"], s["kvh"], s["hd"]), (s["eheads"], _, _) = attention_shapes(c)
    s["W"] = [v for k, v in sh.items() if "gemma_expert" not in k and
              k.endswith("layers.0.self_attn.q_proj.weight") and "vision" not in k][0][1]
    s["E"] = find("gemma_expert.model.layers.0.self_attn.q_proj.weight")[1]
    s["mlp"] = [v for k, v in sh.items() if "gemma_expert" not in k and
                k.endswith("layers.0.mlp.gate_proj.weight")][0][0]
    s["emlp"] = find("gemma_expert.model.layers.0.mlp.gate_proj.weight")[0]
    s["depth"] = depth("gemma_expert.model.layers.", "self_attn.q_proj.weight")
    s["A"] = find("action_in_proj.weight")[1]
    s["H"] = int(c.get("action_horizon", 50))
    s["sd"] = find("state_proj.weight")[1] if not s["pi05"] else 0
    return s


def flops(s, n_cams, n_tok, steps):
    """FLOPs of the work the C model does (2 per multiply-add)."""
    np_, vw, W, E, hd = s["np"], s["vw"], s["W"], s["E"], s["hd"]
    f_vis = 2 * np_ * s["pp"] * vw
    per = 4 * 2 * np_ * vw * vw + 2 * 2 * np_ * np_ * vw + 2 * 2 * np_ * vw * s["vmlp"]
    f_vis += s["vdepth"] * per + 2 * np_ * vw * W
    f_vis *= n_cams
    n = n_cams * np_ + n_tok
    qd, kd = s["heads"] * hd, s["kvh"] * hd
    kv = 2 * 2 * n * W * kd
    full = 2 * n * W * qd + kv + 2 * 2 * n * n * qd + 2 * n * qd * W + 3 * 2 * n * W * s["mlp"]
    f_pre = (s["depth"] - 1) * full + kv
    H, A, eqd = s["H"], s["A"], s["eheads"] * hd
    S = H + (0 if s["pi05"] else 1)
    # per step: the H action tokens through every expert layer, over n + S keys
    f_step = 2 * H * A * E + 2 * H * E * A  # action_in, action_out
    if not s["pi05"]:
        f_step += 2 * 2 * H * E * E  # action half of action_time_mlp_in, action_time_mlp_out
    f_step += s["depth"] * (2 * H * E * eqd + 2 * 2 * H * E * kd + 2 * 2 * H * (n + S) * eqd +
                            2 * H * eqd * E + 3 * 2 * H * E * s["emlp"])
    # π0, once per denoise: state_proj and the state token's layers (over n + 1 keys; the
    # last layer only needs its K/V)
    f_state = 0
    if not s["pi05"]:
        f_state = 2 * s["sd"] * E + s["depth"] * 2 * 2 * E * kd
        f_state += (s["depth"] - 1) * (2 * E * eqd + 2 * 2 * (n + 1) * eqd + 2 * eqd * E +
                                       3 * 2 * E * s["emlp"])
    f_den = steps * f_step + f_state
    return f_vis, f_pre, f_den, n


def write_inputs(d, s_tok=48, vocab=1000):
    r = np.random.default_rng(0)
    np.save(f"{d}/img.npy", r.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    np.save(f"{d}/state.npy", (r.standard_normal(14) * 0.3).astype(np.float32))
    np.save(f"{d}/tokens.npy", r.integers(1, vocab, s_tok).astype(np.int32))


def infer(model_dir, d, repeat, precision="f32"):
    cmd = [INFER, "--model", model_dir, "--image", f"base={d}/img.npy", "--state",
           f"{d}/state.npy", "--tokens", f"{d}/tokens.npy", "--out", f"{d}/out.npy",
           "--json", "--repeat", str(repeat), "--precision", precision]
    if THREADS:
        cmd += ["--threads", THREADS]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_model: {' '.join(cmd)}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def blas_gflops(m, n, k):
    cmd = [BLAS, "blas", str(m), str(n), str(k), "--reps", "3"]
    if THREADS:
        cmd += ["--threads", THREADS]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_model: {' '.join(cmd)}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])["gflops"]


def mkmodel(size, variant, dtype, out):
    r = subprocess.run([MKMODEL, "--size", size, "--variant", variant, "--dtype", dtype,
                        "--seed", "1", "--out", out], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_model: pi0rt-mkmodel {size} {variant} {dtype}: {r.stderr.strip()}")


def f32_peak(echo=True):
    """the machine's f32 FMA peak (GFLOP/s, `pi0rt-bench peak`); its JSON lines pass through
    when echo"""
    cmd = [BLAS, "peak"] + (["--threads", THREADS] if THREADS else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_model: {' '.join(cmd)}: {r.stderr.strip()}")
    peak = 0.0
    for line in r.stdout.strip().splitlines():
        if echo:
            print(line, flush=True)
        d = json.loads(line)
        if d.get("kind") == "f32_fma":
            peak = d["gflops"]
    return peak


PEAK = None  # set in main


def report(t, size, variant, dtype, s, blas_before=None, precision="f32", base=None):
    """one model line; base: the f32-precision line of the same model, for the speedup"""
    global PEAK
    PEAK = max(PEAK, f32_peak(echo=False))  # again after the run: the best of both loads
    fv, fp, fd, n = flops(s, t["cameras"], t["tokens"], t["steps"])
    total = fv + fp + fd
    sec = t["total_ms"] / 1e3
    out = {"bench": "model", "size": size, "variant": variant, "dtype": dtype,
           "precision": precision, "cameras": t["cameras"], "tokens": t["tokens"],
           "steps": t["steps"], "prefix_tokens": n}
    for k in ("preprocess_ms", "vision_ms", "prefix_ms", "denoise_ms", "total_ms"):
        out[k] = t[k]
    out["gflop"] = round(total / 1e9, 2)
    out["gflop_vision"] = round(fv / 1e9, 2)
    out["gflop_prefix"] = round(fp / 1e9, 2)
    out["gflop_denoise"] = round(fd / 1e9, 2)
    out["gflops"] = round(total / 1e9 / sec, 2)
    if base:
        out["speedup_vs_f32"] = round(base["total_ms"] / t["total_ms"], 3)
    if PEAK:
        out["f32_peak"] = PEAK
        # the whole model and each stage as a fraction of the f32 FMA peak
        out["of_f32_peak"] = round(total / 1e9 / sec / PEAK, 3)
        for st, f in (("vision", fv), ("prefix", fp), ("denoise", fd)):
            ms = t[st + "_ms"]
            out[st + "_of_f32_peak"] = round(f / 1e9 / (ms / 1e3) / PEAK, 3) if ms > 0 else None
    if blas_before is not None:
        # measured just before and just after the inference; the larger (the conservative
        # bound for the ratio) is used — the machine is shared and swings by tens of %
        after = blas_gflops(n, s["mlp"], s["W"])
        b = max(blas_before, after)
        out["blas_shape"] = [n, s["mlp"], s["W"]]
        out["blas_gflops"] = b
        out["blas_gflops_before_after"] = [blas_before, after]
        out["ratio_to_blas_bound"] = round((total / 1e9 / b) / sec, 3)
    out["peak_rss_mb"] = t["peak_rss_mb"]
    out["runs"] = t["runs"]
    print(json.dumps(out), flush=True)


def main():
    global PEAK
    PEAK = f32_peak()
    tmp_root = os.path.join(BUILD, "bench-tmp")
    os.makedirs(tmp_root, exist_ok=True)
    d = tempfile.mkdtemp(prefix="model-", dir=tmp_root)
    try:
        write_inputs(d)
        for variant in ("pi0", "pi05"):
            mdir = os.path.join(d, f"tiny-{variant}")
            mkmodel("tiny", variant, "f32", mdir)
            report(infer(mdir, d, 20), "tiny", variant, "f32", sizes(mdir))
        mdir = os.path.join(d, "small-pi0")  # 184 MB: GEMMs big enough to mean something
        mkmodel("small", "pi0", "f32", mdir)
        try:
            report(infer(mdir, d, 10), "small", "pi0", "f32", sizes(mdir))
        finally:
            shutil.rmtree(mdir, ignore_errors=True)
        if os.environ.get("PI0_BENCH_FULL", "1") != "0":
            for dtype in ("f32", "bf16"):
                mdir = os.path.join(d, f"full-pi0-{dtype}")
                mkmodel("full", "pi0", dtype, mdir)
                try:
                    s = sizes(mdir)
                    n = s["np"] + 48
                    before = blas_gflops(n, s["mlp"], s["W"])
                    t = infer(mdir, d, 1 + REPS)
                    report(t, "full", "pi0", dtype, s, before)
                    if dtype == "f32":  # the bf16 compute mode on the same checkpoint
                        report(infer(mdir, d, 1 + REPS, "bf16"), "full", "pi0", dtype, s,
                               precision="bf16", base=t)
                finally:
                    shutil.rmtree(mdir, ignore_errors=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
