#!/usr/bin/env bash
# The GPU figures in one run, for a machine with an NVIDIA GPU (and possibly no
# TensorFlow): baseline cifar_cnn throughput (plain fit vs the suite's training)
# and the suite's overhead, on JAX and PyTorch.   bash bench/gpu_figures.sh
set -u
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
nvidia-smi -L || true
for backend in jax torch; do
  modes=plain,suite,fused
  [ "$backend" = torch ] && modes=plain,suite  # steps_per_execution > 1 is JAX/TensorFlow only
  echo "== $backend: baseline cifar_cnn throughput, batch 32"
  KERAS_BACKEND=$backend timeout 200 python3 bench/cifar_throughput.py --images 16384 --epochs 3 --batch 32 \
    --modes $modes 2>&1 | grep -E "backend|images/s|Error|error" | tail -6
  echo "== $backend: suite overhead, 3 trials x 2 epochs"
  KERAS_BACKEND=$backend timeout 200 python3 bench/suite_overhead.py --trials 3 --epochs 2 --images 8000 2>&1 | tail -4
done
