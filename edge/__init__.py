"""What every process we start puts between outsiders and the code.

The HTTP listener's limits (timeouts, a connection cap), the security
headers on every response, log lines an outsider cannot forge, and the
one outbound POST our webhooks make (``outbound.py``). Shared
by the server (``server.py``) and the standalone simulator
(``python -m wxpay.simulator``); it knows Tornado and the standard library,
nothing of the app.
"""
