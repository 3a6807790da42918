// check.mjs — reads MCAP files written by pi0rt-shm with the reference readers
// (@mcap/core indexed + stream readers with CRC validation, @mcap/support LZ4,
// @foxglove/rosmsg + rosmsg2-serialization CDR decoding against the file's schema text) and
// compares the decoded messages with what the C test published.
//
//   node check.mjs verify FILE EXPECTED.json [--prefix]   every expected message, in order
//                                                         (--prefix: a prefix of each topic)
//   node check.mjs recovered BROKEN FIXED EXPECTED.json   FIXED holds exactly the messages
//                                                         of BROKEN's intact chunks
//   node check.mjs write-foreign FILE                     a file written by @mcap/core's
//                                                         writer (Image, JointState) for
//                                                         `play` to republish
//   node check.mjs roundtrip A B PREFIX                   same messages (B's topics carry
//                                                         PREFIX), stamps shifted by one
//                                                         constant
// Prints one line per file; exits 1 with the first difference.
import { McapIndexedReader, McapStreamReader, McapWriter } from "@mcap/core";
import { loadDecompressHandlers } from "@mcap/support";
import { parse } from "@foxglove/rosmsg";
import { MessageReader, MessageWriter } from "@foxglove/rosmsg2-serialization";
import { open, readFile, writeFile } from "node:fs/promises";

const handlers = await loadDecompressHandlers();
const dec = new TextDecoder();

function die(msg) {
  console.error(`check.mjs: ${msg}`);
  process.exit(1);
}

function readers(schemas, channels) {
  const out = new Map();
  for (const [id, ch] of channels) {
    const s = schemas.get(ch.schemaId);
    if (!s) die(`channel ${ch.topic}: schema ${ch.schemaId} missing`);
    if (s.encoding !== "ros2msg" || ch.messageEncoding !== "cdr")
      die(`channel ${ch.topic}: ${s.encoding}/${ch.messageEncoding}, want ros2msg/cdr`);
    out.set(id, { topic: ch.topic, type: s.name, metadata: ch.metadata,
                  reader: new MessageReader(parse(dec.decode(s.data), { ros2: true })) });
  }
  return out;
}

// Every message of a complete file through the indexed reader (summary, chunk indexes,
// message indexes, CRCs) and the stream reader; both must agree.
async function readIndexed(path) {
  const fh = await open(path, "r");
  const size = BigInt((await fh.stat()).size);
  const readable = {
    size: async () => size,
    read: async (offset, length) => {
      const buf = new Uint8Array(Number(length));
      await fh.read(buf, 0, Number(length), Number(offset));
      return buf;
    },
  };
  const r = await McapIndexedReader.Initialize({ readable, decompressHandlers: handlers });
  if (r.header.profile !== "ros2") die(`${path}: profile "${r.header.profile}", want ros2`);
  const chans = readers(r.schemasById, r.channelsById);
  const msgs = [];
  for await (const m of r.readMessages({ validateCrcs: true })) msgs.push(m);
  const stats = r.statistics;
  if (!stats || stats.messageCount !== BigInt(msgs.length))
    die(`${path}: statistics say ${stats?.messageCount} messages, index gives ${msgs.length}`);
  let clockOffset = null;
  for (const mi of r.metadataIndexes) {
    const md = await r.readMetadata?.(mi);
    if (md?.name === "pi0rt.clock") clockOffset = BigInt(md.metadata.get("monotonic_to_unix_offset_ns"));
  }
  await fh.close();
  const streamed = await readStream(path, true);
  if (!streamed.done) die(`${path}: stream reader did not reach a valid footer`);
  if (streamed.msgs.length !== msgs.length)
    die(`${path}: stream reader ${streamed.msgs.length} messages, indexed ${msgs.length}`);
  // the indexed reader orders by log_time; the stream reader gives file order
  const key = (m) => `${m.channelId}:${m.sequence}:${m.logTime}`;
  const a = msgs.map(key).sort(), b = streamed.msgs.map(key).sort();
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) die(`${path}: readers differ at ${a[i]} / ${b[i]}`);
  return { chans, msgs: streamed.msgs, clockOffset: clockOffset ?? streamed.clockOffset };
}

