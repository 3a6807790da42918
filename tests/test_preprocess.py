#!/usr/bin/python3
"""Preprocessing vs Pillow: resize-with-pad of uint8 RGB images of many sizes through
pipeline/preprocess.c (via build/tests/preprocess_tool) against an independent reference
written here from PI0-SPEC.md §3 / openpi's resize_with_pad with PIL's BILINEAR resize.

Exact: the C code implements Pillow's fixed-point algorithm, so every pixel must equal
Pillow's (0 tolerance; the count of differing values is printed on failure). The [-1, 1]
patches must equal x/255*2-1 (float32) of the Pillow image, patchified here in (c, kh, kw)
order (nothing expected is derived from the C output).
Ends with `N passed, N failed`."""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(BUILD, "tests", "preprocess_tool")
S = 224


def reference(img):
    """openpi resize_with_pad semantics with PIL BILINEAR; sizes clamped to >= 1 pixel
    (openpi would produce an empty image for e.g. 1x1000; pi0rt keeps one pixel)."""
    h, w = img.shape[:2]
    ratio = max(w / S, h / S)
    rh, rw = max(1, int(h / ratio)), max(1, int(w / ratio))
    r = np.asarray(Image.fromarray(img, "RGB").resize((rw, rh), resample=Image.BILINEAR))
    out = np.zeros((S, S, 3), np.uint8)
    py, px = (S - rh) // 2, (S - rw) // 2
    out[py:py + rh, px:px + rw] = r
    return out


def patchify(u8, p):
    x = u8.astype(np.float32) / 255.0 * 2.0 - 1.0          # [S, S, 3]
    g = S // p
    x = x.transpose(2, 0, 1).reshape(3, g, p, g, p)          # c, py, kh, px, kw
    return x.transpose(1, 3, 0, 2, 4).reshape(g * g, 3 * p * p)


def make_image(rng, h, w, kind):
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    ((xx + yy) * 37) % 256], axis=-1)
    return img.astype(np.uint8)


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"{TOOL} not built (make {TOOL})")
        print("0 passed, 1 failed")
        return 1
    rng = np.random.default_rng(1234)
    sizes = [  # (h, w)
        (224, 224), (100, 50), (50, 100), (17, 23), (1, 1), (2, 3),      # identity, upscale
        (480, 640), (720, 1280), (1080, 1920), (1000, 999), (225, 224),  # downscale
        (1, 300), (300, 1), (2000, 3), (7, 5000),                         # 1-pixel wide, extreme
        (224, 100), (96, 96), (333, 444),
    ]
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="pi0pp.") as d:
        fin, fout, fpat = (os.path.join(d, n) for n in ("in.npy", "out.npy", "p.npy"))
        for (h, w) in sizes:
            for kind in ("noise", "smooth"):
                img = make_image(rng, h, w, kind)
                np.save(fin, img)
                p = 14 if (h + w) % 2 else 16
                r = subprocess.run([TOOL, fin, fout, fpat, str(p)], capture_output=True, text=True)
                name = f"{h}x{w} {kind}"
                if r.returncode != 0:
                    print(f"FAIL {name}: tool failed: {r.stderr.strip()}")
                    failed += 1
                    continue
                c = np.load(fout)
                ref = reference(img)
                diff = np.abs(c.astype(np.int32) - ref.astype(np.int32))
                pat = np.load(fpat)
                want_pat = patchify(ref, p)
                pat_err = float(np.abs(pat - want_pat).max()) if pat.shape == want_pat.shape \
                    else float("inf")
                ok = c.shape == (S, S, 3) and c.dtype == np.uint8 and diff.max() == 0 \
                    and pat.shape == ((S // p) ** 2, 3 * p * p) and pat_err == 0.0
                print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff.max()}, "
                      f"{int((diff > 0).sum())} values differ; patches p={p} err {pat_err}")
                passed += ok
                failed += not ok
        # errors: wrong dtype / shape give a clear message and a non-zero exit
        np.save(fin, np.zeros((4, 4, 3), np.float32))
        r = subprocess.run([TOOL, fin, fout], capture_output=True, text=True)
        ok = r.returncode != 0 and "dtype is float32, expected uint8" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} float32 image rejected: {r.stderr.strip()}")
        passed += ok
        failed += not ok
        np.save(fin, np.zeros((4, 4, 4), np.uint8))
        r = subprocess.run([TOOL, fin, fout], capture_output=True, text=True)
        ok = r.returncode != 0 and "expected (*, *, 3)" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} RGBA image rejected: {r.stderr.strip()}")
        passed += ok
        failed += not ok
        np.save(fin, np.asfortranarray(np.zeros((4, 5, 3), np.uint8)))
        r = subprocess.run([TOOL, fin, fout], capture_output=True, text=True)
        ok = r.returncode != 0 and "fortran_order" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} fortran-order image rejected: {r.stderr.strip()}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
