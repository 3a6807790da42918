#!/usr/bin/python3
"""bench_peers.py — pi0rt against a plain PyTorch port of the same model (make bench-peers):
one JSON line per result.

1. Correctness first: tests/peers/test_peers.py (the port against the float64 numpy reference
   and against pi0rt-infer on tiny checkpoints); any failure stops the benchmark.
2. Timing: a π0 checkpoint (pi0rt-mkmodel --size $PI0_PEERS_SIZE, default full, in a temp
   dir under $BUILD/bench-tmp, removed right after), one 224×224 camera, 20 prompt tokens,
   10 steps, the same state and noise file on both sides. Each round runs, one process at a
   time: pi0rt-infer (and, on a bf16 checkpoint, pi0rt-infer --precision bf16 too), then
   the port in PyTorch's default configuration (the environment as it is), then in its best
   one found (OMP_WAIT_POLICY=PASSIVE and OPENBLAS_CORETYPE unset, for that process only).
   Every process does 1 + PI0_PEERS_REPS inferences; its time is the fastest after the
   first (inference only, as each side reports it: pi0rt-infer's total_ms, the port's
   best_ms; loading excluded). A side's result is its best over the rounds (each round's
   is listed too). Peak RSS is each process's ru_maxrss (wait4), the same measure for both.
   One line per pi0rt precision and torch configuration: pi0rt_ms, torch_ms, ratio =
   torch_ms / pi0rt_ms, peak RSS of each, and how far the two chunks agree (PCC, max abs
   error); the benchmark stops if the PCC is below 1 − 1e-6 (f32 arithmetic on both
   sides) or 0.999 (pi0rt --precision bf16).
   With a bf16 checkpoint the port converts the weights to float32 at load: PyTorch 1.13's
   bf16 matmul on a CPU without AVX-512 BF16 is not a BLAS path (~1 GFLOP/s here, against
   ~60 for f32).

Environment: BUILD (default build), PI0_PEERS_SIZE (full | small | tiny, default full),
PI0_PEERS_DTYPES (default "f32 bf16"), PI0_PEERS_ROUNDS (default 2), PI0_PEERS_REPS
(default 2). The full size needs ~13 GB of disk per checkpoint and ~14 GB of memory: the
processes never run at the same time.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BUILD", "build")
INFER = os.path.join(BUILD, "pi0rt-infer")
MKMODEL = os.path.join(BUILD, "pi0rt-mkmodel")
PORT = os.path.join(HERE, "pi0_torch.py")
SIZE = os.environ.get("PI0_PEERS_SIZE", "full")
DTYPES = os.environ.get("PI0_PEERS_DTYPES", "f32 bf16").split()
ROUNDS = int(os.environ.get("PI0_PEERS_ROUNDS", "2"))
REPS = int(os.environ.get("PI0_PEERS_REPS", "2"))
AGREE_PCC = 1 - 1e-6  # f32 on both sides (measured at full size: 1 - 8e-14)
AGREE_PCC_BF16 = 0.999  # pi0rt --precision bf16 against the f32 port (PI0-SPEC.md)


def torch_configs():
    default = dict(os.environ)
    best = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    best.pop("OPENBLAS_CORETYPE", None)
    return (("default", default, {}),
            ("best", best, {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_CORETYPE": None}))


def run(cmd, env=None):
    """Runs cmd; returns (its last stdout line as JSON, its peak RSS in MB)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            err.seek(0)
            sys.exit(f"bench_peers: {' '.join(cmd)}: exit {p.returncode}: "
                     f"{err.read().decode().strip()}")
    return json.loads(out.strip().splitlines()[-1]), round(ru.ru_maxrss / 1024.0, 1)


def write_inputs(d):
    r = np.random.default_rng(0)
    np.save(f"{d}/img.npy", r.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    np.save(f"{d}/state.npy", (r.standard_normal(14) * 0.3).astype(np.float32))
    np.save(f"{d}/tokens.npy", r.integers(1, 1000, 20).astype(np.int32))
    np.save(f"{d}/noise.npy", r.standard_normal((50, 32)).astype(np.float32))
    return ["--image", f"base={d}/img.npy", "--state", f"{d}/state.npy", "--tokens",
            f"{d}/tokens.npy", "--noise", f"{d}/noise.npy"]


def agreement(a, b):
    a, b = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), float(np.abs(a - b).max())


