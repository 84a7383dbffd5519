"""Several processes (hosts) with JAX's own distributed runtime.

Every process runs the same program: it calls ``initialize`` once, builds the
mesh over all devices of all processes (``jmeta.task_mesh()``), and passes its
own slice of each task batch (``process_slice``) to a meta-step made with
``mesh=``. The meta-parameters stay replicated on every device of every
process; ``to_host`` reads them back as NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np

from jmeta._base import PyTree


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, **kwargs: Any) -> None:
  """``jax.distributed.initialize``, with cross-process CPU collectives (gloo) enabled.

  On SLURM, TPU VMs and other managed clusters the arguments may be omitted
  (JAX reads them from the environment). Call it before any other JAX call.

  Args:
    coordinator_address: ``host:port`` of process 0.
    num_processes: number of processes.
    process_id: this process's index in ``[0, num_processes)``.
    **kwargs: passed to ``jax.distributed.initialize`` (e.g. ``local_device_ids``).
  """
  try:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError):  # older or newer JAX: CPU collectives need no switch
    pass
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id, **kwargs)


def process_slice(n: int) -> slice:
  """The tasks of a global batch of ``n`` that this process feeds (consecutive, equal shares).

  Raises:
    ValueError: if ``n`` is not a multiple of the number of processes.
  """
  count, index = jax.process_count(), jax.process_index()
  if n % count:
    raise ValueError(f"a batch of {n} tasks does not split evenly over {count} processes.")
  share = n // count
  return slice(index * share, (index + 1) * share)


def process_tasks(tasks: PyTree) -> PyTree:
  """This process's share of a global task batch (every leaf sliced on its task axis)."""
  leaves = jax.tree.leaves(tasks)
  if not leaves:
    return tasks
  part = process_slice(int(np.shape(leaves[0])[0]))
  return jax.tree.map(lambda v: v[part], tasks)


def to_host(tree: PyTree) -> PyTree:
  """NumPy copies of replicated (possibly multi-process) arrays, readable on every process."""
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if not x.is_fully_replicated:
        raise ValueError("to_host needs replicated arrays; this one is sharded across processes.")
      return np.asarray(x.addressable_data(0))
    return np.asarray(x)
  return jax.tree.map(fetch, tree)
