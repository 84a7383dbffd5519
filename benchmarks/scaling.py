"""Meta-training throughput (tasks per second) against meta-batch size and device count.

MAML, 5 inner SGD steps, on 10-shot sinusoid regression with the 1-40-40-1 MLP,
float32. Part 1: tasks/s of the jit-compiled meta-step for meta-batches of 1
to 256 tasks on one device. Part 2: the same meta-step with the task batch
sharded over 1, 2, 4 and 8 devices (``make_meta_step(..., mesh=...)``); on a
CPU the devices are virtual (``--xla_force_host_platform_device_count``), so
they share the machine's cores: the figure shows the overhead of the sharded
program, not a speed-up. Each device count runs in a fresh process. Times are
medians of ``--repeats`` blocks of meta-steps (``block_until_ready``), compile
time apart.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --batches 1,16,256 --devices 1,4 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def measure(meta_batch: int, devices: int, repeats: int, iters: int) -> tuple[float, float]:
  """(compile seconds, tasks per second) of the meta-step on ``devices`` devices."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  import jmeta
  from jmeta._sharding import task_mesh

  model = jmeta.MLP()
  params = model.init(jax.random.key(0), jnp.zeros((1, 1)))
  learner = jmeta.maml(jmeta.mse_loss(model.apply), optax.sgd(0.01), steps=5)
  mesh = task_mesh(jax.devices()[:devices]) if devices > 1 else None
  step = jmeta.make_meta_step(learner, optax.adam(1e-3), mesh=mesh)
  state = step.init(jax.random.key(0), params)
  tasks = jmeta.sinusoid(shots=10, queries=10).sample_batch(jax.random.key(1), meta_batch)
  t0 = time.perf_counter()
  state, m = step.update(state, tasks)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(iters):
      state, m = step.update(state, tasks)
    jax.block_until_ready(state)
    times.append((time.perf_counter() - t0) / iters)
  return compile_s, meta_batch / float(np.median(times))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", default="1,4,16,64,256", help="meta-batch sizes")
  parser.add_argument("--devices", default="1,2,4,8", help="device counts (virtual on CPU)")
  parser.add_argument("--device-batch", type=int, default=64, help="meta-batch of part 2")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--iters", type=int, default=10, help="meta-steps per timed block")
  parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.worker is not None:  # one device count, in a fresh process
    c, tps = measure(args.device_batch, args.worker, args.repeats, args.iters)
    print(f"RESULT {c} {tps}")
    return

  import jax
  print(f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPU core(s);"
        " MAML (5 inner steps) sinusoid MLP 1-40-40-1, float32")
  print("\n1) one device: tasks/s against meta-batch size")
  print(f"{'meta-batch':>10} {'tasks/s':>10} {'meta-steps/s':>13} {'compile s':>10}")
  for b in (int(v) for v in args.batches.split(",")):
    c, tps = measure(b, 1, args.repeats, args.iters)
    print(f"{b:>10} {tps:>10.0f} {tps / b:>13.1f} {c:>10.1f}", flush=True)

  print(f"\n2) meta-batch {args.device_batch} sharded over virtual devices")
  print(f"{'devices':>10} {'tasks/s':>10} {'compile s':>10}")
  for d in (int(v) for v in args.devices.split(",")):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={d}")
    out = subprocess.run([sys.executable, __file__, "--worker", str(d), "--device-batch",
                          str(args.device_batch), "--repeats", str(args.repeats), "--iters",
                          str(args.iters)], env=env, capture_output=True, text=True, check=True).stdout
    c, tps = (float(v) for v in out.split("RESULT")[1].split())
    print(f"{d:>10} {tps:>10.0f} {c:>10.1f}", flush=True)


if __name__ == "__main__":
  main()
