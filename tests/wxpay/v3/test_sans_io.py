"""wxpay.v3 is the sans-I/O core: no sockets, no event loop, no simulator, no V2 client; secrets stay out of logs.

One module is the exception by design: ``client.py``, the thin class that
does the V3 I/O, and only through ``wxpay.transport`` (never a socket or an
HTTP library of its own).
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

from wxpay.errors import WxPayError
from wxpay.v3 import ApiV3Cipher, NotifyReader, Validator

from .test_notify import TRANSACTION, make_notify
from .vectors import APIV3_KEY, KEYS, MCHID, NOW, by_id, combined_verifier, load

V3 = Path(__file__).resolve().parents[3] / "wxpay" / "v3"
FORBIDDEN = {"socket", "asyncio", "tornado", "pycurl", "urllib.request", "http.client", "threading",
             "wxpay.client", "wxpay.transport", "wxpay.simulator", "wxpay.oauth", "wxpay.official"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module)
            elif node.level == 2 and node.module:  # from ..client import …
                found.add("wxpay." + node.module)
    return found


IO_MODULE = {"client.py": {"asyncio", "wxpay.transport", "wxpay.retry"}}


def test_the_v3_core_does_no_io():
    offenders = {}
    for path in sorted(V3.glob("*.py")):
        allowed = IO_MODULE.get(path.name, set())
        bad = {name for name in _imports(path) - allowed
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_only_the_client_module_does_io():
    """The exception stays one module: nothing else in wxpay.v3 imports the client or the transport."""
    users = sorted(p.name for p in V3.glob("*.py")
                   if p.name not in ("client.py", "__init__.py") and {"wxpay.transport", "asyncio"} & _imports(p))
    assert users == []
    assert "wxpay.transport" in _imports(V3 / "client.py")


def test_no_key_material_in_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    reader = NotifyReader(Validator(combined_verifier(), clock=lambda: NOW), ApiV3Cipher(APIV3_KEY), MCHID)
    messages = []
    for v in by_id(load("response-verification.json")["notifies"]).values():
        try:
            reader.read(v["headers"], v["body"].encode())
        except WxPayError as exc:
            messages.append(str(exc.to_dict()))
    for bad in (make_notify("TRANSACTION.SUCCESS", TRANSACTION, key="0" * 32),
                make_notify("TRANSACTION.SUCCESS", TRANSACTION | {"amount": {"total": "1"}})):
        try:
            reader.read(*bad)
        except WxPayError as exc:
            messages.append(str(exc.to_dict()))
    text = caplog.text + "\n".join(messages)
    assert "rejected" in caplog.text and len(messages) == 4
    secrets = [APIV3_KEY] + [KEYS[k]["private_key_pem"].splitlines()[5] for k in ("merchant", "wechatpay_public_key", "platform_certificate")]
    for secret in secrets:
        assert secret not in text
    assert "\n1767239997\n" not in text  # no string-to-verify
