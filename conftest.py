"""Root pytest configuration: the test suite (notebooks included) runs in quick mode unless
KIT_QUICK is set otherwise. Kernels started by nbmake inherit this environment."""
import os

os.environ.setdefault("KIT_QUICK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
