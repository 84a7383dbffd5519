"""The tutorial notebooks, kept as code.

Each notebook ``NN_name.ipynb`` is paired with a jupytext percent-format source
``NN_name.py``: the source is what is edited and reviewed, the ``.ipynb`` is
its conversion, committed without outputs. ``python -m notebooks.sync`` writes
the notebooks' shared cells (Colab badge, setup cell) from ``pyproject.toml``
and regenerates every ``.ipynb``. The sources are scripts, not modules: their
names are not Python identifiers, so ``import`` cannot run them by accident.
"""
