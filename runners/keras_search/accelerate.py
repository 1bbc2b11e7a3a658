"""Faster training steps on a GPU: JAX fuses several steps into one compiled call; PyTorch replays CUDA graphs.

Both leave plain CPU runs alone; SEARCH_SUITE_FUSE_STEPS=0 turns them off, =1 forces fusing on JAX.
"""

import functools
import itertools
import os
import warnings
from typing import Any

import keras

from lyrics_cifar_search.runners import compat


def fuse_train_steps(model, n_train, batch_size, max_steps=64):
    """JAX on an accelerator: run up to `max_steps` training steps per compiled call.

    A small model on a GPU spends most of each step on launching it from
    Python. Here Keras hands the train function k batches at a time
    (steps_per_execution), which are stacked on the device and run by one
    compiled lax.scan over Keras's own train_step: the same updates, in the same
    order, from one launch. k divides the number of full batches, so every
    chunk has the same shape (one compilation); a smaller last batch runs
    alone, as in plain Keras. Returns k (1: nothing changed).
    """
    import jax  # JAX: only on that backend
    full = n_train // batch_size
    k = max((d for d in range(2, max_steps + 1) if full % d == 0), default=1)
    if k == 1:
        return 1

    def k_steps(state, batches):
        def body(state, data):
            logs, state = model.train_step(state, data)
            return state, logs
        state, logs = jax.lax.scan(body, state, batches)
        return jax.tree.map(lambda v: v[-1], logs), state  # the logs after the last step, as Keras reports

    fused = jax.jit(k_steps, donate_argnums=0)
    single = jax.jit(model.train_step, donate_argnums=0)

    def train_function(state, iterator):
        batches = list(itertools.islice(iterator, k))  # this chunk: k batches, fewer at the epoch's end
        if not batches:
            raise StopIteration  # as Keras's own train function does; fit() ends the epoch
        if len(batches) == k and len({jax.tree.leaves(b)[0].shape for b in batches}) == 1:
            return fused(state, jax.tree.map(lambda *xs: jax.numpy.stack(xs), *batches))
        for data in batches:
            logs, state = single(state, data)
        return logs, state

    model.steps_per_execution = k
    model.train_function = train_function  # fit() builds its own only when this is unset
    return k


# Fusing costs one longer compilation per trial and saves a little on every
# step: on an H100 it pays from a few thousand steps per trial (a full block-1
# trial is about 25,000; the measurements: bench/README.md).
FUSE_MIN_STEPS = 4000


def graph_train_steps(model, warmup=3):
    """PyTorch on a CUDA GPU: replay each training step as one recorded CUDA graph.

    PyTorch runs Keras's train_step eagerly: every layer, loss, metric and
    optimizer update is launched from Python, which dominates a small model's
    step on a GPU. Here the first `warmup` batches train eagerly (on a side
    stream, as PyTorch's CUDA-graph notes ask), the next is recorded once with
    torch.cuda.graph, and every later batch of that shape is copied into the
    recorded input buffers and replayed: the same kernels, the same in-place
    updates of weights, optimizer slots, metrics and BatchNorm statistics, from
    one launch. Python numbers Keras turns into GPU tensors inside the step
    (Adam's betas, the batch size for the loss tracker) become constants of the
    graph, as they are of a traced step on JAX or TensorFlow. A batch of
    another shape (the smaller last one) trains eagerly. If recording fails
    (an operation that waits for the GPU, e.g. seeded random layers), one
    warning says why and training continues eagerly. Returns the train
    function (a _GraphedSteps); its `.captured` says whether a graph is in use.
    """
    steps = _GraphedSteps(model.train_step, warmup)
    model.train_function = steps  # fit() builds its own only when this is unset
    return steps


