"""The frozen executable's entry point: the same ``cli()`` as ``python server.py``.

A separate script, so ``server`` stays an ordinary module inside the bundle
(running server.py itself as ``__main__`` would load it twice if anything
imported it).
"""
from server import cli

cli()
