#!/usr/bin/env bash
# The GPU figures of the README, in one short run on a lent GPU machine (the device tool):
# SSD300 train step ours vs torchvision at batch 32 (fp32 / bf16 autocast, channels-last),
# then a few hundred steps of real recipes with `ssd.train --device cuda`.
# Needs pycocotools as a wheel in .whl/ (the machine has torch and torchvision).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
for args in "--amp none" "--amp none --channels-last" "--amp bf16 --channels-last" "--amp fp16 --channels-last"; do
  tag=$(echo "$args" | tr -d ' -')
  timeout 120 python3 -m benchmarks.bench_train_step --device cuda --batch 32 --repeats 10 --warmup 3 $args \
    --json "$OUT/step_$tag.json" | tr -d '\n'; echo
done
run() {  # name, seconds, then ssd.train flags
  local name=$1 secs=$2; shift 2
  timeout "$secs" python3 -m ssd.train --out "/tmp/runs/$name" --device cuda "$@" > "$OUT/$name.out" 2>&1
  echo "$name rc=$?"; tail -n 4 "/tmp/runs/$name/train.log"; cp "/tmp/runs/$name/train.log" "$OUT/$name.log" 2>/dev/null
}
run shipped_recipe 200 --dataset procedural --train-size 3000 --val-size 200 --data-seed 0 --model compact256 \
  --epochs 10 --batch-size 32 --lr 2e-3 --augment light --warmup-steps 50 --eval-every 2 --log-every 10 \
  --seed 0 --max-steps 300 --num-workers 8
run ssd300_procedural 200 --dataset procedural --train-size 2000 --val-size 64 --data-seed 0 --model ssd300_vgg16 \
  --epochs 10 --batch-size 32 --lr 1e-3 --optimizer sgd --augment ssd --log-every 10 --eval-every 100 \
  --seed 0 --max-steps 200 --num-workers 12
