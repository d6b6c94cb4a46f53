import sys
from pathlib import Path

# Let tests import the shared helpers in this folder (parity.py, optim_db.py, built_site.py)
# by name.
sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Run every unit test on one intra-op thread. The tensors here are tiny, and on a busy
    2-core machine OpenMP's threads only add overhead: measured, one test file took 37 s with
    two threads and 8 s with one, and sparse kernels slowed down 20-50 times."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
