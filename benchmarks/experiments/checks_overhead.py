"""What the in-step input checks cost: ``MetaStep.update`` now against a commit before them.

``python -m benchmarks.experiments.checks_overhead --against COMMIT`` extracts ``jmeta/``
of ``COMMIT`` (``git archive``) as the package ``jmeta_before`` and times both
versions' ``make_meta_step(...).update`` in one process, on the same
parameters and task batches, in alternating rounds (before, after, before,
...), each round ``--calls`` back-to-back updates ended by
``block_until_ready``. It prints the median seconds per update of each and
their ratio (after / before) per configuration:

* ``sinusoid``: MAML, MLP 1-40-40-1, 10 shots and queries, 1 inner SGD step,
  meta-batch 25, Adam (mean squared error: no labels, so this is the cost of
  the extended non-finite guard and of ``update``'s state check);
* ``omniglot-maml``: MAML, the 4-block conv net (64 filters), 5-way 1-shot with
  15 queries per class, 1 inner step, cross-entropy (labels checked in every
  support and query loss);
* ``omniglot-protonet``: ProtoNets on the same episodes and conv body (labels
  and per-class support counts checked in the head).

Images are random (timing does not depend on the pixels). Float32 on the CPU.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

README_FIGURE = ("none: the cost of MetaStep.update's input checks against an earlier commit (printed)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _extract(commit: str, where: str) -> None:
  """Writes ``jmeta/`` of ``commit`` to ``where/jmeta_before`` with its imports renamed."""
  tar = subprocess.run(["git", "-C", REPO, "archive", commit, "jmeta"], check=True,
                       capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", where], input=tar, check=True)
  os.rename(os.path.join(where, "jmeta"), os.path.join(where, "jmeta_before"))
  pattern = re.compile(r"\bjmeta(?=[.\s])")
  for root, _, files in os.walk(os.path.join(where, "jmeta_before")):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(root, f)
        with open(path) as fh:
          text = fh.read()
        with open(path, "w") as fh:
          fh.write(pattern.sub("jmeta_before", text))


def _load_package(name: str, folder: str):
  """Imports the package in ``folder`` as ``name`` (no ``sys.path`` edit)."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                submodule_search_locations=[folder])
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def _setups(jm, name: str, meta_batch: int):
  """``(step, state, [tasks, tasks])`` of one configuration with the module ``jm``."""
  import jax
  import jax.numpy as jnp
  import optax
  key = jax.random.key(0)
  if name == "sinusoid":
    model = jm.MLP(hidden=(40, 40), out=1)
    params = model.init(key, jnp.zeros((1, 1)))
    learner = jm.maml(jm.mse_loss(model.apply), optax.sgd(0.01), steps=1)
    family = jm.sinusoid(shots=10, queries=10)
    batches = [family.sample_batch(jax.random.key(i), meta_batch) for i in (1, 2)]
  else:
    ways, shots, queries = 5, 1, 15
    k1, k2 = jax.random.split(key)
    sx = jax.random.uniform(k1, (meta_batch, ways * shots, 28, 28, 1))
    qx = jax.random.uniform(k2, (meta_batch, ways * queries, 28, 28, 1))
    sy = jnp.broadcast_to(jnp.repeat(jnp.arange(ways), shots), sx.shape[:2])
    qy = jnp.broadcast_to(jnp.repeat(jnp.arange(ways), queries), qx.shape[:2])
    task = jm.Task(sx, sy, qx, qy)
    batches = [task, task._replace(support_x=task.support_x[::-1], query_x=task.query_x[::-1])]
    if name == "omniglot-maml":
      model = jm.ConvNet(ways=ways)
      params = model.init(key, sx[0])
      learner = jm.maml(jm.cross_entropy_loss(model.apply), optax.sgd(0.4), steps=1)
    else:
      body = jm.ConvBody()
      params = body.init(key, sx[0])
      learner = jm.protonet(body.apply, ways=ways)
  step = jm.make_meta_step(learner, optax.adam(1e-3))
  return step, step.init(key, params), batches


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--against", required=True, help="the commit before the checks")
  p.add_argument("--configs", default="sinusoid,omniglot-maml,omniglot-protonet")
  p.add_argument("--rounds", type=int, default=7)
  p.add_argument("--calls", type=int, default=20, help="updates per round (sinusoid: x10)")
  p.add_argument("--omniglot-meta-batch", type=int, default=8)
  p.add_argument("--cost", action="store_true",
                 help="compare XLA's cost analysis (flops, bytes accessed) of the compiled steps"
                 " instead of timing them: exact, and independent of the machine's load")
  args = p.parse_args(argv)

  import jax
  tmp = tempfile.mkdtemp(prefix="jmeta_before_")
  _extract(args.against, tmp)
  before = _load_package("jmeta_before", os.path.join(tmp, "jmeta_before"))
  import jmeta as after
  print(f"before: {args.against} ({before.__file__}); after: {after.__file__}; "
        f"backend {jax.default_backend()}, {os.cpu_count()} CPUs")

  for name in args.configs.split(","):
    mb = 25 if name == "sinusoid" else args.omniglot_meta_batch
    if args.cost:
      costs = {}
      for label, jm in (("before", before), ("after", after)):
        step, state, batches = _setups(jm, name, mb)
        cost = jax.jit(step.step_fn).lower(state, batches[0]).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        costs[label] = (cost.get("flops", float("nan")), cost.get("bytes accessed", float("nan")))
      (fb, bb), (fa, ba) = costs["before"], costs["after"]
      print(f"{name} (meta-batch {mb}): flops {fb:.4g} -> {fa:.4g} (ratio {fa / fb:.5f}),"
            f" bytes accessed {bb:.4g} -> {ba:.4g} (ratio {ba / bb:.5f})", flush=True)
      continue
    calls = args.calls * (10 if name == "sinusoid" else 1)
    impls = {}
    for label, jm in (("before", before), ("after", after)):
      step, state, batches = _setups(jm, name, mb)
      state, _ = step.update(state, batches[0])  # compile
      jax.block_until_ready(state)
      impls[label] = [step, state, batches, []]
    for _ in range(args.rounds):
      for label in ("before", "after"):
        step, state, batches, times = impls[label]
        t = time.perf_counter()
        for i in range(calls):
          state, metrics = step.update(state, batches[i % 2])
        jax.block_until_ready((state, metrics))
        times.append((time.perf_counter() - t) / calls)
        impls[label][1] = state
    b, a = (statistics.median(impls[k][3]) for k in ("before", "after"))
    ratios = [x / y for x, y in zip(impls["after"][3], impls["before"][3])]
    print(f"{name} (meta-batch {mb}): before {b * 1e3:.3f} ms, after {a * 1e3:.3f} ms per update;"
          f" ratio of medians {a / b:.4f}; per-round ratios"
          f" {', '.join(f'{r:.3f}' for r in ratios)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
