"""pi0shm — Python client for pi0rt shared-memory topics (ctypes over libpi0shm.so).

For camera and driver processes written in Python. Only the standard library and numpy;
it calls the public C API of shm/pi0_shm.h, so the topics, their liveness rules and the
message layouts are exactly those of the C side.

    import pi0shm
    cam = pi0shm.ImagePublisher("cam0", 640, 480, "rgb")
    frame = cam.loan()                  # numpy (480, 640, 3) view into the shared slot
    frame[:] = capture()                # write the pixels in place (zero copy)
    cam.commit(capture_ns=pi0shm.now_ns())
    cam.publish(array)                  # or: one copy straight from an array into the slot

    arm = pi0shm.JointStatePublisher("joints")
    arm.publish(position=[0.0] * 7)

    act = pi0shm.Subscriber("action", pi0shm.ACTION)
    if act.wait(0.1):                   # sleep up to 100 ms for a new sample
        s = act.latest()                # or act.next(): every sample in order
        print(s.msg.due_ns, s.msg.values_array(), s.seq, s.lost)
    print(act.publisher())              # {'alive': True, 'pid': ..., 'sample_age_s': ...}

The library is found through $PI0SHM_LIB, then build/libpi0shm.so next to this checkout,
then the system's loader (libpi0shm.so). Errors raise pi0shm.Error with the C status code
and detail text. Timestamps are CLOCK_MONOTONIC nanoseconds, as in every pi0rt process.
"""
import ctypes
import ctypes.util
import glob
import os
import time

import numpy as np

# ---- library -------------------------------------------------------------------------

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_library():
    candidates = []
    if os.environ.get("PI0SHM_LIB"):
        candidates.append(os.environ["PI0SHM_LIB"])
    build = os.environ.get("BUILD", "build")
    root = os.path.dirname(os.path.dirname(_HERE))
    bdir = build if os.path.isabs(build) else os.path.join(root, build)
    candidates.append(os.path.join(bdir, "libpi0shm.so"))
    # a versioned soname (libpi0shm.so.1) without the development symlink
    candidates += sorted(glob.glob(os.path.join(bdir, "libpi0shm.so.*")))
    found = ctypes.util.find_library("pi0shm")
    candidates += [found] if found else []
    candidates.append("libpi0shm.so")
    errors = []
    for c in candidates:
        try:
            return ctypes.CDLL(c)
        except OSError as e:
            errors.append(f"{c}: {e}")
    raise OSError("pi0shm: cannot load libpi0shm.so (" + "; ".join(errors) + ")")


_lib = _load_library()

RAW = "raw"
IMAGE = "pi0.Image"
JOINT_STATE = "pi0.JointState"
ACTION_CHUNK = "pi0.ActionChunk"
ACTION = "pi0.Action"
NODE_STATUS = "pi0.NodeStatus"

PIX_RGB8, PIX_BGR8, PIX_GRAY8 = 1, 2, 3
_FORMATS = {"rgb": PIX_RGB8, "bgr": PIX_BGR8, "gray": PIX_GRAY8}
ACTION_HOLD = 1
NODE_STARTING, NODE_RUNNING, NODE_HOLDING, NODE_ERROR = 1, 2, 3, 4
NODE_STATE_NAMES = {1: "STARTING", 2: "RUNNING", 3: "HOLDING", 4: "ERROR"}
HOLD_CAMERA_STALE, HOLD_JOINTS_STALE, HOLD_PUBLISHER_DEAD = 1, 2, 4
HOLD_NO_CHUNK, HOLD_NONFINITE = 8, 16
PUB_ALIVE, PUB_DEAD = 1, 2
TOPIC_GROUP_READ = 1

PI0_EAGAIN, PI0_ETIMEDOUT, PI0_ENOENT = -8, -7, -4
JOINTS_MAX = 64
CHUNK_HORIZON_MAX = CHUNK_DIM_MAX = ACTION_DIM_MAX = 64


