#!/usr/bin/python3
"""test_shm_python.py — the Python client shm/python/pi0shm.py against the C library.

  * round trip for every message type (pi0.Image, JointState, ActionChunk, Action,
    NodeStatus): Python publishes the reference sample and the C peer (tests/shm/py_peer)
    checks every field, the reserved bytes and pi0_*_check; the C peer publishes it and
    Python checks every field. The reference values are written out independently here
    and in py_peer.c.
  * zero-copy image loans (the numpy array is the slot), publish() from an array, shape
    errors; frames read back by the C side are valid pi0.Image samples.
  * actions: next() returns every sample in order, latest() the newest, wait() times out
    and wakes; liveness alive → dead after the C publisher is killed.
  * the example camera publisher (synthetic source) publishes frames the C side accepts.
  * pi0rt-node runs on camera frames and joint state published from Python, and Python
    reads its actions, chunks and status (skipped when the node is not built).
Ends with `N passed, N failed`. Environment: BUILD (default build).
"""
import ctypes
import os
import signal
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
os.environ["PI0SHM_LIB"] = os.path.join(BUILD, "libpi0shm.so")
sys.path.insert(0, os.path.join(ROOT, "shm", "python"))
import pi0shm  # noqa: E402

PEER = os.path.join(BUILD, "tests", "shm", "py_peer")
PID = os.getpid()


class Skip(Exception):
    """A precondition the machine lacks: counted as skipped, never as passed."""


def topic(name):
    return f"tpy.{PID}.{name}"


def cleanup(t):
    try:
        pi0shm.remove_topic(t)
    except pi0shm.Error:
        pass


# ---- the reference samples (same values as tests/shm/py_peer.c) -------------------------

W, H = 40, 30


def ref_pixels():
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 5) & 255).astype(np.uint8)


def ref_joints():
    m = pi0shm.JointState()
    m.stamp_ns, m.n = 1000, 5
    for i in range(5):
        m.position[i], m.velocity[i], m.effort[i] = 0.5 * i - 1, 0.25 * i, -i
    return m


def ref_chunk():
    m = pi0shm.ActionChunk()
    m.seq, m.t0_ns, m.obs_stamp_ns, m.period_ns = 7, 2000, 1500, 20000000
    m.horizon, m.dim = 10, 6
    m.preprocess_us, m.encode_us, m.denoise_us, m.postprocess_us, m.total_us = 1, 2, 3, 4, 5
    for h in range(10):
        for d in range(6):
            m.actions[h * 6 + d] = h + d * 0.125
    return m


def ref_action():
    m = pi0shm.Action()
    m.due_ns, m.chunk_seq, m.index, m.dim, m.flags = 3000, 7, 3, 6, pi0shm.ACTION_HOLD
    for d in range(6):
        m.values[d] = 0.5 - d
    return m


def ref_status():
    m = pi0shm.NodeStatus()
    m.stamp_ns, m.state, m.last_error = 4000, pi0shm.NODE_HOLDING, pi0shm.PI0_ETIMEDOUT
    m.ticks, m.missed_ticks, m.chunks, m.dropped_chunks, m.holds = 100, 2, 9, 1, 3
    m.hold_reason = pi0shm.HOLD_CAMERA_STALE | pi0shm.HOLD_PUBLISHER_DEAD
    m.tick_late_p50_us, m.tick_late_p99_us, m.tick_late_max_us = 11, 22, 33
    m.infer_p50_us, m.infer_p99_us, m.infer_max_us = 44, 55, 66
    m.message = b"camera cam1 stale"
    return m


REFS = {"joints": (pi0shm.JOINT_STATE, ref_joints), "chunk": (pi0shm.ACTION_CHUNK, ref_chunk),
        "action": (pi0shm.ACTION, ref_action), "status": (pi0shm.NODE_STATUS, ref_status)}


def struct_fields_equal(a, b):
    for name, _ in type(a)._fields_:
        x, y = getattr(a, name), getattr(b, name)
        if hasattr(x, "__len__") and not isinstance(x, bytes):
            x, y = list(x), list(y)
        assert x == y, f"{type(a).__name__}.{name}: {x!r} != {y!r}"


