"""Marlin: expert human feedback on code written by AI coding agents."""

import os

# The statistics fit many tiny models (a K x K table per bootstrap round). OpenBLAS's thread pool
# makes each tiny BLAS call wait on other threads: measured 10x slower on 2 shared cores. Set
# before numpy is first imported; an explicit setting in the environment still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
