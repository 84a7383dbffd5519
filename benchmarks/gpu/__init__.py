"""The one prepared GPU run of jmeta: ``bash benchmarks/gpu/run.sh OUT`` (see README.md here)."""
