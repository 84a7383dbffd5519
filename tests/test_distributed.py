"""Two processes joined by ``jax.distributed.initialize`` equal one process."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))

# process_id -1: a plain single-process, single-device run of the same steps.
SCRIPT = textwrap.dedent("""
import os, sys
os.environ["JAX_PLATFORMS"] = "cpu"
import jax, numpy as np, optax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
out, tests, port, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, tests)
from jmeta import initialize_distributed as initialize, process_tasks, to_host
if pid >= 0:
  initialize(f"localhost:{port}", num_processes=2, process_id=pid)
import jmeta
from jmeta import task_mesh
from testing_utils import sinusoid_batch, tiny_mlp
params, apply = tiny_mlp()
learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
mesh = task_mesh() if pid >= 0 else None
step = jmeta.make_meta_step(learner, optax.adam(1e-2), mesh=mesh)
state = step.init(jax.random.key(0), params)
for i in range(3):
  tasks = sinusoid_batch(n=4, seed=i)
  state, metrics = step.update(state, process_tasks(tasks) if pid >= 0 else tasks)
np.save(out, to_host((state.meta_params, metrics, jax.device_count(), jax.process_count())), allow_pickle=True)
print("done", pid, jax.device_count(), jax.process_count())
""")


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
  port = str(_free_port())
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  outs = [str(tmp_path / f"out{i}.npy") for i in (0, 1, 2)]
  procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, outs[i], TESTS, port, str(pid)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i, pid in enumerate((0, 1, -1))]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  (p0, m0, devices, processes), (p1, m1, _, _), (single, ms, _, _) = (
      tuple(np.load(o, allow_pickle=True)) for o in outs)
  assert (devices, processes) == (2, 2)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
  jax.tree.map(close, (p0, m0), (single, ms))
  jax.tree.map(np.testing.assert_array_equal, (p0, m0), (p1, m1))  # replicated: identical
  moved = jax.tree.map(lambda a: float(np.max(np.abs(a))), m0)
  assert moved["grad_norm"] > 0 and moved["finite"] == 1.0
