"""Experiments outside the suites: ``python -m benchmarks.experiments.NAME [--help]``.

Each module is one experiment behind a README figure (its ``README_FIGURE``
says which; ``python -m benchmarks list`` prints them all). They import jmeta as
a package: an installed one (``pip install -e .`` or the wheel), or the
checkout when run with ``-m`` from the repository root (Python puts the
working directory first on ``sys.path``); none edits ``sys.path``. Results go
to ``benchmarks/results/`` (``RESULTS_ROOT``) unless an ``--out`` says
otherwise.
"""

from benchmarks._report import RESULTS_ROOT

__all__ = ("RESULTS_ROOT",)
