"""Tests of the on-device episode sampler."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta import Task
from jmeta import sample_episode
from jmeta import sample_episodes

NUM_CLASSES, PER_CLASS = 12, 7


def _classes():
  # Every pixel of example e of class c holds the code 100 * c + e, so each
  # sampled image tells which class and example it came from.
  codes = 100 * np.arange(NUM_CLASSES)[:, None] + np.arange(PER_CLASS)[None, :]
  images = np.broadcast_to(codes[:, :, None, None, None], (NUM_CLASSES, PER_CLASS, 2, 3, 1))
  return jnp.asarray(images, dtype=jnp.float32)


def _decode(x):
  x = np.asarray(x)
  assert (x == x[..., :1, :1, :1]).all()  # constant images: untouched rows
  code = x[..., 0, 0, 0].astype(int)
  return code // 100, code % 100


def _sample(key, ways=5, shots=2, queries=3, batch=16):
  return sample_episodes(key, _classes(), ways=ways, shots=shots, queries=queries, batch=batch)


def test_shapes_and_dtypes():
  task = _sample(jax.random.key(0))
  assert isinstance(task, Task)
  assert task.support_x.shape == (16, 10, 2, 3, 1)
  assert task.query_x.shape == (16, 15, 2, 3, 1)
  assert task.support_y.shape == (16, 10) and task.query_y.shape == (16, 15)
  assert task.support_x.dtype == jnp.float32
  assert task.support_y.dtype == jnp.int32 and task.query_y.dtype == jnp.int32
  np.testing.assert_array_equal(task.support_y[0], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
  np.testing.assert_array_equal(task.query_y[3], np.repeat(np.arange(5), 3))


def test_episode_structure():
  task = _sample(jax.random.key(1))
  s_cls, s_ex = _decode(task.support_x)
  q_cls, q_ex = _decode(task.query_x)
  for b in range(16):
    # Exactly `ways` distinct classes, one class per label, same class in
    # support and query for a label.
    label_to_class = {}
    for cls, lab in zip(np.concatenate([s_cls[b], q_cls[b]]),
                        np.concatenate([task.support_y[b], task.query_y[b]])):
      assert label_to_class.setdefault(int(lab), int(cls)) == cls
    assert sorted(label_to_class) == [0, 1, 2, 3, 4]
    assert len(set(label_to_class.values())) == 5
    # Support and query examples are distinct (no example twice in an episode).
    pairs = list(zip(np.concatenate([s_cls[b], q_cls[b]]), np.concatenate([s_ex[b], q_ex[b]])))
    assert len(set(pairs)) == 25


def test_labels_permuted_and_classes_vary_across_keys():
  tasks = [_sample(jax.random.key(k)) for k in range(2, 6)]  # 64 episodes, one compilation
  s_cls = np.concatenate([_decode(t.support_x)[0] for t in tasks])
  q_ex = np.concatenate([_decode(t.query_x)[1] for t in tasks])
  class_of_label0 = s_cls[:, 0]
  assert len(set(class_of_label0.tolist())) > 5  # label 0 goes to many classes
  # Label order is not the class order: some episode has label 0 on a larger class than label 1.
  assert (s_cls[:, 0] > s_cls[:, 2]).any() and (s_cls[:, 0] < s_cls[:, 2]).any()
  # Every class and every example index gets drawn somewhere.
  assert set(s_cls.ravel().tolist()) == set(range(NUM_CLASSES))
  assert set(q_ex.ravel().tolist()) == set(range(PER_CLASS))


def test_determinism_per_key():
  a, b = _sample(jax.random.key(3)), _sample(jax.random.key(3))
  c = _sample(jax.random.key(4))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a.support_x, c.support_x)
  # Episode i of the batch is sample_episode with the i-th split key.
  keys = jax.random.split(jax.random.key(3), 16)
  one = sample_episode(keys[5], _classes(), ways=5, shots=2, queries=3)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[5], y), a, one)


def test_jit_and_vmap():
  sample = jax.jit(sample_episodes, static_argnames=("ways", "shots", "queries", "batch"))
  key = jax.random.key(5)
  jitted = sample(key, _classes(), ways=5, shots=2, queries=3, batch=16)
  jax.tree.map(np.testing.assert_array_equal, jitted, _sample(key))
  single = functools.partial(sample_episode, ways=5, shots=2, queries=3)
  batched = jax.vmap(single, in_axes=(0, None))(jax.random.split(key, 16), _classes())
  jax.tree.map(np.testing.assert_array_equal, batched, jitted)  # same keys, same episodes


def test_numpy_input():
  task = sample_episodes(jax.random.key(3), np.asarray(_classes()), ways=5, shots=2, queries=3,
                         batch=16)
  jax.tree.map(np.testing.assert_array_equal, task, _sample(jax.random.key(3)))


def test_whole_class_when_shots_plus_queries_fill_it():
  task = sample_episode(jax.random.key(6), _classes(), ways=NUM_CLASSES, shots=3, queries=4)
  cls, ex = _decode(jnp.concatenate([task.support_x, task.query_x]))
  assert len(set(zip(cls.tolist(), ex.tolist()))) == NUM_CLASSES * PER_CLASS


@pytest.mark.parametrize("kwargs, match", [
    (dict(ways=13, shots=1, queries=1), "ways=13 exceeds the 12 classes"),
    (dict(ways=5, shots=5, queries=3), r"shots \+ queries = 5 \+ 3 = 8 exceeds the 7 examples"),
    (dict(ways=0, shots=1, queries=1), "ways >= 1"),
    (dict(ways=5, shots=1.5, queries=1), "shots must be a Python int"),
])
def test_invalid_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    sample_episodes(jax.random.key(0), _classes(), batch=2, **kwargs)
  with pytest.raises(ValueError, match=match):
    jax.jit(functools.partial(sample_episode, **kwargs))(jax.random.key(0), _classes())


def test_invalid_batch():
  with pytest.raises(ValueError, match="batch must be >= 1"):
    _sample(jax.random.key(0), batch=0)