def run_peer(*args, timeout=10):
    return subprocess.run([PEER, *args], capture_output=True, text=True, timeout=timeout)


def spawn_peer(*args):
    return subprocess.Popen([PEER, *args], stderr=subprocess.PIPE, text=True)


def open_retry(t, type_name, timeout=5.0):
    end = time.monotonic() + timeout
    while True:
        try:
            return pi0shm.Subscriber(t, type_name)
        except pi0shm.Error as e:
            if e.code != pi0shm.PI0_ENOENT and e.code != pi0shm.PI0_EAGAIN or \
                    time.monotonic() > end:
                raise
            time.sleep(0.01)


def wait_sample(sub, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = sub.latest()
        if s is not None:
            return s
        sub.wait(0.1)
    raise AssertionError(f"no sample on {sub.topic} within {timeout} s")


def stop(p):
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=5)

# ---- tests --------------------------------------------------------------------------


def test_python_to_c_every_type():
    t = topic("img")
    pub = pi0shm.ImagePublisher(t, W, H, "rgb")
    pub.publish(ref_pixels(), capture_ns=123456789, frame_id=42)
    r = run_peer("check", "image", t)
    assert r.returncode == 0, r.stderr
    pub.close()
    cleanup(t)
    for kind, (type_name, make) in REFS.items():
        t = topic(kind)
        pub = pi0shm.StructPublisher(t, type_name)
        pub.publish(make())
        r = run_peer("check", kind, t)
        assert r.returncode == 0, f"{kind}: {r.stderr}"
        pub.close()
        cleanup(t)
    # JointStatePublisher builds the same sample from arrays
    t = topic("joints2")
    pub = pi0shm.JointStatePublisher(t)
    i = np.arange(5)
    pub.publish(0.5 * i - 1, 0.25 * i, -i, stamp_ns=1000)
    r = run_peer("check", "joints", t)
    assert r.returncode == 0, r.stderr
    pub.close()
    cleanup(t)


def test_c_to_python_every_type():
    t = topic("cimg")
    p = spawn_peer("pub", "image", t, "5")
    try:
        sub = open_retry(t, pi0shm.IMAGE)
        s = wait_sample(sub)
        f = s.msg
        assert (f.width, f.height, f.stride, f.format) == (W, H, W * 3, pi0shm.PIX_RGB8)
        assert (f.capture_ns, f.frame_id) == (123456789, 42)
        assert np.array_equal(f.pixels, ref_pixels())
        sub.close()
    finally:
        stop(p)
        cleanup(t)
    for kind, (type_name, make) in REFS.items():
        t = topic("c" + kind)
        p = spawn_peer("pub", kind, t, "5")
        try:
            sub = open_retry(t, type_name)
            s = wait_sample(sub)
            want = make()
            if kind == "action":  # the peer counts index and due_ns up per sample
                k = s.msg.index - want.index
                want.index += k
                want.due_ns += 10 * k
            struct_fields_equal(s.msg, want)
            assert bytes(s.msg) == bytes(want), f"{kind}: reserved bytes differ"
            sub.close()
        finally:
            stop(p)
            cleanup(t)


def test_image_loan_is_zero_copy():
    t = topic("loan")
    pub = pi0shm.ImagePublisher(t, 64, 48, "gray", slots=2)
    sub = pi0shm.Subscriber(t, pi0shm.IMAGE)
    a = pub.loan()
    assert a.shape == (48, 64) and a.dtype == np.uint8
    b = pub.loan()  # the same slot until commit: same memory
    assert a.ctypes.data == b.ctypes.data
    a[:] = 7
    a[10, 20] = 200
    pub.commit(capture_ns=5, frame_id=99)
    s = sub.latest()
    assert s.msg.frame_id == 99 and s.msg.capture_ns == 5
    assert s.msg.pixels[10, 20] == 200 and s.msg.pixels[0, 0] == 7
    c = pub.loan()  # the next slot is other memory
    assert c.ctypes.data != a.ctypes.data
    pub.commit()
    assert sub.latest().msg.frame_id == 1  # default frame_id: the topic's sequence number
    try:
        pub.publish(np.zeros((48, 64, 3), np.uint8))
        raise AssertionError("wrong shape accepted")
    except ValueError as e:
        assert "want uint8(48, 64)" in str(e)
    sub.close()
    pub.close()
    cleanup(t)


