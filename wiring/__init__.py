"""How one process is put together: the one place that knows every layer.

``services.py`` builds the typed services container from the settings (the
WeChat gateway and clients first, each service given what it uses);
``web.py`` builds the Tornado application and its listener; ``sandbox.py``
is the only module outside the simulator and the tests that knows the
simulated WeChat (its demo credentials, mounting it in this process).
``server.py`` starts and stops what these build.
"""
