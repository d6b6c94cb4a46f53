import sys
from pathlib import Path

# Let tests import the shared helpers in this folder (parity.py) by name.
sys.path.insert(0, str(Path(__file__).parent))
