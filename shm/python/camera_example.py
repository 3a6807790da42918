#!/usr/bin/python3
"""camera_example.py — a camera process in Python publishing pi0.Image frames.

Frames come from OpenCV (cv2.VideoCapture(--device)) when cv2 is importable and the
device opens, otherwise from a synthetic source drawn straight into the shared slot (a
moving bar over a gradient). OpenCV frames are BGR and are published as pi0 BGR8 with one
copy into the loaned slot; synthetic frames are RGB8 with no copy at all.

    shm/python/camera_example.py --topic cam0 --size 224x224 --rate 30
    PI0SHM_NO_OPENCV=1 ...   forces the synthetic source

Ctrl-C / SIGTERM stop it; it prints the frame count at exit.
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import pi0shm  # noqa: E402


def open_camera(device, width, height):
    if os.environ.get("PI0SHM_NO_OPENCV"):
        return None
    try:
        import cv2
    except ImportError:
        return None
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        return None
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    return cap, cv2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topic", default="cam0")
    ap.add_argument("--size", default="224x224", help="WxH")
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second")
    ap.add_argument("--device", type=int, default=0, help="OpenCV camera index")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds, 0 = until stopped")
    a = ap.parse_args()
    try:
        w, h = (int(v) for v in a.size.split("x"))
    except ValueError:
        ap.error(f"--size {a.size!r}: want WxH")
    if a.rate <= 0:
        ap.error("--rate: want > 0")

    stop = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.append(1))

    cam = open_camera(a.device, w, h)
    pub = pi0shm.ImagePublisher(a.topic, w, h, "bgr" if cam else "rgb")
    print(f"camera_example: {'opencv device %d' % a.device if cam else 'synthetic'} "
          f"{w}x{h} at {a.rate} Hz on {a.topic}", flush=True)
    gradient = np.linspace(0, 200, w, dtype=np.float32).astype(np.uint8)
    period, t0 = 1.0 / a.rate, time.monotonic()
    k = 0
    while not stop and (a.duration <= 0 or time.monotonic() - t0 < a.duration):
        stamp = pi0shm.now_ns()
        if cam:
            ok, frame = cam[0].read()
            if not ok:
                print("camera_example: capture failed", file=sys.stderr)
                return 1
            if frame.shape[:2] != (h, w):
                frame = cam[1].resize(frame, (w, h))
            pub.publish(frame, capture_ns=stamp)
        else:
            px = pub.loan()  # the slot itself: drawn in place, no copy
            px[:, :, 0] = gradient
            px[:, :, 1] = 60
            px[:, :, 2] = 120
            x = (k * 3) % max(1, w - 8)
            px[:, x:x + 8, :] = 255
            pub.commit(capture_ns=stamp)
        k += 1
        time.sleep(max(0.0, t0 + k * period - time.monotonic()))
    print(f"camera_example: {k} frames", flush=True)
    pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
