#!/usr/bin/python3
"""test_peers.py — the PyTorch port (tests/peers/pi0_torch.py) against the numpy reference
(tests/ref/pi0_ref.py, float64) and against pi0rt-infer, on tiny checkpoints from
pi0rt-mkmodel. `make bench-peers` runs it before any timing and stops if it fails; `make test`
runs it when Debian's python3-torch is installed (every test SKIPs otherwise: torch is a
test-only peer that only `make bench-peers` installs).

Tolerances (chunk, same inputs and noise on every side):
  * port in float64 vs the reference: PCC >= 1 − 1e-12 and max |port − ref| <= 1e-10 ·
    max(1, max|ref|) — the same math, so only float64 rounding may differ (measured ~5e-14);
  * port in float32 vs the reference, and vs pi0rt-infer (float32): PCC >= 1 − 1e-9 and max
    error <= 1e-5 · max(1, max|ref|), what test_pipeline.py allows pi0rt-infer (measured
    ~1e-6 with max|ref| ≈ 4);
  * these tolerances see a real bug: the port's chunk with one prompt token dropped fails
    against the reference of the full prompt.
Ends with `N passed, N failed, N skipped`.

Environment: BUILD (default build).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
sys.path.insert(0, HERE)
import pi0_ref  # noqa: E402

try:
    import torch
    import pi0_torch
except ImportError as e:  # test-only peer, installed by `make bench-peers`
    torch = None
    NO_TORCH = str(e)

BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
INFER = os.path.join(BUILD, "pi0rt-infer")
MKMODEL = os.path.join(BUILD, "pi0rt-mkmodel")
PORT = os.path.join(HERE, "pi0_torch.py")

F64_PCC, F64_REL = 1 - 1e-12, 1e-10
F32_PCC, F32_REL = 1 - 1e-9, 1e-5

TMP = tempfile.mkdtemp(prefix="pi0rt-test-peers-")
_models = {}


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def model(variant, dtype="f32"):
    key = (variant, dtype)
    if key not in _models:
        d = os.path.join(TMP, f"tiny-{variant}-{dtype}")
        r = subprocess.run([MKMODEL, "--size", "tiny", "--variant", variant, "--dtype", dtype,
                            "--seed", "5", "--out", d], capture_output=True, text=True)
        if r.returncode:
            raise Failure(f"pi0rt-mkmodel tiny {variant} {dtype}: {r.stderr.strip()}")
        _models[key] = d
    return _models[key]


class Case:
    """One observation: 224×224 images of the given cameras, state, prompt tokens, noise."""

    def __init__(self, name, seed, cams, n_tokens):
        r = np.random.default_rng(seed)
        self.name = name
        self.images = {c: r.integers(0, 256, (224, 224, 3), dtype=np.uint8) for c in cams}
        self.state = (r.standard_normal(14) * 0.5).astype(np.float32)
        self.tokens = r.integers(1, 1024, n_tokens).astype(np.int32)
        self.noise = r.standard_normal((50, 32)).astype(np.float32)

    def files(self):
        a = []
        for cam, img in self.images.items():
            a += ["--image", f"{cam}={self.save(cam, img)}"]
        return a + ["--state", self.save("state", self.state), "--tokens",
                    self.save("tokens", self.tokens), "--noise", self.save("noise", self.noise)]

    def save(self, what, arr):
        p = os.path.join(TMP, f"{self.name}-{what}.npy")
        np.save(p, arr)
        return p


def reference(mdir, c, tokens=None):
    return pi0_ref.infer(pi0_ref.Model(mdir), c.images, c.state.astype(np.float64),
                         c.tokens if tokens is None else tokens, c.noise)


def port(mdir, c, dtype, tokens=None):
    m = pi0_torch.Pi0(mdir, dtype)
    imgs = {cam: torch.from_numpy(img) for cam, img in c.images.items()}
    tok = c.tokens if tokens is None else tokens
    out = m.infer(imgs, torch.from_numpy(c.state.astype(np.float64)),
                  torch.from_numpy(tok.astype(np.int64)),
                  torch.from_numpy(c.noise.astype(np.float64)))
    return out.numpy().astype(np.float64)


def pi0rt(mdir, c):
    out = os.path.join(TMP, f"{c.name}-pi0rt.npy")
    r = subprocess.run([INFER, "--model", mdir, *c.files(), "--out", out], capture_output=True,
                       text=True, timeout=120)
    if r.returncode:
        raise Failure(f"pi0rt-infer: {r.stderr.strip()}")
    return np.load(out).astype(np.float64)


def measure(got, want):
    err = float(np.abs(got - want).max())
    return float(np.corrcoef(got.ravel(), want.ravel())[0, 1]), err


def compare(what, got, want, pcc_min, rel):
    if got.shape != want.shape or not np.isfinite(got).all():
        raise Failure(f"{what}: shape {got.shape} vs {want.shape}, or non-finite values")
    pcc, err = measure(got, want)
    tol = rel * max(1.0, float(np.abs(want).max()))
    if pcc < pcc_min or err > tol:
        raise Failure(f"{what}: pcc {pcc:.12f} (min {pcc_min}), max abs err {err:.3g} "
                      f"(max {tol:.3g})")
    print(f"    {what}: 1 - pcc {1 - pcc:.1e}, max abs err {err:.2e}")


def check(variant, c, dtype="f32"):
    mdir = model(variant, dtype)
    want = reference(mdir, c)
    compare(f"{c.name}: port f64 vs ref", port(mdir, c, torch.float64), want, F64_PCC, F64_REL)
    got = port(mdir, c, torch.float32)
    compare(f"{c.name}: port f32 vs ref", got, want, F32_PCC, F32_REL)
    compare(f"{c.name}: port f32 vs pi0rt-infer", got, pi0rt(mdir, c), F32_PCC, F32_REL)


def test_pi0_one_camera():
    check("pi0", Case("pi0-1cam", 1, ["base"], 20))


def test_pi0_masked_camera_padded_prompt():
    # left_wrist masked (the port leaves it out, the reference masks it); 5 of 48 tokens real
    check("pi0", Case("pi0-mask", 2, ["base", "right_wrist"], 5))


def test_pi05_three_cameras():
    check("pi05", Case("pi05-3cam", 3, ["base", "left_wrist", "right_wrist"], 30))


def test_pi0_bf16_checkpoint():
    check("pi0", Case("pi0-bf16", 4, ["base"], 20), "bf16")


def test_tolerance_sees_a_dropped_token():
    c = Case("pi0-drop", 5, ["base"], 20)
    mdir = model("pi0")
    want = reference(mdir, c)
    for dtype, pcc_min, rel in ((torch.float64, F64_PCC, F64_REL),
                                (torch.float32, F32_PCC, F32_REL)):
        got = port(mdir, c, dtype, tokens=c.tokens[:-1])
        try:
            compare("dropped token", got, want, pcc_min, rel)
        except Failure:
            continue
        raise Failure(f"a dropped prompt token passes the {dtype} tolerance")


def test_bad_image_named():
    c = Case("bad", 6, [], 5)
    bad = c.save("img", np.zeros((100, 224, 3), np.uint8))
    out = os.path.join(TMP, "bad-out.npy")
    r = subprocess.run([PORT, "--model", model("pi0"), "--image", f"base={bad}", *c.files(),
                        "--out", out], capture_output=True, text=True, timeout=120)
    if r.returncode != 1 or bad not in r.stderr or os.path.exists(out):
        raise Failure(f"bad image: exit {r.returncode}, stderr {r.stderr.strip()!r}")


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else None
    passed = failed = skipped = 0
    for t in TESTS:
        if flt and flt not in t.__name__:
            continue
        try:
            if torch is None:
                raise Skip(f"python3-torch is not installed ({NO_TORCH}); `make bench-peers` "
                           "installs it")
            t()
            print(f"ok   {t.__name__}")
            passed += 1
        except Skip as e:
            print(f"  skipped: {e}\nSKIP {t.__name__}")
            skipped += 1
        except Exception as e:  # noqa: BLE001 — report and keep going
            print(f"FAIL {t.__name__}: {e}")
            if not isinstance(e, Failure):
                traceback.print_exc()
            failed += 1
        sys.stdout.flush()
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed + skipped > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
