"""The fuzz campaigns' helper module (_fuzz.py) is imported by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
