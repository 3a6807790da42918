#!/usr/bin/python3
"""Independent numpy reference for the ready robot files in calib/robots/.

Each robot's transforms are written here straight from openpi
(src/openpi/policies/{aloha,droid,libero}_policy.py, transforms.py AbsoluteActions /
make_bool_mask, examples/droid/main.py's clip and gripper binarize), not from calib's C code
nor from the INI files. The script feeds random and boundary inputs to build/pi0rt-calib
(state and actions commands), compares with the reference in float64, and checks the ALOHA
output against openpi's inverse (_encode_actions_inv).

Error measure: |c - r| <= TOL * max(|r|, 1), TOL = 1e-6 (relative above 1, absolute below).

usage: calib_ref.py PI0RT_CALIB TMPDIR [ROBOTS_DIR]   exit 0 when every check passes
(ROBOTS_DIR, default calib/robots: where aloha.ini, droid.ini, libero.ini, sim.ini are)
"""
import os
import subprocess
import sys

import numpy as np

TOL = 1e-6

# ---- openpi, transcribed ---------------------------------------------------------------


def make_bool_mask(*dims):
    out = []
    for d in dims:
        out.extend([d > 0] * abs(d))
    return np.array(out, dtype=bool)


ALOHA_FLIP = np.array([1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1], dtype=np.float64)
ALOHA_GRIPPERS = [6, 13]


def _unnormalize(x, lo, hi):
    return x * (hi - lo) + lo


def _normalize(x, lo, hi):
    return (x - lo) / (hi - lo)


def aloha_gripper_to_angular(g):
    v = _unnormalize(g, 0.01844, 0.05800)
    horn, arm = 0.022, 0.036
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (horn**2 + v**2 - arm**2) / (2 * horn * v)
    a = np.arcsin(np.clip(s, -1.0, 1.0))
    return _normalize(a, 0.5476, 1.6296)


def aloha_gripper_from_angular(a):
    return _normalize(a + 0.5476, -0.6213, 1.4910)


def aloha_gripper_from_angular_inv(g):
    return _unnormalize(g, -0.6213, 1.4910) - 0.5476


def aloha_state_in(raw):  # _decode_state(adapt_to_pi=True); raw [N, 14]
    s = ALOHA_FLIP * raw
    s[:, ALOHA_GRIPPERS] = aloha_gripper_to_angular(s[:, ALOHA_GRIPPERS])
    return s


def absolute_actions(chunk, state, mask):  # chunk [N, H, D], state [N, >= len(mask)]
    a = chunk.copy()
    n = len(mask)
    a[..., :n] += np.where(mask, state[:, :n], 0)[:, None, :]
    return a


def aloha_actions_out(chunk, state):  # AbsoluteActions then AlohaOutputs (_encode_actions)
    a = absolute_actions(chunk, state, make_bool_mask(6, -1, 6, -1))[..., :14]
    a = ALOHA_FLIP * a
    a[..., ALOHA_GRIPPERS] = aloha_gripper_from_angular(a[..., ALOHA_GRIPPERS])
    return a


def aloha_encode_actions_inv(a):  # openpi _encode_actions_inv(adapt_to_pi=True)
    a = ALOHA_FLIP * a
    a[..., ALOHA_GRIPPERS] = aloha_gripper_from_angular_inv(a[..., ALOHA_GRIPPERS])
    return a


def droid_state_in(raw):  # DroidInputs: joint_position (7) + gripper_position (1)
    return np.concatenate([raw[:, :7], raw[:, 7:8]], axis=1)


def droid_actions_out(chunk, state):  # DroidOutputs + the client's binarize and clip
    a = chunk[..., :8].copy()
    g = a[..., -1]
    a[..., -1] = np.where(g > 0.5, 1.0, 0.0)
    return np.clip(a, -1, 1)


def libero_state_in(raw):  # LiberoInputs: the 8 values as given
    return raw[:, :8].copy()


def libero_actions_out(chunk, state):  # AbsoluteActions(make_bool_mask(6, -1)) + LiberoOutputs
    return absolute_actions(chunk, state, make_bool_mask(6, -1))[..., :7]


def sim_state_in(raw):
    return raw[:, :14].copy()


def sim_actions_out(chunk, state):
    return chunk[..., :14].copy()


ROBOTS = {
    # name: (raw joints, state_in, actions_out)
    "aloha": (14, aloha_state_in, aloha_actions_out),
    "droid": (8, droid_state_in, droid_actions_out),
    "libero": (8, libero_state_in, libero_actions_out),
    "sim": (14, sim_state_in, sim_actions_out),
}

# ---- inputs ----------------------------------------------------------------------------


def boundary_grippers():
    """ALOHA gripper positions at and around the asin clip boundaries and out of range."""
    top = 1.0  # v = horn + arm: the asin argument is exactly 1 (fully open)
    v_bottom = 0.036 - 0.022  # the argument is -1
    bottom = (v_bottom - 0.01844) / (0.05800 - 0.01844)
    v_zero = -0.01844 / (0.05800 - 0.01844)  # v = 0: the argument diverges
    out = []
    for c in (top, bottom, v_zero, 0.0):
        x = c
        for _ in range(4):
            out.append(x)
            x = np.nextafter(x, np.inf)
        x = c
        for _ in range(4):
            x = np.nextafter(x, -np.inf)
            out.append(x)
        out += [c + d for d in (1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3)]
    out += [-5.0, -1.0, -0.5, 0.5, 1.5, 2.0, 10.0]
    return np.array(out, dtype=np.float64)


