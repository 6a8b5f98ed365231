#!/usr/bin/env bash
# Issue 12 "A faster step", GPU part, in one short run on a lent GPU machine (the device tool):
# the SSD300 step ours vs torchvision at batch 32 with bf16 / fp16 autocast (ours' loss as
# `ssd.train --amp` computes it), then the shipped recipe for 300 steps with
# `ssd.train --device cuda` in fp32, --amp bf16 and --amp fp16 (GradScaler), loader workers
# and pinned memory. Needs pycocotools as a wheel in .whl/ (the machine has torch and torchvision).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
for args in "--amp none --channels-last" "--amp bf16 --channels-last" "--amp fp16 --channels-last"; do
  tag=$(echo "$args" | tr -d ' -')
  timeout 90 python3 -m benchmarks.bench_train_step --device cuda --batch 32 --repeats 10 --warmup 3 $args \
    --json "$OUT/step_$tag.json" | tr -d '\n '; echo
done
for amp in none bf16 fp16; do
  name=shipped_recipe_amp_$amp
  timeout 100 python3 -m ssd.train --out "/tmp/runs/$name" --device cuda --amp $amp --dataset procedural \
    --train-size 3000 --val-size 200 --data-seed 0 --model compact256 --epochs 10 --batch-size 32 --lr 2e-3 \
    --augment light --warmup-steps 50 --eval-every 2 --log-every 10 --seed 0 --max-steps 300 --num-workers 8 \
    > "$OUT/$name.out" 2>&1
  echo "$name rc=$?"; tail -n 3 "/tmp/runs/$name/train.log"; cp "/tmp/runs/$name/train.log" "$OUT/$name.log" 2>/dev/null
done
