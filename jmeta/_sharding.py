"""Data parallelism over tasks: the task batch sharded over a device mesh.

The meta-parameters and the optimizer state are replicated on every device;
the task batch is split along its leading axis over every axis of a
``jax.sharding.Mesh``. Each device averages the directions of its own tasks,
a ``pmean`` averages those means across devices (equal shards, so this is the
mean over the whole batch), and every device applies the same outer update.
The same code runs on one CPU, several GPUs, a TPU slice, or several hosts
(``jax.distributed.initialize``; each process feeds its shard of tasks).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jmeta._base import PyTree
from jmeta._task_map import mean_over_tasks


def task_mesh(devices: Optional[Sequence[jax.Device]] = None, axis_name: str = "tasks") -> Mesh:
  """A one-dimensional mesh over ``devices`` (default: every device of every process).

  Args:
    devices: the devices to shard tasks over (default ``jax.devices()``).
    axis_name: the mesh axis name.

  Returns:
    A ``jax.sharding.Mesh`` with one axis.
  """
  devices = jax.devices() if devices is None else list(devices)
  if not devices:
    raise ValueError("devices is empty: a mesh needs at least one device.")
  return Mesh(np.asarray(devices), (axis_name,))


def check_mesh(mesh: Any) -> Mesh:
  """Returns ``mesh`` if it is a ``jax.sharding.Mesh``, else raises ``TypeError``."""
  if not isinstance(mesh, Mesh):
    raise TypeError(f"mesh must be a jax.sharding.Mesh (see jmeta.task_mesh); got {type(mesh).__name__}.")
  return mesh


def task_spec(mesh: Mesh) -> PartitionSpec:
  """Leading (task) axis split over every mesh axis, the rest replicated."""
  return PartitionSpec(tuple(mesh.axis_names))


def check_divisible(n: int, mesh: Mesh, chunk_size: Optional[int] = None, *, local: bool = False) -> None:
  """Raises ``ValueError`` unless ``n`` tasks split evenly over the mesh (and into chunks)."""
  devices = len(mesh.local_devices) if local else mesh.size
  where = "this process's devices" if local else "the mesh's devices"
  if n % devices:
    raise ValueError(
        f"the task batch of {n} tasks does not split evenly over {where} ({devices});"
        f" use a multiple of {devices} tasks.")
  if chunk_size is not None and (n // devices) % chunk_size:
    raise ValueError(
        f"chunk_size={chunk_size} must divide the tasks per device ({n // devices}).")


def sharded_mean_over_tasks(
    fn: Callable[[Any, Any], PyTree],
    replicated: Any,
    tasks: PyTree,
    mesh: Mesh,
    *,
    mode: str = "vmap",
    chunk_size: Optional[int] = None,
) -> PyTree:
  """The mean over tasks of ``fn(replicated, task)``, tasks sharded over ``mesh``.

  Args:
    fn: ``fn(replicated, task) -> pytree`` for one task.
    replicated: a pytree every device sees whole (the meta-parameters, ...).
    tasks: the task batch (leading axis divisible by ``mesh.size``).
    mesh: the device mesh; tasks are split over all of its axes.
    mode: per-device task mapping (see ``jmeta.mean_over_tasks``).
    chunk_size: for ``mode="chunked"``.

  Returns:
    The mean over the whole batch, replicated on every device.
  """
  axes = tuple(mesh.axis_names)

  def local(rep, shard):
    out = mean_over_tasks(lambda t: fn(rep, t), shard, mode=mode, chunk_size=chunk_size)
    return jax.lax.pmean(out, axes)

  return jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), task_spec(mesh)),
                       out_specs=PartitionSpec(),
                       # mean_over_tasks's scan modes start from unvarying zeros;
                       # the pmean makes every output replicated.
                       check_vma=False)(replicated, tasks)


def _place(tree: PyTree, sharding: NamedSharding) -> PyTree:
  def put(x):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))
  return jax.tree.map(put, tree)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
  """Places ``tree`` on every device of ``mesh`` (each process passes the same value)."""
  return _place(tree, NamedSharding(check_mesh(mesh), PartitionSpec()))


def shard_tasks(tasks: PyTree, mesh: Mesh) -> PyTree:
  """Makes the global task batch from this process's tasks.

  With one process, ``tasks`` is the whole batch, split over the mesh. With
  several (``jax.distributed.initialize``), each process passes its own
  consecutive slice of the batch (process ``i`` holds tasks
  ``i * n_local ... (i + 1) * n_local - 1``) and the result is one global
  array of ``n_local * process_count`` tasks.

  Args:
    tasks: a pytree (e.g. a ``jmeta.Task``) with a leading task axis.
    mesh: the device mesh.

  Returns:
    The same pytree of global ``jax.Array`` sharded along the task axis.
  """
  mesh = check_mesh(mesh)
  leaves = jax.tree.leaves(tasks)
  if leaves and not all(isinstance(x, jax.Array) and x.sharding.is_equivalent_to(
      NamedSharding(mesh, task_spec(mesh)), x.ndim) for x in leaves):
    n = int(np.shape(leaves[0])[0])
    check_divisible(n, mesh, local=True)
  return _place(tasks, NamedSharding(mesh, task_spec(mesh)))
