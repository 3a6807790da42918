#!/usr/bin/env bash
# shm demo, run by hand: two synthetic publishers (a 720p camera at 30 Hz, joint states
# at 100 Hz), watched with pi0rt-shm ls / info / echo / hz / bw, then stopped; gc removes
# their segments. About 5 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${BUILD:-build}/pi0rt-shm
cam=demo.cam.$$ joints=demo.joints.$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$T" gc "demo." >/dev/null || true
}
trap cleanup EXIT
"$T" pub "$cam" --type image --size 1280x720 --rate 30 --duration 10 & pids+=($!)
"$T" pub "$joints" --type joints --rate 100 --duration 10 & pids+=($!)
sleep 0.5
echo "--- pi0rt-shm ls"
"$T" ls | grep -E "^TOPIC|^demo\." || true
echo "--- pi0rt-shm info $cam"
"$T" info "$cam"
echo "--- pi0rt-shm echo $joints --count 3"
timeout 5 "$T" echo "$joints" --count 3
echo "--- pi0rt-shm hz $cam --duration 2.1"
timeout 5 "$T" hz "$cam" --duration 2.1
echo "--- pi0rt-shm bw $cam --duration 1.1"
timeout 5 "$T" bw "$cam" --duration 1.1
for p in "${pids[@]}"; do kill -TERM "$p"; done
wait
pids=()
echo "--- publishers stopped: pi0rt-shm ls"
"$T" ls | grep -E "^TOPIC|^demo\." || true
echo "--- pi0rt-shm gc demo."
"$T" gc "demo."
