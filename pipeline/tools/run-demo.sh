#!/usr/bin/env bash
# Demo, run by hand: one π0 inference on a tiny random-weight model, end to end through pi0rt-infer.
# Builds the model once (build/models/tiny-pi0, pi0rt-mkmodel), writes example inputs (a
# synthetic 640x480 camera image, a state vector, prompt token ids), runs pi0rt-infer and
# prints the chunk's shape, its first values and the timing breakdown.
set -euo pipefail
BUILD=${BUILD:-build}
PY=/usr/bin/python3
model=$BUILD/models/tiny-pi0
demo=$BUILD/demo
if [ ! -f "$model/model.safetensors" ]; then
    echo "run: building a tiny random π0 model in $model"
    mkdir -p "$(dirname "$model")"
    "$BUILD/pi0rt-mkmodel" --size tiny --variant pi0 --seed 1 --out "$model"
fi
mkdir -p "$demo"
"$PY" - "$demo" <<'PYEOF'
import sys
import numpy as np
d = sys.argv[1]
yy, xx = np.mgrid[0:480, 0:640]
img = np.stack([xx * 255 // 639, yy * 255 // 479, (xx + yy) * 255 // 1118], -1).astype(np.uint8)
np.save(f"{d}/base.npy", img)                                        # uint8 [480, 640, 3]
np.save(f"{d}/state.npy", np.linspace(-0.5, 0.5, 14, dtype=np.float32))  # 14 joints, normalized
np.save(f"{d}/tokens.npy", np.array([2, 45, 310, 77, 512, 9, 108], np.int32))  # prompt ids
PYEOF
echo "run: $BUILD/pi0rt-infer --model $model --image base=$demo/base.npy --state $demo/state.npy --tokens $demo/tokens.npy --out $demo/actions.npy --json"
json=$("$BUILD/pi0rt-infer" --model "$model" --image "base=$demo/base.npy" --state "$demo/state.npy" \
    --tokens "$demo/tokens.npy" --out "$demo/actions.npy" --json)
"$PY" - "$demo/actions.npy" "$json" <<'PYEOF'
import json, sys
import numpy as np
a = np.load(sys.argv[1])
t = json.loads(sys.argv[2])
print(f"chunk: shape {a.shape} {a.dtype} (normalized actions: horizon x action_dim)")
np.set_printoptions(precision=4, suppress=True)
print("first action, first 8 dims:", a[0, :8])
print("last action,  first 8 dims:", a[-1, :8])
print("timing (ms): preprocess {preprocess_ms:.2f}  vision {vision_ms:.2f}  prefix {prefix_ms:.2f}"
      "  denoise {denoise_ms:.2f}  total {total_ms:.2f}  ({steps} steps)".format(**t))
PYEOF