// File order through the stream reader; for a broken file, everything before the damage.
async function readStream(path, mustFinish) {
  const data = new Uint8Array(await readFile(path));
  const r = new McapStreamReader({ decompressHandlers: handlers, validateCrcs: true });
  r.append(data);
  const schemas = new Map(), channels = new Map(), msgs = [];
  let clockOffset = null, error = null;
  try {
    for (let rec; (rec = r.nextRecord()); ) {
      if (rec.type === "Schema") schemas.set(rec.id, rec);
      else if (rec.type === "Channel") channels.set(rec.id, rec);
      else if (rec.type === "Message") msgs.push(rec);
      else if (rec.type === "Metadata" && rec.name === "pi0rt.clock")
        clockOffset = BigInt(rec.metadata.get("monotonic_to_unix_offset_ns"));
    }
  } catch (e) {
    if (mustFinish) die(`${path}: stream reader: ${e.message}`);
    error = e.message;
  }
  return { done: r.done(), msgs, chans: readers(schemas, channels), clockOffset, error };
}

const ns = (t) => BigInt(t.sec) * 1000000000n + BigInt(t.nanosec);
const eq = (a, b) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

// Compares a decoded message with the published sample (fields as the C test wrote them,
// stamps in its CLOCK_MONOTONIC ns as strings).
function compare(where, type, d, e, m, off) {
  const stamp = (mono) => (BigInt(mono) === 0n ? 0n : BigInt(mono) + off);
  const f = (name, got, want) => {
    const ok = typeof want === "object" ? eq(Array.from(got), want) : got === want;
    if (!ok) die(`${where}: ${name}: got ${String(got).slice(0, 80)}, want ${String(want).slice(0, 80)}`);
  };
  const pub = BigInt(m.publishTime) - off;
  if (pub < BigInt(e.commit_lo) || pub > BigInt(e.commit_hi))
    die(`${where}: publish_time ${m.publishTime} - offset is not within the commit [${e.commit_lo}, ${e.commit_hi}]`);
  switch (type) {
    case "sensor_msgs/msg/Image":
      f("header.stamp", ns(d.header.stamp), stamp(e.capture_ns));
      f("header.frame_id", d.header.frame_id, e.topic);
      f("height", d.height, e.height); f("width", d.width, e.width);
      f("encoding", d.encoding, e.encoding); f("step", d.step, e.step);
      f("sequence", m.sequence, e.frame_id);
      f("data", Buffer.from(d.data).toString("base64"), e.data_b64);
      break;
    case "sensor_msgs/msg/JointState":
      f("header.stamp", ns(d.header.stamp), stamp(e.stamp_ns));
      f("name.length", d.name.length, 0);
      f("position", d.position, e.position); f("velocity", d.velocity, e.velocity);
      f("effort", d.effort, e.effort);
      break;
    case "trajectory_msgs/msg/JointTrajectory":
      f("header.stamp", ns(d.header.stamp), stamp(e.t0_ns));
      f("points.length", d.points.length, e.horizon);
      d.points.forEach((p, k) => {
        f(`points[${k}].positions`, p.positions, e.actions.slice(k * e.dim, (k + 1) * e.dim).map(Math.fround));
        f(`points[${k}].time_from_start`, ns(p.time_from_start), BigInt(k) * BigInt(e.period_ns));
      });
      break;
    case "pi0rt_msgs/msg/ActionChunk":
      f("seq", d.seq, BigInt(e.seq)); f("t0_ns", d.t0_ns, stamp(e.t0_ns));
      f("obs_stamp_ns", d.obs_stamp_ns, stamp(e.obs_stamp_ns)); f("period_ns", d.period_ns, BigInt(e.period_ns));
      for (const k of ["horizon", "dim", "preprocess_us", "encode_us", "denoise_us", "postprocess_us", "total_us"]) f(k, d[k], e[k]);
      f("actions", d.actions, e.actions.map(Math.fround));
      break;
    case "pi0rt_msgs/msg/Action":
      f("due_ns", d.due_ns, stamp(e.due_ns)); f("chunk_seq", d.chunk_seq, BigInt(e.chunk_seq));
      f("index", d.index, e.index); f("flags", d.flags, e.flags); f("values", d.values, e.values.map(Math.fround));
      break;
    case "pi0rt_msgs/msg/NodeStatus":
      f("stamp_ns", d.stamp_ns, stamp(e.stamp_ns));
      for (const k of ["state", "last_error", "hold_reason", "tick_late_p50_us", "tick_late_p99_us", "tick_late_max_us", "infer_p50_us", "infer_p99_us", "infer_max_us"]) f(k, d[k], e[k]);
      for (const k of ["ticks", "missed_ticks", "chunks", "dropped_chunks", "holds"]) f(k, d[k], BigInt(e[k]));
      f("message", d.message, e.message);
      break;
    default:
      die(`${where}: unexpected type ${type}`);
  }
}

