"""The trainer behind ``jmeta train`` / ``jmeta eval`` and the registry it reads.

* :data:`LEARNERS` and :data:`SOURCES`: every learner and task source the
  command line offers, by name, with their defaults and what goes with what
  (:class:`LearnerSpec`, :class:`SourceSpec`).
* :func:`resolve` fills in every default of a run's options; :func:`build`
  turns the result into the task sources, model, learner and outer optimizer
  (a :class:`Run`).
* :func:`train` meta-trains and meta-tests a run into a folder;
  :func:`load_run` and :func:`evaluate_run` reload and meta-test it again.

Import it as ``import jmeta.training`` (``import jmeta`` does not load it).

Examples:
  >>> cfg = jmeta.training.resolve({"task": "sinusoid", "algo": "maml"})
  >>> run = jmeta.training.build(cfg, jax.random.key(0))
"""

from jmeta._registry import LEARNERS
from jmeta._registry import LearnerSpec
from jmeta._registry import Run
from jmeta._registry import SOURCES
from jmeta._registry import SourceSpec
from jmeta._registry import build
from jmeta._registry import resolve
from jmeta._trainer import evaluate_run
from jmeta._trainer import load_run
from jmeta._trainer import train

__all__ = (
    "build",
    "evaluate_run",
    "LEARNERS",
    "LearnerSpec",
    "load_run",
    "resolve",
    "Run",
    "SOURCES",
    "SourceSpec",
    "train",
)
