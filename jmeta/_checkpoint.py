"""Checkpoint and resume meta-training with orbax-checkpoint.

A checkpoint holds the ``MetaState`` (meta-parameters, optimizer state, step,
skipped count), the raw data of the task-stream PRNG key, and a JSON
description of the run. orbax writes each step to a temporary directory and
renames it when complete, so a process killed mid-save leaves the previous
checkpoint intact. Restoring checks the description and the tree structure,
shapes and dtypes: a corrupt or mismatched checkpoint raises
``CheckpointError``, never a silent restart from scratch.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp

from jmeta._meta_step import MetaState


class CheckpointError(ValueError):
  """A checkpoint is missing, corrupt, or was written by another configuration."""


def _manager(directory: str, *, create: bool):
  import orbax.checkpoint as ocp
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=create,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def latest_step(directory: str) -> Optional[int]:
  """The step of the newest complete checkpoint in ``directory``, or ``None``."""
  if not os.path.isdir(directory):
    return None
  with _manager(directory, create=False) as mngr:
    return mngr.latest_step()


def save_checkpoint(directory: str, state: MetaState, key: jax.Array, config: dict[str, Any], *,
                    extra: Optional[dict[str, Any]] = None) -> None:
  """Saves ``state``, the PRNG ``key`` and ``config`` as step ``int(state.step)``, atomically.

  Args:
    directory: the checkpoint folder (one sub-folder per step; the two newest
      are kept).
    state: the ``MetaState`` to save.
    key: the PRNG key of the task stream (typed or raw ``uint32``).
    config: a JSON-serialisable description of the run; ``restore_checkpoint``
      refuses a checkpoint whose description differs.
    extra: further arrays to save with the state (a dict of pytrees, e.g. the
      best meta-parameters so far); restore them with ``extra=`` of the same
      structure.
  """
  import orbax.checkpoint as ocp
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  items = {**(extra or {}), "state": state, "key": data}
  with _manager(directory, create=True) as mngr:
    mngr.save(int(state.step), args=ocp.args.Composite(
        items=ocp.args.StandardSave(items), config=ocp.args.JsonSave(config)))
    mngr.wait_until_finished()


def restore_checkpoint(directory: str, state: MetaState, key: jax.Array,
                       config: dict[str, Any], *, extra: Optional[dict[str, Any]] = None):
  """Restores the newest checkpoint of ``directory`` into the structure of ``state``.

  Args:
    directory: the checkpoint folder given to ``save_checkpoint``.
    state: a ``MetaState`` of the expected structure, shapes and dtypes (e.g.
      a freshly initialised one).
    key: the PRNG key of the task stream; it must equal the saved one.
    config: the run description; it must equal the saved one.
    extra: the structure (e.g. initial values) of the ``extra`` arrays given
      to ``save_checkpoint``, if any.

  Returns:
    The restored ``MetaState``; with ``extra``, ``(state, extra)``.

  Raises:
    CheckpointError: no checkpoint, a corrupt one, or one that does not match
      ``config``, ``key`` or the structure of ``state``.
  """
  import orbax.checkpoint as ocp
  step = latest_step(directory)
  if step is None:
    raise CheckpointError(f"--resume: no checkpoint found in {directory}.")
  where = os.path.join(directory, str(step))
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  target = {**(extra or {}), "state": state, "key": data}
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), target)
  try:
    with _manager(directory, create=False) as mngr:
      saved_config = mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
  except Exception as e:  # orbax raises many types on unreadable files
    raise CheckpointError(f"checkpoint {where} is corrupt or unreadable: {e}") from e
  if saved_config != config:
    diff = sorted(k for k in set(config) | set(saved_config or {})
                  if (saved_config or {}).get(k) != config.get(k))
    raise CheckpointError(
        f"checkpoint {where} was written by a different configuration (differs in"
        f" {', '.join(diff)}: saved {[(saved_config or {}).get(k) for k in diff]},"
        f" now {[config.get(k) for k in diff]}).")
  try:
    with _manager(directory, create=False) as mngr:
      items = mngr.restore(step, args=ocp.args.Composite(items=ocp.args.StandardRestore(abstract)))["items"]
  except Exception as e:
    raise CheckpointError(f"checkpoint {where} is corrupt or does not match the model: {e}") from e
  if jax.tree.structure(items) != jax.tree.structure(target):
    raise CheckpointError(f"checkpoint {where} has another tree structure than the model.")
  for got, want in zip(jax.tree.leaves(items), jax.tree.leaves(abstract)):
    if got.shape != want.shape or got.dtype != want.dtype:
      raise CheckpointError(
          f"checkpoint {where} holds an array {got.dtype}{list(got.shape)} where the model"
          f" has {want.dtype}{list(want.shape)}.")
  if not bool(jnp.all(items["key"] == data)):
    raise CheckpointError(f"checkpoint {where} was written with another PRNG key (seed).")
  if int(items["state"].step) != step:
    raise CheckpointError(f"checkpoint {where} holds step {int(items['state'].step)}, not {step}.")
  if extra is None:
    return items["state"]
  return items["state"], {k: items[k] for k in extra}