// Groups decoded messages by channel topic, in file order.
function byTopic(file) {
  const t = new Map();
  for (const m of file.msgs) {
    const c = file.chans.get(m.channelId);
    if (!t.has(c.topic)) t.set(c.topic, []);
    t.get(c.topic).push({ m, type: c.type, d: c.reader.readMessage(m.data) });
  }
  return t;
}

function checkExpected(path, file, expected, prefixOnly) {
  if (file.clockOffset === null && prefixOnly && file.msgs.length === 0) return 0;
  if (file.clockOffset === null) die(`${path}: no pi0rt.clock metadata`);
  const off = file.clockOffset, mine = BigInt(expected.clock_offset_ns);
  const diff = off > mine ? off - mine : mine - off;
  if (diff > 20000000n) die(`${path}: clock offset ${off} differs from the test's ${mine} by ${diff} ns`);
  const got = byTopic(file);
  let n = 0;
  for (const [topic, want] of Object.entries(expected.channels)) {
    const have = got.get(topic) ?? [];
    if (prefixOnly ? have.length > want.length : have.length !== want.length)
      die(`${path}: ${topic}: ${have.length} messages, published ${want.length}`);
    have.forEach((h, i) => compare(`${path}: ${topic}[${i}]`, h.type, h.d, want[i], h.m, off));
    n += have.length;
    got.delete(topic);
  }
  if (got.size) die(`${path}: unexpected channels ${[...got.keys()]}`);
  return n;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "verify") {
  const expected = JSON.parse(await readFile(args[1], "utf8"));
  const file = await readIndexed(args[0]);
  const n = checkExpected(args[0], file, expected, args[2] === "--prefix");
  console.log(`check.mjs: ${args[0]}: ${n} messages equal the published ones (indexed + stream readers, CRCs checked)`);
} else if (mode === "recovered") {
  for (let i = 0; i + 2 < args.length; i += 3) await recovered(...args.slice(i, i + 3));
  console.log(`check.mjs: ${args.length / 3} recovered files checked`);
} else if (mode === "roundtrip") {
  await roundtrip(...args);
} else if (mode === "write-foreign") {
  await writeForeign(args[0]);
} else {
  die("usage: check.mjs verify|recovered|roundtrip ...");
}

async function recovered(brokenPath, fixedPath, expPath) {
  const broken = await readStream(brokenPath, false);
  const fixed = await readIndexed(fixedPath);
  const key = (m) => `${fixed.chans.get(m.channelId)?.topic}|${m.sequence}|${m.logTime}|${m.publishTime}|${Buffer.from(m.data).toString("base64")}`;
  const bkey = (m) => `${broken.chans.get(m.channelId)?.topic}|${m.sequence}|${m.logTime}|${m.publishTime}|${Buffer.from(m.data).toString("base64")}`;
  if (fixed.msgs.length !== broken.msgs.length)
    die(`${fixedPath}: ${fixed.msgs.length} messages, the intact chunks of ${brokenPath} hold ${broken.msgs.length}`);
  fixed.msgs.forEach((m, i) => {
    if (key(m) !== bkey(broken.msgs[i])) die(`${fixedPath}: message ${i} differs from ${brokenPath}`);
  });
  const expected = JSON.parse(await readFile(expPath, "utf8"));
  checkExpected(fixedPath, fixed, expected, true);
  console.log(`check.mjs: ${fixedPath}: all ${fixed.msgs.length} messages of the intact chunks of ${brokenPath}`);
}

// The first stamp inside a decoded message (ns), or null.
function stampOf(d) {
  if (d.header) return ns(d.header.stamp);
  for (const k of ["stamp_ns", "t0_ns", "due_ns"]) if (typeof d[k] === "bigint") return d[k];
  return null;
}

