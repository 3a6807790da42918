#!/usr/bin/env bash
# Loader benchmark (make bench): writes full-size π0 checkpoints (f32 14 GB, bf16 7 GB)
# with pi0rt-mkmodel into a temp dir, one at a time, and removes them afterwards.
# One JSON object per line:
#   mkmodel_write: seconds and GB/s to disk (fsync included), against a baseline measured
#                  in the same run: dd conv=fsync of as many bytes from /dev/zero, same dir
#   loader_load:   pi0_weights_load of the full checkpoint (headers only: ms, RSS)
#   preprocess:    ms per image (1280x720, 640x480, 224x224 -> patches)
# PI0_BENCH_DIR overrides the temp dir parent (default: $TMPDIR or /tmp); needs ~15 GB free.
set -euo pipefail
BUILD=${BUILD:-build}
parent=${PI0_BENCH_DIR:-${TMPDIR:-/tmp}}
tmp=$(mktemp -d "$parent/pi0rt-loader-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
"$BUILD/tests/bench_loader" preprocess
for dtype in f32 bf16; do
    bytes=$("$BUILD/pi0rt-mkmodel" --size full --variant pi0 --dtype $dtype --list | tail -n 1 |
            sed -E 's/.* params, ([0-9]+) bytes/\1/')
    # both timings include flushing the file to disk (page-cache effects would otherwise
    # dominate on a machine with less free memory than the file size)
    sync
    t0=$(now)
    dd if=/dev/zero of="$tmp/dd.bin" bs=8M count=$(( (bytes + 8388607) / 8388608 )) conv=fsync status=none
    t1=$(now)
    dd_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    rm -f "$tmp/dd.bin"
    sync
    t1=$(now)
    "$BUILD/pi0rt-mkmodel" --size full --variant pi0 --dtype $dtype --seed 1 --out "$tmp/full-$dtype"
    sync "$tmp/full-$dtype/model.safetensors"
    t2=$(now)
    awk -v b="$bytes" -v dd="$dd_s" -v t1="$t1" -v t2="$t2" -v dt=$dtype \
        'BEGIN { mk = t2 - t1; printf "{\"bench\":\"mkmodel_write\",\"size\":\"full\",\"dtype\":\"%s\",\"bytes\":%.0f,\"seconds\":%.2f,\"gb_per_s\":%.2f,\"baseline_dd_seconds\":%.2f,\"baseline_dd_gb_per_s\":%.2f,\"ratio_to_dd\":%.2f}\n", dt, b, mk, b/mk/1e9, dd, b/dd/1e9, dd/mk }'
    "$BUILD/tests/bench_loader" load "$tmp/full-$dtype"
    rm -rf "$tmp/full-$dtype"
done