def test_actions_next_latest_wait():
    t = topic("acts")
    p = spawn_peer("pub", "action", t, "5")
    try:
        sub = open_retry(t, pi0shm.ACTION)
        assert sub.wait(2.0)
        got = []
        end = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < end:
            s = sub.next()
            if s is None:
                sub.wait(0.1)
                continue
            got.append(s)
        assert len(got) == 20
        for a, b in zip(got, got[1:]):  # in order, none skipped
            assert b.seq == a.seq + 1 and b.lost == 0
            assert b.msg.index == a.msg.index + 1 and b.msg.due_ns == a.msg.due_ns + 10
        assert got[0].msg.hold and np.array_equal(got[0].msg.values_array(),
                                                   0.5 - np.arange(6, dtype=np.float32))
        time.sleep(0.05)
        last = sub.latest()
        assert last.seq > got[-1].seq
        info = sub.publisher()
        assert info["alive"] and info["pid"] == p.pid and info["head"] >= last.seq + 1
        stop(p)
        assert sub.publisher()["alive"] is False
        t0 = time.monotonic()
        assert sub.next() is None and not sub.wait(0.2)  # nothing new: times out
        assert time.monotonic() - t0 >= 0.19
    finally:
        if p.poll() is None:
            stop(p)
        cleanup(t)


def test_errors():
    try:
        pi0shm.Subscriber(topic("none"), pi0shm.ACTION)
        raise AssertionError("opened a missing topic")
    except pi0shm.Error as e:
        assert e.code == pi0shm.PI0_ENOENT and topic("none") in str(e)
    t = topic("busy")
    pub = pi0shm.StructPublisher(t, pi0shm.ACTION)
    try:
        pi0shm.StructPublisher(t, pi0shm.ACTION)
        raise AssertionError("second publisher accepted")
    except pi0shm.Error as e:
        assert "PI0_EBUSY" in str(e)
    try:
        pi0shm.Subscriber(t, pi0shm.IMAGE)
        raise AssertionError("wrong type accepted")
    except pi0shm.Error as e:
        assert "PI0_ETYPE" in str(e)
    pub.close()
    cleanup(t)


def test_chunk_of_horizon_times_dim():
    # a node sends only the horizon * dim actions of a chunk; the client pads it
    t = topic("short")
    pub = pi0shm.Publisher(t, pi0shm.ACTION_CHUNK, ctypes.sizeof(pi0shm.ActionChunk))
    sub = pi0shm.Subscriber(t, pi0shm.ACTION_CHUNK)
    m = ref_chunk()
    pub.publish_bytes(bytes(m)[:64 + 4 * 10 * 6])
    s = sub.latest()
    assert s.size == 64 + 240 and s.msg.horizon == 10 and s.msg.dim == 6
    want = np.arange(10)[:, None] + np.arange(6)[None, :] * 0.125
    assert np.array_equal(s.msg.actions_array(), want.astype(np.float32))
    pub.publish_bytes(bytes(m)[:64 + 4 * 10 * 6 - 4])  # one value short
    try:
        sub.latest()
        raise AssertionError("short chunk accepted")
    except ValueError as e:
        assert "bad pi0.ActionChunk" in str(e)
    sub.close()
    pub.close()
    cleanup(t)


