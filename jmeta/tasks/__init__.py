"""Task families and episode samplers."""

from jmeta.tasks._episodes import sample_episode
from jmeta.tasks._episodes import sample_episodes
from jmeta.tasks._synthetic import TaskFamily
from jmeta.tasks._synthetic import linear_regression
from jmeta.tasks._synthetic import logistic_regression
from jmeta.tasks._synthetic import sinusoid

__all__ = (
    "TaskFamily",
    "linear_regression",
    "logistic_regression",
    "sample_episode",
    "sample_episodes",
    "sinusoid",
)