def bench(d, dtype, inputs):
    mdir = os.path.join(d, f"{SIZE}-pi0-{dtype}")
    r = subprocess.run([MKMODEL, "--size", SIZE, "--variant", "pi0", "--dtype", dtype,
                        "--seed", "1", "--out", mdir], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_peers: pi0rt-mkmodel {SIZE} {dtype}: {r.stderr.strip()}")
    # pi0rt's sides: its default f32 arithmetic and, on a bf16 checkpoint, its bf16 compute
    # mode too; each with the PCC its chunk must reach against the port's (f32)
    precisions = {"f32": AGREE_PCC}
    if dtype == "bf16":
        precisions["bf16"] = AGREE_PCC_BF16
    try:
        reps = str(1 + REPS)
        times, rss, last, outs = {}, {}, {}, {}
        for _ in range(ROUNDS):
            for prec in precisions:
                side = "pi0rt_" + prec
                outs[side] = os.path.join(d, f"{side}.npy")
                j, m = run([INFER, "--model", mdir, *inputs, "--precision", prec, "--json",
                            "--repeat", reps, "--out", outs[side]])
                times.setdefault(side, []).append(j["total_ms"])
                rss[side], last[side] = max(rss.get(side, 0), m), j
            for name, env, _ in torch_configs():
                outs[name] = os.path.join(d, "torch.npy")
                j, m = run([PORT, "--model", mdir, *inputs, "--json", "--repeat", reps,
                            "--out", outs[name]], env)
                times.setdefault(name, []).append(j["best_ms"])
                rss[name], last[name] = max(rss.get(name, 0), m), j
        for prec, pcc_min in precisions.items():
            side = "pi0rt_" + prec
            pcc, err = agreement(outs["best"], outs[side])
            c_ms, cj = min(times[side]), last[side]
            for name, _, env_change in torch_configs():
                t_ms, tj = min(times[name]), last[name]
                print(json.dumps({
                    "bench": "peers", "size": SIZE, "variant": "pi0", "checkpoint": dtype,
                    "pi0rt_precision": prec, "torch_config": name, "torch_env": env_change,
                    "torch_threads": tj["threads"], "torch_version": tj["torch"],
                    "cameras": cj["cameras"], "tokens": cj["tokens"], "steps": cj["steps"],
                    "pi0rt_ms": c_ms, "torch_ms": t_ms, "ratio": round(t_ms / c_ms, 3),
                    "pi0rt_rss_mb": rss[side], "torch_rss_mb": rss[name],
                    "pi0rt_ms_by_round": times[side], "torch_ms_by_round": times[name],
                    "pi0rt_stages_ms": {k: cj[k] for k in ("vision_ms", "prefix_ms",
                                                           "denoise_ms")},
                    "chunk_pcc": pcc, "chunk_max_abs_err": err, "rounds": ROUNDS,
                    "runs_per_process": 1 + REPS}), flush=True)
            if not pcc >= pcc_min:
                sys.exit(f"bench_peers: {SIZE} {dtype}: the chunks of the port and of pi0rt "
                         f"--precision {prec} disagree (pcc {pcc}, min {pcc_min}; max abs err "
                         f"{err:.3g})")
    finally:
        shutil.rmtree(mdir, ignore_errors=True)


def main():
    r = subprocess.run([os.path.join(HERE, "test_peers.py")], capture_output=True, text=True,
                       env=dict(os.environ, BUILD=BUILD))
    if r.returncode or " 0 skipped" not in r.stdout:
        sys.exit(f"bench_peers: the port fails its correctness checks:\n{r.stdout}{r.stderr}")
    print(json.dumps({"bench": "peers_check", "result": r.stdout.strip().splitlines()[-1]}),
          flush=True)
    tmp_root = os.path.join(BUILD, "bench-tmp")
    os.makedirs(tmp_root, exist_ok=True)
    d = tempfile.mkdtemp(prefix="peers-", dir=tmp_root)
    try:
        inputs = write_inputs(d)
        for dtype in DTYPES:
            bench(d, dtype, inputs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