def test_example_camera():
    t = topic("excam")
    ex = os.path.join(ROOT, "shm", "python", "camera_example.py")
    env = dict(os.environ, PI0SHM_NO_OPENCV="1")
    p = subprocess.Popen([sys.executable, ex, "--topic", t, "--size", "40x30", "--rate", "50",
                          "--duration", "3"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        sub = open_retry(t, pi0shm.IMAGE)
        s1 = wait_sample(sub)
        sub.wait(1.0)
        s2 = sub.latest()
        assert s2.seq > s1.seq and not np.array_equal(s1.msg.pixels, s2.msg.pixels)
        # the C side validates it (pi0_image_check) and decodes its header
        r = subprocess.run([os.path.join(BUILD, "pi0rt-shm"), "echo", t, "--count", "1"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "40x30" in r.stdout, r.stdout + r.stderr
        sub.close()
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10)
        cleanup(t)
    assert p.returncode == 0 and "synthetic" in out, out


def test_node_accepts_python_frames():
    """pi0rt-node runs on frames and joint state published from Python, and Python reads
    its actions, chunks and status."""
    node = os.path.join(BUILD, "pi0rt-node")
    if not os.path.exists(node):
        raise Skip("pi0rt-node is not built")
    import tempfile
    d = tempfile.mkdtemp(prefix="pi0py-node.")
    cams = [topic(f"ncam{i}") for i in range(3)]
    joints, action, chunk, status = (topic(n) for n in ("nj", "na", "nc", "ns"))
    sim = open(os.path.join(ROOT, "calib", "robots", "sim.ini")).read()
    sim = sim[:sim.index("[cameras]")] + "[cameras]\n" + "".join(
        f"{slot} = {t}\n" for slot, t in zip(("base_0_rgb", "left_wrist_0_rgb",
                                               "right_wrist_0_rgb"), cams))
    open(os.path.join(d, "sim.ini"), "w").write(sim)
    subprocess.run([os.path.join(BUILD, "pi0rt-mkmodel"), "--size", "tiny", "--variant", "pi0",
                    "--seed", "1", "--out", os.path.join(d, "model")], check=True,
                   capture_output=True, timeout=60)
    pubs = [pi0shm.ImagePublisher(t, 224, 224, "rgb", slots=16) for t in cams]
    arm = pi0shm.JointStatePublisher(joints)
    frame = np.zeros((224, 224, 3), np.uint8)
    frame[:, :, 0] = np.arange(224, dtype=np.uint8)[None, :]
    sets = [f"robot.calib={d}/sim.ini", f"model.dir={d}/model", f"robot.joints_topic={joints}",
            f"robot.action_topic={action}", f"robot.chunk_topic={chunk}",
            f"node.status_topic={status}"]
    args = [node, "--config", os.path.join(ROOT, "node", "examples", "demo.ini")]
    for x in sets:
        args += ["--set", x]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    subs = {}
    got = {"actions": 0, "moving": 0, "chunks": 0, "running": False}
    try:
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < 20 and not (got["moving"] >= 50 and got["running"]):
            arm.publish(np.zeros(14))
            if k % 3 == 0:
                for pub in pubs:
                    pub.publish(frame)
            k += 1
            for name, t, typ in (("a", action, pi0shm.ACTION), ("c", chunk, pi0shm.ACTION_CHUNK),
                                 ("s", status, pi0shm.NODE_STATUS)):
                if name not in subs:
                    try:
                        subs[name] = pi0shm.Subscriber(t, typ)
                    except pi0shm.Error:
                        pass
            if "a" in subs:
                while (s := subs["a"].next()) is not None:
                    got["actions"] += 1
                    if not s.msg.hold:
                        got["moving"] += 1
                        assert s.msg.dim == 14 and np.all(np.isfinite(s.msg.values_array()))
            if "c" in subs and (s := subs["c"].latest()) is not None:
                got["chunks"] = s.msg.seq + 1
                assert s.msg.dim == 14 and s.msg.actions_array().shape == (s.msg.horizon, 14)
            if "s" in subs and (s := subs["s"].latest()) is not None:
                got["running"] |= s.msg.state == pi0shm.NODE_RUNNING
            time.sleep(0.01)
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        for sub in subs.values():
            sub.close()
        for pub in pubs + [arm]:
            pub.close()
        for t in cams + [joints, action, chunk, status]:
            cleanup(t)
        subprocess.run(["rm", "-rf", d])
    assert p.returncode == 0, out
    assert got["running"] and got["moving"] >= 50 and got["chunks"] >= 1, (got, out)


def main():
    tests = [v for k, v in globals().items() if k.startswith("test_") and callable(v)]
    flt = sys.argv[1] if len(sys.argv) > 1 else None
    passed = failed = skipped = 0
    for t in tests:
        if flt and flt not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f} s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"  skipped: {e}\nSKIP {t.__name__}", flush=True)
        except Exception:
            failed += 1
            traceback.print_exc()
            print(f"FAIL {t.__name__} ({time.monotonic() - t0:.2f} s)", flush=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed + skipped > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
