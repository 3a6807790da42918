#!/usr/bin/env bash
# make run: the whole system through pi0rt-launch (launch/demo.ini) for DURATION seconds
# (default 20): camsim, motorsim, pi0rt-node on the tiny random π0 model, and one status
# line per second; then the summaries, and a check that no topic of the demo is left.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-20}
model=build/models/tiny-pi0
if [ ! -f "$model/model.safetensors" ]; then
    echo "run: building a tiny random π0 model in $model"
    mkdir -p "$(dirname "$model")"
    "$BUILD/pi0rt-mkmodel" --size tiny --variant pi0 --seed 1 --out "$model"
fi
echo "run: $BUILD/pi0rt-launch --duration $DURATION launch/demo.ini"
rc=0
"$BUILD/pi0rt-launch" --duration "$DURATION" launch/demo.ini || rc=$?
echo "run: pi0rt-shm ls (the demo's topics: cam0, cam1, joints, action, chunk, pi0.status)"
left=$("$BUILD/pi0rt-shm" ls | awk 'NR > 1 && $1 ~ /^(cam[01]|joints|action|chunk|pi0\.status)$/')
if [ -n "$left" ]; then
    echo "$left"
    echo "run: topics left behind" >&2
    exit 1
fi
echo "run: none left"
exit "$rc"
