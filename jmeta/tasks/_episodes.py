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

  The indices of the ``k`` smallest of ``n`` i.i.d. random 32-bit words, found
  with one float32 ``top_k`` (fast on CPU, unlike integer ``top_k`` or a full
  permutation). Small words convert to float32 exactly, so ties (which
  would go to the lower index) need two equal words among the smallest
  ``k + 1``: probability about ``(k + 1) * n / 2**33``, or ``(k + 1)**2 / 2**25``
  when ``n`` is small, below 1e-5 for Omniglot episodes.
  """
  words = jax.random.bits(key, (*shape, n), jnp.uint32).astype(jnp.float32)
  return jax.lax.top_k(-words, k)[1]


def _indices(key: jax.Array, num_classes: int, per_class: int, ways: int, shots: int,
             queries: int) -> tuple[jax.Array, jax.Array]:
  """Flat indices (``class * per_class + example``) of one episode's support and query."""
  class_key, example_key = jax.random.split(key)
  # A random ordered choice: episode label j goes to a uniformly random class.
  chosen = _random_subset(class_key, num_classes, ways)
  examples = _random_subset(example_key, per_class, shots + queries, (ways,))
  flat = chosen[:, None] * per_class + examples  # (ways, shots + queries), grouped by label
  return flat[:, :shots].reshape(ways * shots), flat[:, shots:].reshape(ways * queries)


def _labels(ways: int, per_label: int, batch_shape: tuple[int, ...] = ()) -> jax.Array:
  labels = jnp.repeat(jnp.arange(ways, dtype=jnp.int32), per_label)
  return jnp.broadcast_to(labels, (*batch_shape, ways * per_label))


def _take(classes: jax.Array, flat_index: jax.Array) -> jax.Array:
  # One gather of whole examples from the flattened (class, example) axis: much
  # faster on CPU than indexing the two axes with two index arrays.
  flat = classes.reshape((classes.shape[0] * classes.shape[1], *classes.shape[2:]))
  return jnp.take(flat, flat_index, axis=0)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _episode(key: jax.Array, classes: jax.Array, ways: int, shots: int, queries: int) -> Task:
  support, query = _indices(key, *classes.shape[:2], ways, shots, queries)
  return Task(_take(classes, support), _labels(ways, shots), _take(classes, query),
              _labels(ways, queries))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _episodes(key: jax.Array, classes: jax.Array, ways: int, shots: int, queries: int,
              batch: int) -> Task:
  keys = jax.random.split(key, batch)
  support, query = jax.vmap(lambda k: _indices(k, *classes.shape[:2], ways, shots, queries))(keys)
  return Task(_take(classes, support), _labels(ways, shots, (batch,)), _take(classes, query),
              _labels(ways, queries, (batch,)))


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
