#!/usr/bin/env bash
# The one command for a lent GPU machine (issue 21): recipe 5's four models, within 8 minutes on an H200.
#
#     device run, from the repository root:  bash bench/gpu_train_all.sh      (timeout_s 600)
#
# `python -m pretrained.train_all` prints its estimate first and stops before rendering if the run would
# not fit 480 s (it then names the --epochs that would: pass them after the script's name). What comes
# back under $OUT is 6 files (the device returns at most 8 of 16 MiB): the four fp16 .safetensors,
# logs.tar (their .train.json and summary.json) and train_all.log (everything printed). Then, here:
#     mkdir v3 && cp <files>/*.safetensors v3/ && tar -xf <files>/logs.tar -C v3
#     python -m pretrained.model_card --weights v3
# Extra arguments go to train_all (the tests run it with --dry-run); PYTHON picks the interpreter.
set -euo pipefail
work=$(mktemp -d)
PYTHONUNBUFFERED=1 "${PYTHON:-python3}" -m pretrained.train_all --recipe 5 --out "$work" "$@" 2>&1 | tee "$OUT/train_all.log"
cp "$work"/*-resnet18-shapes.safetensors "$OUT"/
(cd "$work" && tar -cf "$OUT/logs.tar" *.train.json summary.json)
rm -rf "$work"
