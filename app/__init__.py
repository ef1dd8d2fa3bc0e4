"""NFA Explorer's commands and front ends (CLI, web app, terminal app, compare, reproduce, sweep).

numpy's own BLAS (OpenBLAS) gets one thread unless the environment says otherwise: every
heavy product here runs in torch, whose thread count the commands set, and OpenBLAS's
worker threads keep spinning after a call, taking the cores torch is using (measured: a
measurement right after one that called a numpy BLAS routine took 1.35x as long on 2 cores).
This must run before numpy is imported, so it sits in the package's first module.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
