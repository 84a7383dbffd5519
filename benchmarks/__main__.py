"""``python -m benchmarks {list,run SUITE,compare RUN RUN}``; see ``benchmarks/__init__.py``."""

from __future__ import annotations

import sys

if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "_worker":
    from benchmarks._worker import main as _worker_main
    sys.exit(_worker_main(sys.argv[2:]))
  from benchmarks._cli import main
  sys.exit(main(sys.argv[1:]))
