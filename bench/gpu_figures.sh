#!/usr/bin/env bash
# The GPU figures in one run, for a machine with an NVIDIA GPU (and possibly no
# TensorFlow): CIFAR CNN throughput and the suite's overhead on JAX and PyTorch,
# then one short search end to end.   bash bench/gpu_figures.sh
set -u
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
nvidia-smi -L || true
for backend in jax torch; do
  for batch in 32 256; do
    echo "== $backend: baseline cifar_cnn throughput, batch $batch"
    KERAS_BACKEND=$backend python3 bench/cifar_throughput.py --images 16384 --epochs 3 --batch "$batch" 2>&1 | tail -3
  done
  echo "== $backend: suite overhead"
  KERAS_BACKEND=$backend python3 bench/suite_overhead.py --trials 3 --epochs 2 --images 8000 2>&1 | tail -3
done
echo "== jax: a short search end to end"
KERAS_BACKEND=jax python3 runners/search.py cifar_cnn --data demo --max-trials 2 --epochs 2 \
  --results-dir /tmp/gpu_results 2>&1 | grep -E "trial|complete"
