import sys
from pathlib import Path

# Make `import tests.reference` work however pytest is launched (not only `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# pytest -n 2 runs two worker processes on a 2-core machine: one BLAS thread each, or
# they oversubscribe the cores and every test slows down.
from lab.engine.threads import limit_blas_threads  # noqa: E402

limit_blas_threads(1)