def now_ns():
    """CLOCK_MONOTONIC in nanoseconds (the clock of every pi0rt timestamp)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Error(Exception):
    """A pi0rt status: .code is the PI0_E* value, str() the C side's detail."""

    def __init__(self, code, what=""):
        self.code = code
        detail = _lib.pi0_last_error().decode(errors="replace")
        name = _lib.pi0_errname(code).decode()
        super().__init__(f"{what}: {detail} ({name})" if what else f"{detail} ({name})")


# ---- message layouts (shm/pi0_shm.h; sizes are checked below) ---------------------------


class ImageHeader(ctypes.Structure):
    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32),
                ("stride", ctypes.c_uint32), ("format", ctypes.c_uint32),
                ("capture_ns", ctypes.c_uint64), ("frame_id", ctypes.c_uint64),
                ("data_bytes", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 7)]


class JointState(ctypes.Structure):
    _fields_ = [("stamp_ns", ctypes.c_uint64), ("n", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32), ("position", ctypes.c_double * JOINTS_MAX),
                ("velocity", ctypes.c_double * JOINTS_MAX),
                ("effort", ctypes.c_double * JOINTS_MAX)]

    def arrays(self):
        """(position, velocity, effort) as numpy copies of the first n entries."""
        n = min(self.n, JOINTS_MAX)
        return tuple(np.array(getattr(self, f)[:n]) for f in ("position", "velocity", "effort"))


