#!/usr/bin/env bash
# The GPU figures in one run, for a machine with an NVIDIA GPU (and possibly no
# TensorFlow): baseline cifar_cnn throughput (plain fit vs the suite's training)
# and the suite's overhead, on PyTorch and JAX; first the GPU-only test that
# PyTorch's recorded train steps (CUDA graphs) train as Keras's own loop does.
#   bash bench/gpu_figures.sh
set -u
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
# the suite from this copy of the repository, installed or not (lyrics_cifar_search/__init__.py finds its folders)
cd "$(dirname "$0")/.." && export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L || true
echo "== torch: CUDA-graph train steps = Keras's loop"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_steps.py -k cuda_graph 2>&1 | tail -15
for backend in torch jax; do
  echo "== $backend: baseline cifar_cnn throughput, batch 32"
  KERAS_BACKEND=$backend timeout 200 python3 bench/cifar_throughput.py --images 16384 --epochs 3 --batch 32 \
    2>&1 | grep -E "backend|images/s|Error|error|Warning" | tail -8
  echo "== $backend: suite overhead, 3 trials x 2 epochs (the suite's GPU path off: like for like)"
  SEARCH_SUITE_FUSE_STEPS=0 KERAS_BACKEND=$backend timeout 200 python3 bench/suite_overhead.py --trials 3 \
    --epochs 2 --images 8000 2>&1 | grep -E "^(backend|run |    |overhead ratio)|Error"
  if [ "$backend" = torch ]; then
    echo "== torch: suite overhead as searches run (CUDA-graph steps on)"
    KERAS_BACKEND=torch timeout 200 python3 bench/suite_overhead.py --trials 3 --epochs 2 --images 8000 2>&1 \
      | grep -E "^(run |overhead ratio)|Error"
  fi
done
