"""``sweep``: grids of runs over dotted config keys, on the local pool or on Ray.

``grid`` parses ``--grid`` items into runs with readable names, ``pipeline`` plans, checks
and runs them through :mod:`app.runner` (the same runner as ``reproduce``), ``table``
writes ``sweep.csv`` and ``figure`` draws ``sweep.png`` from the run folders alone.
"""
