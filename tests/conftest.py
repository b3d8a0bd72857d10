import sys
from pathlib import Path

# Make `import tests.reference` work however pytest is launched (not only `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