class _GraphedSteps:
    """graph_train_steps' train function: one recording's state (its graph, input buffers and logs)."""

    def __init__(self, eager, warmup):
        import torch  # PyTorch: only on that backend
        self.eager, self.warmup, self.seen = eager, warmup, 0
        self.side = torch.cuda.Stream()
        # set once a step is recorded (_record): the CUDA graph, its input buffers, its logs
        self.shapes: Any = None
        self.graph: Any = None
        self.inputs: Any = None
        self.logs: Any = None
        self.failed = self.captured = False

    def __call__(self, data):
        batch = data[0]  # Keras hands a list of steps_per_execution (= 1) batches
        leaves = keras.tree.flatten(batch)  # x, y and sample weights; None where absent
        shapes = [None if t is None else tuple(t.shape) for t in leaves]
        if self.shapes is None:
            self.shapes = shapes
        if self.failed or shapes != self.shapes or not all(t is None or _is_torch_tensor(t) for t in leaves):
            return self.eager(batch)
        if self.graph is not None:
            return self._replay(leaves)
        if self.seen < self.warmup:
            self.seen += 1
            return self._warm_up(batch)
        try:
            return self._record(batch, leaves)
        except Exception as e:  # noqa: BLE001 - any failure to record: train eagerly instead
            return self._give_up(batch, e)

    def _replay(self, leaves):
        for buffer, t in zip(self.inputs, leaves):
            if t is not None:
                buffer.copy_(t, non_blocking=True)
        self.graph.replay()
        return self.logs

    def _warm_up(self, batch):
        import torch
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            logs = self.eager(batch)
        torch.cuda.current_stream().wait_stream(self.side)
        return logs

    def _record(self, batch, leaves):
        import torch
        inputs = [None if t is None else t.to("cuda", copy=True) for t in leaves]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        constants = functools.partial(_device_constant, torch.as_tensor)  # it calls the original as_tensor
        with compat.torch_as_tensor(constants), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            logs = self.eager(keras.tree.pack_sequence_as(batch, inputs))
        self.graph, self.inputs, self.logs, self.captured = graph, inputs, logs, True
        graph.replay()  # recording ran nothing: this batch's step
        return logs

    def _give_up(self, batch, e):
        import torch
        self.failed, self.graph, self.captured = True, None, False
        torch.cuda.synchronize()
        warnings.warn(f"training without CUDA graphs: recording the train step failed "
                      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", stacklevel=3)
        return self.eager(batch)


def _is_torch_tensor(t):
    import torch
    return isinstance(t, torch.Tensor)


def _device_constant(as_tensor, data, dtype=None, device=None):
    """torch.as_tensor while a step is recorded: Python numbers (and small tuples of them, e.g. a shape) bound
    for the GPU become fill kernels of the graph, since a copy from host memory cannot be recorded."""
    import torch
    if device is None or torch.device(device).type != "cuda" or isinstance(data, torch.Tensor):
        return as_tensor(data, dtype=dtype, device=device)
    host = as_tensor(data, dtype=dtype)
    if host.numel() > 256:
        return as_tensor(data, dtype=dtype, device=device)  # fails the recording: trains eagerly
    values = [torch.full((), v, dtype=host.dtype, device=device) for v in host.reshape(-1).tolist()]
    if not values:
        return torch.empty(host.shape, dtype=host.dtype, device=device)
    return values[0] if host.ndim == 0 else torch.stack(values).reshape(host.shape)


def use_graph_steps():
    """Record train steps as CUDA graphs? PyTorch with a CUDA GPU, unless SEARCH_SUITE_FUSE_STEPS=0."""
    if keras.backend.backend() != "torch" or os.environ.get("SEARCH_SUITE_FUSE_STEPS") == "0":
        return False
    import torch  # PyTorch: only on that backend
    return torch.cuda.is_available()


def use_fused_steps(steps):
    """Fuse train steps? JAX on a GPU/TPU for a long enough trial, unless SEARCH_SUITE_FUSE_STEPS=0/1 says."""
    flag = os.environ.get("SEARCH_SUITE_FUSE_STEPS")
    if keras.backend.backend() != "jax":
        return False
    if flag is not None:
        return flag == "1"
    import jax  # JAX: only on that backend
    return jax.default_backend() != "cpu" and steps >= FUSE_MIN_STEPS
