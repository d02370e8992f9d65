#!/usr/bin/env bash
# The one command for a lent GPU machine (issue 21): recipe 5's four models, within 8 minutes on an H200.
#
#     device run, from the repository root:  bash bench/gpu_train_all.sh      (timeout_s 600)
#
# `python -m training.train_all` prints its estimate first and stops before rendering if the run would
# not fit 480 s (it then names the --epochs that would: pass them after the script's name). What comes
# back under $OUT is at most 6 files (the device returns 8 of 16 MiB): the fp16 .safetensors written,
# logs.tar (their .train.json and summary.json) and train_all.log (everything printed), also after a
# failure or a timeout. Then, here:
#     mkdir v3 && cp <files>/*.safetensors v3/ && tar -xf <files>/logs.tar -C v3
#     python -m lens card --weights v3
# Extra arguments go to train_all (the tests run it with --dry-run); PYTHON picks the interpreter.
set -euo pipefail
work=$(mktemp -d)
pack() {
    cd "$work"
    cp *-resnet18-shapes.safetensors "$OUT"/ 2>/dev/null || true
    logs=$(ls *.train.json summary.json 2>/dev/null || true)
    [ -z "$logs" ] || tar -cf "$OUT/logs.tar" $logs
}
trap pack EXIT
PYTHONUNBUFFERED=1 "${PYTHON:-python3}" -m training.train_all --recipe 5 --out "$work" "$@" 2>&1 | tee "$OUT/train_all.log"