class ActionChunk(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("t0_ns", ctypes.c_uint64),
                ("obs_stamp_ns", ctypes.c_uint64), ("period_ns", ctypes.c_uint64),
                ("horizon", ctypes.c_uint32), ("dim", ctypes.c_uint32),
                ("preprocess_us", ctypes.c_uint32), ("encode_us", ctypes.c_uint32),
                ("denoise_us", ctypes.c_uint32), ("postprocess_us", ctypes.c_uint32),
                ("total_us", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("actions", ctypes.c_float * (CHUNK_HORIZON_MAX * CHUNK_DIM_MAX))]

    def actions_array(self):
        """The chunk as a numpy float32 (horizon, dim) copy."""
        h, d = min(self.horizon, CHUNK_HORIZON_MAX), min(self.dim, CHUNK_DIM_MAX)
        return np.ctypeslib.as_array(self.actions)[: h * d].reshape(h, d).copy()


class Action(ctypes.Structure):
    _fields_ = [("due_ns", ctypes.c_uint64), ("chunk_seq", ctypes.c_uint64),
                ("index", ctypes.c_uint32), ("dim", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("values", ctypes.c_float * ACTION_DIM_MAX)]

    def values_array(self):
        return np.array(self.values[: min(self.dim, ACTION_DIM_MAX)], dtype=np.float32)

    @property
    def hold(self):
        return bool(self.flags & ACTION_HOLD)


class NodeStatus(ctypes.Structure):
    _fields_ = [("stamp_ns", ctypes.c_uint64), ("state", ctypes.c_uint32),
                ("last_error", ctypes.c_int32), ("ticks", ctypes.c_uint64),
                ("missed_ticks", ctypes.c_uint64), ("chunks", ctypes.c_uint64),
                ("dropped_chunks", ctypes.c_uint64), ("holds", ctypes.c_uint64),
                ("hold_reason", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("tick_late_p50_us", ctypes.c_uint32), ("tick_late_p99_us", ctypes.c_uint32),
                ("tick_late_max_us", ctypes.c_uint32), ("infer_p50_us", ctypes.c_uint32),
                ("infer_p99_us", ctypes.c_uint32), ("infer_max_us", ctypes.c_uint32),
                ("reserved2", ctypes.c_uint32 * 2), ("message", ctypes.c_char * 128)]


assert ctypes.sizeof(ImageHeader) == 64
assert ctypes.sizeof(JointState) == 1552 and JointState.velocity.offset == 528
assert ctypes.sizeof(ActionChunk) == 16448 and ActionChunk.actions.offset == 64
assert ctypes.sizeof(Action) == 288 and Action.values.offset == 32
assert ctypes.sizeof(NodeStatus) == 224 and NodeStatus.message.offset == 96

_STRUCTS = {JOINT_STATE: JointState, ACTION_CHUNK: ActionChunk, ACTION: Action,
            NODE_STATUS: NodeStatus}


class PubOpts(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("payload_max", ctypes.c_uint32),
                ("slot_count", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class SubOpts(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("uid", ctypes.c_int64)]


class _Sample(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_uint32), ("epoch", ctypes.c_uint32),
                ("seq", ctypes.c_uint64), ("stamp_ns", ctypes.c_uint64),
                ("lost", ctypes.c_uint64)]


class _PubInfo(ctypes.Structure):
    _fields_ = [("state", ctypes.c_int), ("restarted", ctypes.c_int),
                ("reattached", ctypes.c_int), ("pid", ctypes.c_int32),
                ("start_time", ctypes.c_uint64), ("epoch", ctypes.c_uint32),
                ("head", ctypes.c_uint64), ("heartbeat_age_ns", ctypes.c_int64),
                ("sample_age_ns", ctypes.c_int64)]


class _TopicInfo(ctypes.Structure):
    _fields_ = [("topic", ctypes.c_char * 64), ("type_name", ctypes.c_char * 32),
                ("abi_version", ctypes.c_uint32), ("msg_version", ctypes.c_uint32),
                ("slot_count", ctypes.c_uint32), ("slot_size", ctypes.c_uint32),
                ("payload_max", ctypes.c_uint32), ("segment_size", ctypes.c_uint64),
                ("mode", ctypes.c_uint32), ("waiters", ctypes.c_uint32),
                ("waiter_page", ctypes.c_int)]


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_P, _VP = ctypes.POINTER, ctypes.c_void_p
_fn("pi0_last_error", ctypes.c_char_p)
_fn("pi0_errname", ctypes.c_char_p, ctypes.c_int)
_fn("pi0_pixel_bytes", ctypes.c_uint32, ctypes.c_uint32)
_fn("pi0_image_bytes", ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)
_fn("pi0_topic_name_check", ctypes.c_int, ctypes.c_char_p)
_fn("pi0_topic_remove", ctypes.c_int, ctypes.c_char_p)
_fn("pi0_pub_create", ctypes.c_int, ctypes.c_char_p, _P(PubOpts), _P(_VP))
_fn("pi0_pub_destroy", None, _VP)
_fn("pi0_pub_loan", _VP, _VP)
_fn("pi0_pub_commit", ctypes.c_int, _VP, ctypes.c_size_t)
_fn("pi0_pub_publish", ctypes.c_int, _VP, _VP, ctypes.c_size_t)
_fn("pi0_pub_heartbeat", None, _VP)
_fn("pi0_pub_seq", ctypes.c_uint64, _VP)
_fn("pi0_pub_epoch", ctypes.c_uint32, _VP)
_fn("pi0_pub_payload_max", ctypes.c_uint32, _VP)
_fn("pi0_sub_open", ctypes.c_int, ctypes.c_char_p, _P(SubOpts), _P(_VP))
_fn("pi0_sub_close", None, _VP)
_fn("pi0_sub_latest_copy", ctypes.c_int, _VP, _VP, ctypes.c_size_t, _P(_Sample))
_fn("pi0_sub_next_copy", ctypes.c_int, _VP, _VP, ctypes.c_size_t, _P(_Sample))
_fn("pi0_sub_wait", ctypes.c_int, _VP, ctypes.c_int64)
_fn("pi0_sub_publisher", ctypes.c_int, _VP, _P(_PubInfo))
_fn("pi0_sub_topic_info", None, _VP, _P(_TopicInfo))
_fn("pi0_sub_rate_hz", ctypes.c_double, _VP)
for _t in ("image", "joint_state", "action_chunk", "action", "node_status"):
    _fn(f"pi0_{_t}_check", ctypes.c_int, _VP, ctypes.c_size_t)
_CHECKS = {IMAGE: _lib.pi0_image_check, JOINT_STATE: _lib.pi0_joint_state_check,
           ACTION_CHUNK: _lib.pi0_action_chunk_check, ACTION: _lib.pi0_action_check,
           NODE_STATUS: _lib.pi0_node_status_check}


def remove_topic(topic):
    """Removes a topic whose publisher is dead; Error (PI0_EBUSY) if it is alive."""
    r = _lib.pi0_topic_remove(topic.encode())
    if r != 0:
        raise Error(r, f"remove {topic}")

# ---- publishers ---------------------------------------------------------------------


class _Handle:
    """A handle from the C library, freed by the subclass's _free(): close() (more than
    once is fine), `with`, or when collected."""

    _h = None

    def close(self):
        if self._h:
            self._free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Publisher(_Handle):
    """The single publisher of a topic. loan() gives the next slot's payload as a writable
    numpy uint8 array (zero copy); commit(size) publishes it. close() releases the topic
    (its segment stays for a restart; subscribers see the publisher dead)."""

    def __init__(self, topic, type_name, payload_max, slots=0, group_read=False):
        self.topic = topic
        opts = PubOpts(type_name.encode() if type_name else None, payload_max, slots,
                       TOPIC_GROUP_READ if group_read else 0)
        h = _VP()
        r = _lib.pi0_pub_create(topic.encode(), ctypes.byref(opts), ctypes.byref(h))
        if r != 0:
            raise Error(r, f"publish {topic}")
        self._h = h
        self.payload_max = _lib.pi0_pub_payload_max(h)

    def _addr(self):
        if not self._h:
            raise ValueError(f"publisher of {self.topic} is closed")
        return _lib.pi0_pub_loan(self._h)

    def loan_bytes(self):
        """The loaned slot's payload as a writable numpy uint8 view (payload_max bytes)."""
        buf = (ctypes.c_uint8 * self.payload_max).from_address(self._addr())
        return np.ctypeslib.as_array(buf)

    def commit(self, size):
        r = _lib.pi0_pub_commit(self._h, size)
        if r != 0:
            raise Error(r, f"commit {self.topic}")

    def publish_struct(self, msg):
        """Copies a ctypes message (JointState, Action, ...) into a slot and publishes it."""
        ctypes.memmove(self._addr(), ctypes.addressof(msg), ctypes.sizeof(msg))
        self.commit(ctypes.sizeof(msg))

    def publish_bytes(self, data):
        data = bytes(data)
        r = _lib.pi0_pub_publish(self._h, data, len(data))
        if r != 0:
            raise Error(r, f"publish {self.topic}")

    def heartbeat(self):
        _lib.pi0_pub_heartbeat(self._h)

    @property
    def seq(self):
        return _lib.pi0_pub_seq(self._h)

    @property
    def epoch(self):
        return _lib.pi0_pub_epoch(self._h)

    def _free(self, h):
        _lib.pi0_pub_destroy(h)


class ImagePublisher(Publisher):
    """pi0.Image frames of one size and format ("rgb", "bgr" or "gray")."""

    def __init__(self, topic, width, height, fmt="rgb", slots=0, group_read=False):
        self.format = _FORMATS[fmt] if isinstance(fmt, str) else int(fmt)
        self.width, self.height = int(width), int(height)
        self.bpp = _lib.pi0_pixel_bytes(self.format)
        size = _lib.pi0_image_bytes(self.width, self.height, self.format)
        if not size:
            raise ValueError(f"{topic}: bad image size {width}x{height} or format {fmt!r}")
        self.frame_bytes = self.width * self.height * self.bpp
        super().__init__(topic, IMAGE, size, slots, group_read)

    def loan(self):
        """The next slot's pixels as a writable numpy array (h, w, 3) or (h, w): fill it,
        then commit(). Zero copy: the array is the shared memory."""
        raw = self.loan_bytes()
        shape = (self.height, self.width) + ((self.bpp,) if self.bpp > 1 else ())
        return raw[64:64 + self.frame_bytes].reshape(shape)

    def commit(self, capture_ns=None, frame_id=None):
        """Writes the header of the loaned frame and publishes it. capture_ns defaults to
        now, frame_id to the topic's sequence number."""
        hdr = ImageHeader.from_address(self._addr())
        ctypes.memset(ctypes.addressof(hdr), 0, 64)
        hdr.width, hdr.height, hdr.format = self.width, self.height, self.format
        hdr.stride = self.width * self.bpp
        hdr.data_bytes = self.frame_bytes
        hdr.capture_ns = now_ns() if capture_ns is None else int(capture_ns)
        hdr.frame_id = self.seq if frame_id is None else int(frame_id)
        Publisher.commit(self, 64 + self.frame_bytes)

    def publish(self, frame, capture_ns=None, frame_id=None):
        """Publishes a uint8 array of the topic's shape: one copy, straight into the slot."""
        view = self.loan()
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != view.shape:
            raise ValueError(f"{self.topic}: frame {frame.dtype}{frame.shape}, want uint8"
                             f"{view.shape}")
        np.copyto(view, frame)
        self.commit(capture_ns, frame_id)


class JointStatePublisher(Publisher):
    """pi0.JointState: publish(position, velocity=None, effort=None, stamp_ns=None)."""

    def __init__(self, topic, slots=0, group_read=False):
        super().__init__(topic, JOINT_STATE, ctypes.sizeof(JointState), slots, group_read)

    def publish(self, position, velocity=None, effort=None, stamp_ns=None):
        position = np.asarray(position, dtype=np.float64)
        n = position.shape[0]
        if n > JOINTS_MAX:
            raise ValueError(f"{self.topic}: {n} joints > {JOINTS_MAX}")
        raw = self.loan_bytes()
        raw[:ctypes.sizeof(JointState)] = 0
        js = JointState.from_address(raw.ctypes.data)
        js.stamp_ns = now_ns() if stamp_ns is None else int(stamp_ns)
        js.n = n
        for name, vals in (("position", position), ("velocity", velocity),
                           ("effort", effort)):
            if vals is not None:
                arr = np.ctypeslib.as_array(getattr(js, name))
                arr[:n] = np.asarray(vals, dtype=np.float64)[:n]
        Publisher.commit(self, ctypes.sizeof(JointState))


class StructPublisher(Publisher):
    """A topic of one fixed-layout message type (ACTION, ACTION_CHUNK, NODE_STATUS,
    JOINT_STATE): publish(msg) with a ctypes message object."""

    def __init__(self, topic, type_name, slots=0, group_read=False):
        self.cls = _STRUCTS[type_name]
        super().__init__(topic, type_name, ctypes.sizeof(self.cls), slots, group_read)

    def publish(self, msg):
        if not isinstance(msg, self.cls):
            raise TypeError(f"{self.topic}: want a {self.cls.__name__}")
        self.publish_struct(msg)

# ---- subscriber ---------------------------------------------------------------------


class Sample:
    """One received sample: .msg (ImageFrame, or the ctypes message, or bytes for raw
    topics), .seq, .stamp_ns (commit time), .epoch, .lost (next(): skipped), .size."""

    __slots__ = ("msg", "seq", "stamp_ns", "epoch", "lost", "size")

    def __init__(self, msg, s):
        self.msg, self.seq, self.stamp_ns = msg, s.seq, s.stamp_ns
        self.epoch, self.lost, self.size = s.epoch, s.lost, s.size


class ImageFrame:
    """A received pi0.Image: header fields and .pixels, a numpy copy (h, w[, c])."""

    def __init__(self, raw):
        hdr = ImageHeader.from_buffer_copy(raw[:64])
        self.width, self.height, self.stride = hdr.width, hdr.height, hdr.stride
        self.format, self.capture_ns, self.frame_id = hdr.format, hdr.capture_ns, hdr.frame_id
        bpp = _lib.pi0_pixel_bytes(hdr.format)
        rows = np.frombuffer(raw, np.uint8, hdr.stride * hdr.height, 64).reshape(
            hdr.height, hdr.stride)
        px = rows[:, :hdr.width * bpp]
        self.pixels = (px.reshape(hdr.height, hdr.width, bpp) if bpp > 1 else px).copy()


def _chunk_padded(raw, topic):
    """A pi0.ActionChunk sample that may end after its horizon * dim actions, checked and
    zero-padded to the full struct."""
    full = ctypes.sizeof(ActionChunk)
    if len(raw) >= ActionChunk.actions.offset:
        h = int.from_bytes(raw[32:36], "little")
        d = int.from_bytes(raw[36:40], "little")
        if 0 < h <= CHUNK_HORIZON_MAX and 0 < d <= CHUNK_DIM_MAX and \
                len(raw) >= ActionChunk.actions.offset + 4 * h * d:
            return raw[:full] + bytes(max(0, full - len(raw)))
    raise ValueError(f"{topic}: bad pi0.ActionChunk sample ({len(raw)} bytes)")


class Subscriber(_Handle):
    """Reads a topic: latest() the newest sample, next() every sample in order, wait()
    sleeps until one is new. Each returns a Sample or None when there is nothing (new).
    Samples are copied out and validated with the C pi0_*_check() of their type."""

    def __init__(self, topic, type_name=None, uid=-1):
        self.topic, self.type_name = topic, type_name
        opts = SubOpts(type_name.encode() if type_name else None, uid)
        h = _VP()
        r = _lib.pi0_sub_open(topic.encode(), ctypes.byref(opts), ctypes.byref(h))
        if r != 0:
            raise Error(r, f"subscribe {topic}")
        self._h = h
        info = _TopicInfo()
        _lib.pi0_sub_topic_info(h, ctypes.byref(info))
        self.topic_type = info.type_name.decode()
        self._buf = ctypes.create_string_buffer(info.payload_max)

    def _read(self, fn):
        s = _Sample()
        r = fn(self._h, self._buf, len(self._buf), ctypes.byref(s))
        if r == PI0_EAGAIN:
            return None
        if r != 0:
            raise Error(r, f"read {self.topic}")
        raw = self._buf.raw[:s.size]
        check = _CHECKS.get(self.topic_type)
        if self.topic_type == ACTION_CHUNK:
            # a publisher may send only the horizon * dim actions of a chunk
            raw = _chunk_padded(raw, self.topic)
        elif check is not None:
            r = check(self._buf, s.size)
            if r != 0:
                raise Error(r, f"{self.topic}: bad {self.topic_type} sample")
        if self.topic_type == IMAGE:
            msg = ImageFrame(raw)
        elif self.topic_type in _STRUCTS:
            msg = _STRUCTS[self.topic_type].from_buffer_copy(raw)
        else:
            msg = raw
        return Sample(msg, s)

    def latest(self):
        """The newest sample (and the next() cursor moves past it), or None."""
        return self._read(_lib.pi0_sub_latest_copy)

    def next(self):
        """The oldest sample not yet returned, or None; .lost counts any overrun."""
        return self._read(_lib.pi0_sub_next_copy)

    def wait(self, timeout_s):
        """Sleeps until a sample newer than the cursor exists (True) or timeout_s passes
        (False). timeout_s < 0 waits forever."""
        t = -1 if timeout_s < 0 else int(timeout_s * 1e9)
        r = _lib.pi0_sub_wait(self._h, t)
        if r == 0:
            return True
        if r == PI0_ETIMEDOUT:
            return False
        raise Error(r, f"wait {self.topic}")

    def publisher(self):
        """Liveness of the publisher: alive, restarted (since the last call), pid, epoch,
        head (samples so far), heartbeat and sample ages in seconds (None if never)."""
        i = _PubInfo()
        r = _lib.pi0_sub_publisher(self._h, ctypes.byref(i))
        if r != 0:
            raise Error(r, f"liveness of {self.topic}")
        age = lambda ns: None if ns < 0 else ns / 1e9  # noqa: E731
        return {"alive": i.state == PUB_ALIVE, "restarted": bool(i.restarted), "pid": i.pid,
                "epoch": i.epoch, "head": i.head, "heartbeat_age_s": age(i.heartbeat_age_ns),
                "sample_age_s": age(i.sample_age_ns)}

    def rate_hz(self):
        return _lib.pi0_sub_rate_hz(self._h)

    def _free(self, h):
        _lib.pi0_sub_close(h)
