#!/usr/bin/python3
"""Tokenizer benchmark: encoding one π0 prompt (~48 ids) with pi0rt's tokenizer, against
sentencepiece's spm_encode (0.1.97, Debian) on the same model and text as the baseline.

Trains two small models on a generated corpus (BPE with the PaliGemma settings, and a
unigram nmt_nfkc model) and writes a 257152-piece BPE model of PaliGemma's shape, then prints one JSON object per result line:
  pi0rt: pi0rt-tokenize --bench N (in-process loop; µs per call)
  baseline: spm_encode over N copies of the text, minus spm_encode on one line (process
            start and model load), divided by N (µs per line, in-process as well).
Usage: BUILD=build tests/tokenizer/bench.py"""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(BUILD, "pi0rt-tokenize")
N = 20000
TEXT = ("pick up the red cup on the left side of the table and put it in the blue bowl "
        "next to the robot, then close the top drawer slowly and fold the green towel twice "
        "before you wipe the plate")


def corpus(path):
    r = random.Random(1)
    words = ("pick up put place the a red blue green cup bowl plate drawer table left right "
             "side top bottom open close slowly quickly next to robot arm gripper it in on "
             "and then of towel sponge fold move push pull grasp rotate lift lower").split()
    syl = "ka ki to ra mo ne pi la se th er in on an re de ch sh".split()
    with open(path, "w") as f:
        for _ in range(20000):
            n = r.randint(3, 20)
            out = []
            for _ in range(n):
                x = r.random()
                if x < 0.75:
                    out.append(r.choice(words))
                elif x < 0.85:
                    out.append(str(r.randint(0, 999)))
                else:
                    out.append("".join(r.choice(syl) for _ in range(r.randint(1, 4))))
            f.write(" ".join(out) + "\n")


def paligemma_shaped_model(path):
    """A BPE model of PaliGemma's shape (257152 pieces: pad/eos/bos/unk, 256 byte pieces,
    1024 <locNNNN> user-defined symbols, pieces of the corpus words and random strings),
    byte fallback, identity normalizer, no dummy prefix, whitespace kept."""
    import struct
    r = random.Random(3)

    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def field(n, b):
        return varint(n << 3 | 2) + varint(len(b)) + b

    def piece(s, score, t):
        m = field(1, s.encode()) + varint(2 << 3 | 5) + struct.pack("<f", score) + \
            varint(3 << 3) + varint(t)
        return field(1, m)

    out = [piece("<pad>", 0, 3), piece("<eos>", 0, 3), piece("<bos>", 0, 3),
           piece("<unk>", 0, 2)]
    out += [piece("<0x%02X>" % i, 0, 6) for i in range(256)]
    out += [piece("<loc%04d>" % i, 0, 4) for i in range(1024)]
    seen = set()
    # Whole words with and without the space mark, and all their prefixes, so that the
    # BPE merges reach full words as in a trained vocabulary.
    words = TEXT.replace(",", " ,").split() + [","]
    for w in words:
        for pre in ("", "\u2581"):
            for k in range(1, len(w) + 1):
                p = pre + w[:k]
                if p not in seen:
                    seen.add(p)
                    out.append(piece(p, -float(len(out)), 1))
    alpha = "abcdefghijklmnopqrstuvwxyz\u2581"
    while len(out) < 257152:
        p = "".join(r.choice(alpha) for _ in range(r.randint(2, 10)))
        if p not in seen:
            seen.add(p)
            out.append(piece(p, -float(len(out)), 1))
    ts = varint(3 << 3) + varint(2) + varint(35 << 3) + varint(1) + field(46, b"<bos>") + \
        field(47, b"<eos>") + field(48, b"<pad>")
    ns = field(1, b"identity") + varint(3 << 3) + varint(0) + varint(4 << 3) + varint(0)
    with open(path, "wb") as f:
        f.write(b"".join(out) + field(2, ts) + field(3, ns))


def spm_us_per_line(model, text, d):
    one = os.path.join(d, "one.txt")
    many = os.path.join(d, "many.txt")
    with open(one, "w") as f:
        f.write(text + "\n")
    with open(many, "w") as f:
        f.write((text + "\n") * N)

    def run(p):
        best = 1e9
        for _ in range(3):
            t0 = time.perf_counter()
            with open(p) as fin:
                subprocess.run(["spm_encode", "--model=" + model, "--output_format=id"],
                               stdin=fin, stdout=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - t0)
        return best

    return (run(many) - run(one)) * 1e6 / N


def main():
    with tempfile.TemporaryDirectory(prefix="pi0tokbench.") as d:
        c = os.path.join(d, "corpus.txt")
        corpus(c)
        models = {
            "bpe_paligemma_settings": "--model_type=bpe --byte_fallback "
            "--normalization_rule_name=identity --add_dummy_prefix=false "
            "--remove_extra_whitespaces=false --split_digits --vocab_size=2000",
            "unigram_nmt_nfkc": "--model_type=unigram --vocab_size=2000",
        }
        models["bpe_257k_paligemma_shape"] = None
        for name, flags in models.items():
            prefix = os.path.join(d, name)
            if flags is None:
                paligemma_shaped_model(prefix + ".model")
            else:
                subprocess.run(["spm_train", "--input=" + c, "--model_prefix=" + prefix,
                                "--minloglevel=2", "--num_threads=2",
                                "--hard_vocab_limit=false"] + flags.split(), check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            model = prefix + ".model"
            ids = subprocess.run([TOOL, "--model", model, TEXT], check=True,
                                 capture_output=True, text=True).stdout.split()
            base = spm_us_per_line(model, TEXT, d)
            for fmt in ("raw", "pi0"):
                out = subprocess.run([TOOL, "--model", model, "--format", fmt, "--bench",
                                      str(N), TEXT], check=True, capture_output=True,
                                     text=True).stdout
                r = json.loads(out)
                print(json.dumps({
                    "bench": "tokenizer_encode_" + fmt, "model": name,
                    "text_bytes": len(TEXT.encode()), "ids": len(ids),
                    "us_per_call": round(r["us_per_call"], 3),
                    "cpu_us_per_call": round(r["cpu_us_per_call"], 3),
                    "baseline": "spm_encode 0.1.97 per line (same model, same text)",
                    "baseline_us": round(base, 3),
                    "speedup_vs_baseline": round(base / r["us_per_call"], 2)}))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