async function roundtrip(pathA, pathB, prefix) {
  const a = byTopic(await readIndexed(pathA));
  const b = new Map([...byTopic(await readIndexed(pathB))].map(([t, v]) => [t.replace("/" + prefix, "/"), v]));
  let shift = null, n = 0;
  const norm = (x, s) => JSON.stringify(x, (k, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
    if (ArrayBuffer.isView(v)) return Array.from(v);
    return v;
  });
  for (const [topic, am] of a) {
    const bm = b.get(topic) ?? [];
    if (am.length !== bm.length) die(`${topic}: ${am.length} vs ${bm.length} messages`);
    am.forEach((x, i) => {
      const y = bm[i];
      if (y.d.header) y.d.header.frame_id = y.d.header.frame_id.replace(prefix, "");
      const s = stampOf(y.d) - stampOf(x.d);
      if (shift === null) shift = s;
      if (s !== shift) die(`${topic}[${i}]: stamp shifted by ${s}, others by ${shift}`);
      if (x.m.sequence !== y.m.sequence) die(`${topic}[${i}]: sequence ${x.m.sequence} vs ${y.m.sequence}`);
      // stamps inside the message shift by the same constant; everything else is equal
      const fix = (d, by) => JSON.parse(norm(d), (k, v) => {
        if (k === "stamp" || k.endsWith("_ns") && k !== "period_ns") {
          if (typeof v === "string" && v !== "0") return (BigInt(v) - by).toString();
          if (v && typeof v === "object" && "sec" in v) return ns(v) - by + "";
        }
        return v;
      });
      const dx = JSON.stringify(fix(x.d, 0n)), dy = JSON.stringify(fix(y.d, shift));
      if (dx !== dy) die(`${topic}[${i}]: ${dx.slice(0, 200)} vs ${dy.slice(0, 200)}`);
      n++;
    });
  }
  if (a.size !== b.size) die(`channel counts differ: ${a.size} vs ${b.size}`);
  console.log(`check.mjs: ${pathB}: ${n} messages equal those of ${pathA} (stamps shifted by ${shift} ns)`);
}

// 10 images (4x2 rgb8, data[k] = (3 i + k) & 255, stamp i s + 7 ns) on /foreign/cam and 10
// joint states (position [i, i + 0.5], velocity [-i, 2], no effort, stamp i s + 1 ns) on
// /foreign/joints, interleaved, log_time = 1 s + i ms; as the ROS 2 tools write them.
async function writeForeign(path) {
  const parts = [];
  let pos = 0n;
  const writable = { position: () => pos, write: async (b) => { parts.push(Buffer.from(b)); pos += BigInt(b.byteLength); } };
  const w = new McapWriter({ writable, chunkSize: 300 });
  await w.start({ profile: "ros2", library: "check.mjs" });
  const sep = "=".repeat(80) + "\n";
  const header = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n" + sep +
    "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n";
  const img = "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n" + sep + header;
  const js = "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n" + sep + header;
  const enc = new TextEncoder();
  const si = await w.registerSchema({ name: "sensor_msgs/msg/Image", encoding: "ros2msg", data: enc.encode(img) });
  const sj = await w.registerSchema({ name: "sensor_msgs/msg/JointState", encoding: "ros2msg", data: enc.encode(js) });
  const ci = await w.registerChannel({ topic: "/foreign/cam", schemaId: si, messageEncoding: "cdr", metadata: new Map() });
  const cj = await w.registerChannel({ topic: "/foreign/joints", schemaId: sj, messageEncoding: "cdr", metadata: new Map() });
  const wi = new MessageWriter(parse(img, { ros2: true })), wj = new MessageWriter(parse(js, { ros2: true }));
  for (let i = 0; i < 10; i++) {
    const t = BigInt(1e9) + BigInt(i) * 1000000n;
    const data = new Uint8Array(24).map((_, k) => (3 * i + k) & 255);
    await w.addMessage({ channelId: ci, sequence: i, logTime: t, publishTime: t, data: wi.writeMessage({
      header: { stamp: { sec: i, nanosec: 7 }, frame_id: "cam" }, height: 2, width: 4, encoding: "rgb8",
      is_bigendian: 0, step: 12, data }) });
    await w.addMessage({ channelId: cj, sequence: i, logTime: t + 1n, publishTime: t + 1n, data: wj.writeMessage({
      header: { stamp: { sec: i, nanosec: 1 }, frame_id: "" }, name: ["a", "b"], position: [i, i + 0.5],
      velocity: [-i, 2], effort: [] }) });
  }
  await w.end();
  await writeFile(path, Buffer.concat(parts));
}
