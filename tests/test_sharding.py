"""The meta-step with the task batch sharded over a device mesh equals the single-device one."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

import jmeta
from jmeta import task_mesh
from testing_utils import sinusoid_batch, tiny_mlp

TESTS = os.path.dirname(os.path.abspath(__file__))

# Runs with 4 virtual CPU devices (XLA_FLAGS is read when jax initialises, so it
# needs a fresh process). Saves single-device and sharded results side by side.
SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np, optax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")
    sys.path.insert(0, sys.argv[2])
    import jmeta
    from jmeta import task_mesh
    from testing_utils import sinusoid_batch, tiny_mlp

    assert jax.device_count() == 4
    params, apply = tiny_mlp()
    learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
    out = {}
    configs = {"single": {}, "mesh4": {"mesh": task_mesh()},
               "mesh2": {"mesh": task_mesh(jax.devices()[:2])},
               "mesh4_chunked": {"mesh": task_mesh(), "task_map": "chunked", "chunk_size": 2}}
    for name, kw in configs.items():
      step = jmeta.make_meta_step(learner, optax.adam(1e-2), **kw)
      state = step.init(jax.random.key(0), params)
      for i in range(3):
        state, metrics = step.update(state, sinusoid_batch(n=8, seed=i))
      out[name] = (state.meta_params, metrics)
      if name == "mesh4":
        sharding = jax.tree.leaves(state.meta_params)[0].sharding
        out["replicated"] = sharding.is_fully_replicated and len(sharding.device_set) == 4
        try:
          step.update(state, sinusoid_batch(n=6))
        except ValueError as e:
          out["error"] = str(e)
      # fit samples each batch on device; the sharded block must equal the plain one.
      family = jmeta.sinusoid(shots=5, queries=5)
      if name in ("single", "mesh4"):
        for fitted, _ in jmeta.fit(step, step.init(jax.random.key(0), params), family.sample_batch,
                                   key=jax.random.key(1), iterations=4, meta_batch=8, log_every=2):
          pass
        out["fit_" + name] = fitted.meta_params
    np.save(sys.argv[1], jax.tree.map(np.asarray, out), allow_pickle=True)
""")


def _close(a, b):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13), a, b)


def test_sharded_meta_step_on_4_virtual_devices_equals_single_device(tmp_path):
  out = tmp_path / "out.npy"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), TESTS], env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = np.load(out, allow_pickle=True).item()
  for name in ("mesh4", "mesh2", "mesh4_chunked"):
    _close(res[name], res["single"])
  _close(res["fit_mesh4"], res["fit_single"])
  assert bool(res["replicated"])
  assert "6 tasks does not split evenly over this process's devices (4)" in str(res["error"])
  moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), res["single"][0], tiny_mlp()[0])
  assert max(jax.tree.leaves(moved)) > 1e-3


def test_one_device_mesh_equals_no_mesh():
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=1)
  tasks = sinusoid_batch(n=4)
  plain = jmeta.make_meta_step(learner, optax.sgd(0.1))
  sharded = jmeta.make_meta_step(learner, optax.sgd(0.1), mesh=task_mesh(jax.devices()[:1]))
  a = plain.update(plain.init(jax.random.key(0), params), tasks)
  b = sharded.update(sharded.init(jax.random.key(0), params), tasks)
  _close(a, b)


def test_mesh_must_be_a_mesh():
  _, apply = tiny_mlp()
  with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
    jmeta.make_meta_step(jmeta.maml(jmeta.mse_loss(apply)), optax.sgd(0.1), mesh=jax.devices())