def raw_states(rng, n, count):
    raw = rng.uniform(-np.pi, np.pi, size=(count, n))
    if n == 14:
        g = np.concatenate([rng.uniform(-0.6, 1.6, size=count - 200), rng.uniform(0.9, 1.0, 200)])
        raw[:, 6] = g
        raw[:, 13] = rng.permutation(g)
        b = boundary_grippers()
        raw[: len(b), 6] = b
        raw[len(b) : 2 * len(b), 13] = b
    return raw


def chunks(rng, count, h, d):
    c = rng.normal(0, 1.5, size=(count, h, d)).astype(np.float32)
    # exact clip / binarize boundaries and their float32 neighbours, in every dim
    special = np.array([-1, 1, 0.5, 0, -0.5, 2, -2], dtype=np.float32)
    special = np.concatenate(
        [special, np.nextafter(special, np.float32(np.inf)), np.nextafter(special, np.float32(-np.inf))]
    )
    flat = c.reshape(-1, d)
    idx = rng.choice(flat.shape[0], size=(len(special) * 40,), replace=False)
    flat[idx, :] = np.resize(special, (len(idx), 1))
    return flat.reshape(count, h, d)


# ---- checks ----------------------------------------------------------------------------


def run(tool, *args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{tool} {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")


def err(c, r):
    """max |c - r| / max(|r|, 1)"""
    c = np.asarray(c, np.float64)
    r = np.asarray(r, np.float64)
    if c.shape != r.shape:
        raise SystemExit(f"shape {c.shape} != reference {r.shape}")
    if not np.array_equal(np.isnan(c), np.isnan(r)):
        return np.inf
    ok = ~np.isnan(r)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(c[ok] - r[ok]) / np.maximum(np.abs(r[ok]), 1.0)))


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    tool, tmp = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    robots = sys.argv[3] if len(sys.argv) == 4 else os.path.join(here, "..", "..", "calib", "robots")
    rng = np.random.default_rng(20260101)
    failed = 0
    for name, (n, state_in, actions_out) in ROBOTS.items():
        ini = os.path.join(robots, name + ".ini")
        count, horizon, dim = 4000, 10, 32
        raw = raw_states(rng, n, count)
        p_raw, p_state = os.path.join(tmp, name + "_raw.npy"), os.path.join(tmp, name + "_state.npy")
        np.save(p_raw, raw)
        run(tool, "state", ini, "--in", p_raw, "--out", p_state)
        ref_state = state_in(raw.copy())
        e_state = err(np.load(p_state), ref_state)

        ch = chunks(rng, count, horizon, dim)
        p_chunk, p_out = os.path.join(tmp, name + "_chunk.npy"), os.path.join(tmp, name + "_out.npy")
        np.save(p_chunk, ch)
        run(tool, "actions", ini, "--in", p_chunk, "--state", p_raw, "--out", p_out)
        got = np.load(p_out)
        if got.dtype != np.float32:
            raise SystemExit(f"{name}: actions dtype {got.dtype}, want float32")
        ref = actions_out(ch.astype(np.float64), ref_state)
        e_act = err(got, ref)

        # one chunk [H, D] with float64 input and a 1-d state: the plain (non-batch) form
        np.save(p_chunk, ch[0].astype(np.float64))
        np.save(p_raw, raw[0])
        run(tool, "actions", ini, "--in", p_chunk, "--state", p_raw, "--out", p_out)
        e_one = err(np.load(p_out), ref[0])

        ok = e_state <= TOL and e_act <= TOL and e_one <= TOL
        failed += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {name}: {count} states, {count}x{horizon}x{dim} chunks: "
            f"max err state_in {e_state:.3g}, actions_out {e_act:.3g}, single chunk {e_one:.3g} "
            f"(tol {TOL:g})"
        )
        if name == "aloha":
            # round trip: openpi's _encode_actions_inv undoes the output transform, giving the
            # absolute model-space actions (chunk + delta) back
            back = aloha_encode_actions_inv(got.astype(np.float64))
            want = absolute_actions(ch.astype(np.float64), ref_state, make_bool_mask(6, -1, 6, -1))[..., :14]
            e_rt = err(back, want)
            ok = e_rt <= TOL
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} aloha round trip via _encode_actions_inv: max err {e_rt:.3g}")
            # the boundary gripper values really were exercised
            b = boundary_grippers()
            s = ALOHA_FLIP[6] * b
            print(
                f"     aloha gripper boundaries: {len(b)} values, state_in range "
                f"[{aloha_gripper_to_angular(s).min():.4f}, {aloha_gripper_to_angular(s).max():.4f}]"
            )
    print("calib_ref:", "all checks passed" if not failed else f"{failed} checks failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
