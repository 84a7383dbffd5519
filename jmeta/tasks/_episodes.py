"""N-way K-shot episodes drawn on device from a class-indexed array."""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp

from jmeta._base import Task


def _check(classes: jax.Array, ways: int, shots: int, queries: int) -> None:
  """Raises ``ValueError`` unless the episode fits in ``classes`` (static shapes)."""
  for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
    try:
      operator.index(value)
    except TypeError:
      raise ValueError(f"{name} must be a Python int (static), got {value!r}") from None
  if jnp.ndim(classes) < 2:
    raise ValueError("classes must have shape (num_classes, examples_per_class, *feature_shape), "
                     f"got shape {jnp.shape(classes)}")
  num_classes, per_class = jnp.shape(classes)[:2]
  if ways < 1 or shots < 1 or queries < 0:
    raise ValueError(f"need ways >= 1, shots >= 1 and queries >= 0, got ways={ways}, "
                     f"shots={shots}, queries={queries}")
  if ways > num_classes:
    raise ValueError(f"ways={ways} exceeds the {num_classes} classes of classes "
                     f"(shape {jnp.shape(classes)})")
  if shots + queries > per_class:
    raise ValueError(f"shots + queries = {shots} + {queries} = {shots + queries} exceeds the "
                     f"{per_class} examples per class of classes (shape {jnp.shape(classes)})")


def _random_subset(key: jax.Array, n: int, k: int, shape: tuple[int, ...] = ()) -> jax.Array:
  """``k`` distinct indices of ``range(n)`` in uniformly random order, per leading ``shape``.

  The indices of the ``k`` largest of ``n`` i.i.d. random words: one ``top_k``
  instead of a full permutation (ties, of probability about ``n**2 / 2**33``,
  go to the lower index).
  """
  return jax.lax.top_k(jax.random.bits(key, (*shape, n), jnp.uint32), k)[1]


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _episode(key: jax.Array, classes: jax.Array, ways: int, shots: int, queries: int) -> Task:
  num_classes, per_class = classes.shape[:2]
  class_key, example_key = jax.random.split(key)
  # A random ordered choice: episode label j goes to a uniformly random class.
  chosen = _random_subset(class_key, num_classes, ways)
  examples = _random_subset(example_key, per_class, shots + queries, (ways,))
  rows = jnp.broadcast_to(chosen[:, None], examples.shape)
  x = classes[rows, examples]  # (ways, shots + queries, *feature_shape)
  feature_shape = x.shape[2:]
  labels = jnp.broadcast_to(jnp.arange(ways, dtype=jnp.int32)[:, None], (ways, shots + queries))
  return Task(
      support_x=x[:, :shots].reshape((ways * shots, *feature_shape)),
      support_y=labels[:, :shots].reshape(ways * shots),
      query_x=x[:, shots:].reshape((ways * queries, *feature_shape)),
      query_y=labels[:, shots:].reshape(ways * queries),
  )


def sample_episode(key: jax.Array, classes: jax.Array, *, ways: int, shots: int,
                   queries: int) -> Task:
  """Draws one N-way K-shot episode.

  ``ways`` classes are drawn without replacement and episode label ``j`` is
  given to the ``j``-th drawn class, so the labelling is a fresh random
  permutation in every episode; within each class ``shots + queries`` distinct
  examples are drawn, the first ``shots`` for the support set. Examples are
  grouped by label (label 0's first). Pure and ``jit``-able (make ``ways``,
  ``shots``, ``queries`` static); no host transfer.

  Args:
    key: a PRNG key.
    classes: class-indexed data, shape ``(num_classes, examples_per_class,
      *feature_shape)``, e.g. ``(C, E, 28, 28, 1)`` float32 images.
    ways: classes per episode (N).
    shots: support examples per class (K).
    queries: query examples per class.

  Returns:
    A :class:`jmeta.Task`: ``support_x`` ``(ways * shots, *feature_shape)``,
    ``support_y`` ``(ways * shots,)`` int32 in ``[0, ways)``, ``query_x``
    ``(ways * queries, *feature_shape)``, ``query_y`` ``(ways * queries,)``
    int32; ``x`` keeps ``classes``' dtype.

  Raises:
    ValueError: ``ways`` exceeds the number of classes, ``shots + queries``
      exceeds the examples per class, or an argument is not a positive int.
  """
  _check(classes, ways, shots, queries)
  return _episode(key, classes, ways, shots, queries)


def sample_episodes(key: jax.Array, classes: jax.Array, *, ways: int, shots: int, queries: int,
                    batch: int) -> Task:
  """Draws a batch of independent N-way K-shot episodes (``vmap`` of :func:`sample_episode`).

  Example::

    sample = jax.jit(sample_episodes, static_argnames=("ways", "shots", "queries", "batch"))
    tasks = sample(key, classes, ways=5, shots=1, queries=15, batch=32)

  Args:
    key: a PRNG key; episode ``i`` uses ``jax.random.split(key, batch)[i]``.
    classes: class-indexed data, shape ``(num_classes, examples_per_class,
      *feature_shape)``.
    ways: classes per episode (N).
    shots: support examples per class (K).
    queries: query examples per class.
    batch: number of episodes.

  Returns:
    A :class:`jmeta.Task` whose leaves have a leading ``batch`` axis:
    ``support_x`` ``(batch, ways * shots, *feature_shape)``, ``support_y``
    ``(batch, ways * shots)`` int32, ``query_x`` ``(batch, ways * queries,
    *feature_shape)``, ``query_y`` ``(batch, ways * queries)`` int32.

  Raises:
    ValueError: as :func:`sample_episode`, or ``batch < 1``.
  """
  _check(classes, ways, shots, queries)
  if operator.index(batch) < 1:
    raise ValueError(f"batch must be >= 1, got {batch}")
  return _episodes(key, classes, ways, shots, queries, batch)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _episodes(key: jax.Array, classes: jax.Array, ways: int, shots: int, queries: int,
              batch: int) -> Task:
  keys = jax.random.split(key, batch)
  return jax.vmap(lambda k: _episode(k, classes, ways, shots, queries))(keys)
