#!/usr/bin/python3
"""Tokenizer benchmark: encoding one π0 prompt (~48 ids) with pi0rt's tokenizer, against
sentencepiece's spm_encode (0.1.97, Debian) on the same model and text as the baseline.

Trains two small models on a generated corpus (BPE with the PaliGemma settings, and a
unigram nmt_nfkc model), then prints one JSON object per result line:
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
        for name, flags in models.items():
            prefix = os.path.join(d, name)
            subprocess.run(["spm_train", "--input=" + c, "--model_prefix=" + prefix,
                            "--minloglevel=2", "--num_threads=2", "--hard_vocab_limit=false"]
                           + flags.split(), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
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
                    "baseline": "spm_encode 0.1.97 per line (same model, same text)",
                    "baseline_us": round(base, 3),
                    "speedup_vs_baseline": round(base / r["us_per_call"], 2)}))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
