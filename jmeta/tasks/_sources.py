"""Task sources: anything that draws task batches and describes itself.

The trainer (``jmeta train``), ``jmeta.fit`` and ``jmeta.evaluate`` need only
``sample_batch(key, n) -> Task``; ``describe()`` says what the source is, for
``results.json``. :class:`jmeta.TaskFamily` is one source (synthetic tasks);
:class:`EpisodeSource` (N-way K-shot episodes over a class-indexed array) is
another.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax

from jmeta._base import Task
from jmeta.tasks import _episodes


@runtime_checkable
class TaskSource(Protocol):
  """The protocol of a task source.

  Methods:
    sample_batch: ``sample_batch(key, n) -> Task`` with a leading task axis of
      size ``n`` on every leaf; pure and ``jit``-able in ``key`` (``n`` static).
    describe: ``describe() -> dict`` of JSON-serialisable facts (name, shots,
      ...) recorded in a run's ``results.json``.
  """

  def sample_batch(self, key: jax.Array, n: int) -> Task:
    ...

  def describe(self) -> dict[str, Any]:
    ...


class EpisodeSource(NamedTuple):
  """N-way K-shot episodes drawn on device from a class-indexed array.

  Build it with :func:`episode_source`, which checks that the episodes fit.

  Attributes:
    classes: shape ``(num_classes, examples_per_class, *feature_shape)``.
    ways: classes per episode.
    shots: support examples per class.
    queries: query examples per class.
    name: a short name for ``describe()``.
  """

  classes: jax.Array
  ways: int
  shots: int
  queries: int
  name: str = "episodes"

  def sample_batch(self, key: jax.Array, n: int) -> Task:
    """``n`` episodes (see :func:`jmeta.sample_episodes`)."""
    return _episodes.sample_episodes(key, self.classes, ways=self.ways, shots=self.shots,
                                     queries=self.queries, batch=n)

  def describe(self) -> dict[str, Any]:
    """Name, ways, shots, queries and the shape of the class array."""
    shape = tuple(int(d) for d in self.classes.shape)
    return {"name": self.name, "ways": self.ways, "shots": self.shots, "queries": self.queries,
            "classes": shape[0], "examples_per_class": shape[1], "example_shape": list(shape[2:])}


def episode_source(classes: jax.Array, *, ways: int, shots: int, queries: int,
                   name: str = "episodes") -> EpisodeSource:
  """An :class:`EpisodeSource`, checked before any tracing.

  Args:
    classes: class-indexed data, shape ``(num_classes, examples_per_class,
      *feature_shape)``.
    ways: classes per episode (N).
    shots: support examples per class (K).
    queries: query examples per class.
    name: a short name (e.g. ``"omniglot/train"``).

  Raises:
    ValueError: ``ways`` exceeds the classes, ``shots + queries`` exceeds the
      examples per class, or a count is not a positive int.
  """
  try:
    _episodes._check(classes, ways, shots, queries)  # pylint: disable=protected-access
  except ValueError as e:
    raise ValueError(f"{name}: cannot make {ways}-way {shots}-shot episodes with {queries}"
                     f" queries per class: {e}") from None
  return EpisodeSource(classes, ways, shots, queries, name)
