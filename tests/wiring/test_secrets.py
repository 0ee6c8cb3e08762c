"""WeChat's secrets are held by the wxpay objects built from the configuration, and nothing else.

A real server in sandbox mode configured with its own API key, AppSecret and
Mini Program secret (the simulated WeChat takes the same): every object a
handler can reach (the services container, the application's settings) is
walked, and no string in it holds one of them, except inside the ``wxpay``
objects that own them (the gateway's client, the Official Account and OAuth
clients), which the walk does not enter. The same walk entering them finds
the key, so the walk can see it where it is.
"""
from __future__ import annotations

import functools
import secrets
import types
from typing import Any, Iterable

from tests.server.conftest import start_server

FIRST_PARTY = ("service", "handlers", "store", "config", "edge", "wiring", "wxpay")
CONTAINERS = (list, tuple, set, frozenset)


def strings_reachable(roots: Iterable[tuple[str, Any]], *, enter_wxpay: bool) -> list[tuple[str, str, str]]:
    """(path, text, holder) of every string reachable from ``roots`` through
    first-party objects; ``holder`` names the class of the object holding it."""
    seen: set[int] = set()
    stack = [(path, obj, "") for path, obj in roots]
    out: list[tuple[str, str, str]] = []
    while stack:
        path, obj, holder = stack.pop()
        if isinstance(obj, str):  # a leaf, seen wherever it is held
            out.append((path, obj, holder))
            continue
        if id(obj) in seen or obj is None or isinstance(obj, (bool, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, bytes):
            out.append((path, obj.decode("utf-8", "replace"), holder))
        elif isinstance(obj, dict):
            stack += [(f"{path}[{k!r}]", v, holder) for k, v in obj.items()]
            stack += [(f"{path}.key", k, holder) for k in obj]
        elif isinstance(obj, CONTAINERS):
            stack += [(f"{path}[{i}]", v, holder) for i, v in enumerate(obj)]
        elif isinstance(obj, types.MethodType):
            stack.append((f"{path}.__self__", obj.__self__, holder))
        elif isinstance(obj, functools.partial):
            stack += [(f"{path}.{n}", getattr(obj, n), holder) for n in ("func", "args", "keywords")]
        elif isinstance(obj, types.FunctionType):
            if obj.__module__.split(".")[0] in FIRST_PARTY:
                stack += [(f"{path}.<closure>", c.cell_contents, holder) for c in obj.__closure__ or ()]
        else:
            module = type(obj).__module__
            if module.split(".")[0] not in FIRST_PARTY or (module.startswith("wxpay") and not enter_wxpay):
                continue
            attrs = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    attrs[slot] = getattr(obj, slot)
            stack += [(f"{path}.{name}", value, type(obj).__name__) for name, value in attrs.items()]
    return out


async def test_no_service_or_handler_object_holds_a_wechat_secret(tmp_path):
    configured = {
        "wechat.api_key": "Ks" + secrets.token_hex(15),  # 32 characters, like an APIv2 key
        "wechat.app_secret": "As" + secrets.token_hex(15),
        "wechat.mini_program_secret": "Ms" + secrets.token_hex(15),
    }
    running = await start_server(tmp_path, **configured)
    try:
        roots = [("services", running.services), ("app.settings", running.app.settings)]
        held = [(path, name) for path, text, _ in strings_reachable(roots, enter_wxpay=False)
                for name, secret in configured.items() if secret in text]
        assert held == []
        # The walk would see them: entering the wxpay objects finds where they live.
        def holders(name: str) -> set[str]:
            found = strings_reachable(roots, enter_wxpay=True)
            return {holder for _, text, holder in found if configured[name] in text}

        assert holders("wechat.api_key") == {"Merchant"}  # the gateway's client's merchant
        assert holders("wechat.app_secret") == {"OfficialAccountClient", "OAuthClient"}
    finally:
        await running.stop(grace=1)
