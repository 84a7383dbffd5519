"""Checks of user input made before tracing: task batches, parameters, state pytrees.

Every check raises ``TypeError`` (wrong kind) or ``ValueError`` (wrong shape,
structure or value) with a message that names the argument and says what was
expected. They read only shapes and dtypes (never values), so they work on
arrays and on ``jax.ShapeDtypeStruct`` alike and never wait for the device.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jmeta._base import PyTree, Task

_FIELDS = Task._fields

# Batch types other than ``Task`` (e.g. ``jmeta.rl.RLTask``) and their checks:
# ``check(tasks, name) -> tasks``. Registered by the module that defines the type.
_BATCH_CHECKS: dict[type, Callable[[Any, str], Any]] = {}


def register_batch_check(cls: type, check: Callable[[Any, str], Any]) -> None:
  """Makes :func:`check_task_batch` accept batches of type ``cls``, checked by ``check``."""
  _BATCH_CHECKS[cls] = check


def _is_array(v: Any) -> bool:
  return hasattr(v, "shape") and hasattr(v, "dtype")


def describe(leaf: Any) -> str:
  """``float32[5,1]``: the dtype and shape of an array-like (or its type name)."""
  if not _is_array(leaf):
    return type(leaf).__name__
  return f"{np.dtype(leaf.dtype).name}[{','.join(str(d) for d in leaf.shape)}]"


def as_task_batch(tasks: Any, name: str = "tasks") -> Task:
  """``tasks`` with every field an array: lists and Python numbers are converted.

  Raises:
    TypeError: ``tasks`` is not a ``jmeta.Task``, or a field cannot be an
      array of numbers (ragged lists, strings, objects).
  """
  if not isinstance(tasks, Task):
    raise TypeError(f"{name} must be a jmeta.Task with a leading task axis; got {type(tasks).__name__}.")
  if all(_is_array(v) for v in tasks):
    return tasks
  fields = []
  for field, v in zip(_FIELDS, tasks):
    if not _is_array(v):
      try:
        v = jnp.asarray(v)
      except (TypeError, ValueError) as e:
        raise TypeError(
            f"{name}.{field} must be an array (or a rectangular nested list of numbers);"
            f" got {type(v).__name__} that jnp.asarray cannot convert: {e}") from e
    fields.append(v)
  return Task(*fields)


def check_task_batch(tasks: Any, name: str = "tasks",
                     ranks: Optional[tuple[int, int]] = None) -> Task:
  """Checks the shapes of a task batch and returns it with array fields.

  A batch has ``support_x``/``query_x`` of shape ``(tasks, examples,
  *features)`` with at least one feature axis and ``support_y``/``query_y`` of
  shape ``(tasks, examples, *targets)``. One task passed alone (as
  ``family.sample(key)`` returns it) has one axis less and is rejected: its
  inputs have rank 2 (``(examples, features)``) or its labels rank 1.

  Args:
    tasks: the task batch (a ``jmeta.Task``; list fields are converted).
    name: what to call it in errors.
    ranks: ``(rank of support_x, rank of support_y)`` of an earlier batch of
      the same meta-step; a batch of other ranks is rejected (``None``: no
      earlier batch).

  Returns:
    ``tasks`` with every field an array.
  """
  for cls, check in _BATCH_CHECKS.items():
    if isinstance(tasks, cls):  # another kind of task batch (see register_batch_check)
      return check(tasks, name)
  tasks = as_task_batch(tasks, name)
  for field, v in zip(_FIELDS, tasks):
    if not (jnp.issubdtype(v.dtype, jnp.number) or jnp.issubdtype(v.dtype, jnp.bool_)):
      raise TypeError(f"{name}.{field} must hold numbers; got dtype {np.dtype(v.dtype).name}.")
  sx, sy, qx, qy = (tuple(v.shape) for v in tasks)
  one_task = ("; this looks like one task: batch it with family.sample_batch(key, n) or add the task"
              " axis with jax.tree.map(lambda v: v[None], task)")
  for field, shape in (("support_x", sx), ("query_x", qx)):
    if len(shape) < 3:
      raise ValueError(
          f"{name}.{field} needs shape (tasks, examples, *features) with at least one feature axis"
          f" (scalar inputs: (tasks, examples, 1)); got {shape}" + (one_task if len(shape) == 2 else "") + ".")
  for field, shape in (("support_y", sy), ("query_y", qy)):
    if len(shape) < 2:
      raise ValueError(
          f"{name}.{field} needs shape (tasks, examples, *targets); got {shape}"
          + (one_task if len(shape) == 1 else "") + ".")
  if len({sx[0], sy[0], qx[0], qy[0]}) != 1:
    raise ValueError(
        f"every field of {name} needs the same leading (task) axis; got support_x {sx}, support_y"
        f" {sy}, query_x {qx}, query_y {qy}.")
  n = sx[0]
  if n == 0:
    raise ValueError(f"{name} is empty: the task batch needs at least one task.")
  if sx[2:] != qx[2:]:
    raise ValueError(
        f"support and query features differ: {name}.support_x has feature shape {sx[2:]},"
        f" {name}.query_x has {qx[2:]}.")
  if sy[:2] != sx[:2] or qy[:2] != qx[:2]:
    raise ValueError(
        f"targets must match inputs in the task and example axes: {name}.support_x"
        f" {sx} vs support_y {sy}, query_x {qx} vs query_y {qy}.")
  if sy[2:] != qy[2:]:
    raise ValueError(f"{name}.support_y and query_y target shapes differ: {sy[2:]} vs {qy[2:]}.")
  if ranks is not None and (len(sx), len(sy)) != tuple(ranks):
    raise ValueError(
        f"{name}.support_x and support_y have ranks {len(sx)} and {len(sy)} but this meta-step's"
        f" first task batch had ranks {ranks[0]} and {ranks[1]} (shapes {sx}, {sy})"
        + (one_task if len(sx) < ranks[0] else "") + ".")
  return tasks


def first_task_spec(tasks: Task) -> Task:
  """The shapes and dtypes of one task of a batch, as ``jax.ShapeDtypeStruct``s."""
  return jax.tree.map(lambda v: jax.ShapeDtypeStruct(tuple(v.shape[1:]), v.dtype), tasks)


def check_float_tree(tree: PyTree, name: str) -> None:
  """Checks that every leaf of ``tree`` is a floating (or complex) array or Python float.

  Raises:
    TypeError: naming ``name`` and the path of the first leaf that is not.
  """
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  if not leaves:
    raise ValueError(f"{name} has no array leaves: expected a pytree of floating arrays.")
  for path, leaf in leaves:
    where = f"{name}{jax.tree_util.keystr(path)}"
    if isinstance(leaf, (float, complex)) and not isinstance(leaf, bool):
      continue
    if not _is_array(leaf):
      raise TypeError(f"{where} is of type {type(leaf).__name__}: expected a floating array"
                      " (parameters must be arrays, e.g. jnp.asarray(..., jnp.float32)).")
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
      raise TypeError(
          f"{where} has dtype {np.dtype(leaf.dtype).name}: expected a floating dtype (parameters are"
          " differentiated; cast them, e.g. with .astype(jnp.float32)).")


def tree_mismatch(expected: PyTree, actual: PyTree) -> Optional[str]:
  """Where two pytrees differ in structure, shapes or dtypes, or ``None`` if they agree.

  The answer names the path of the first differing leaf with what was expected
  and what was found.
  """
  exp, exp_def = jax.tree_util.tree_flatten_with_path(expected)
  act, act_def = jax.tree_util.tree_flatten_with_path(actual)
  keystr = jax.tree_util.keystr
  for (pe, le), (pa, la) in zip(exp, act):
    if pe != pa:
      return (f"the first differing leaf is at {keystr(pe) or '(root)'}: expected {describe(le)}"
              f" there, got a leaf at {keystr(pa) or '(root)'} ({describe(la)})")
    if (not _is_array(la) or tuple(le.shape) != tuple(la.shape)
        or np.dtype(le.dtype) != np.dtype(la.dtype)):
      return f"the first differing leaf is {keystr(pe) or '(root)'}: expected {describe(le)}, got {describe(la)}"
  if len(exp) > len(act):
    path, leaf = exp[len(act)]
    return (f"it has {len(act)} leaves where {len(exp)} are expected; the first missing leaf is"
            f" {keystr(path) or '(root)'} ({describe(leaf)})")
  if len(act) > len(exp):
    path, leaf = act[len(exp)]
    return (f"it has {len(act)} leaves where {len(exp)} are expected; the first extra leaf is"
            f" {keystr(path) or '(root)'} ({describe(leaf)})")
  if exp_def != act_def:
    return f"its structure differs: expected {exp_def}, got {act_def}"
  return None


def abstract(tree: PyTree) -> PyTree:
  """``tree`` with every leaf replaced by its ``jax.ShapeDtypeStruct``."""
  return jax.tree.map(lambda v: jax.ShapeDtypeStruct(tuple(jnp.shape(v)), jnp.result_type(v)), tree)


def signature(tree: PyTree) -> tuple:
  """A hashable key of a pytree's structure, shapes and dtypes."""
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, tuple((tuple(jnp.shape(v)), jnp.result_type(v)) for v in leaves)
