"""The OpenAPI document (handlers/openapi.py) against the code it describes.

Walks the real route table for every ``/api`` path (and ``/healthz``), and
for each operation follows the code from the handler method into the
services (``self.services.X.y``, ``self.y``, ``self.<collaborator>.y``
through the constructors' type hints, module functions) collecting what
it reads and raises: body fields (the ``json_object`` table it validates
against), query arguments, headers, and every error code with its status.
The document must list exactly those: a field, argument, header or code
the code has and the document lacks fails, and the other way round.
"""
from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any

import jsonschema_rs
import pytest
from tornado.testing import bind_unused_port

import server
import wxpay.errors
from config import load_settings
from handlers import openapi, openapi_markdown
from handlers.base import STATUS_BY_KIND, BaseHandler
from service import errors as service_errors
from service.container import Services
from service.errors import ServiceError
from wiring.sandbox import with_sandbox_defaults
from wiring.web import make_app

ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGES = ("service.", "handlers.")
GENERIC = set(openapi.COMMON) | set(openapi.WITH_BODY) | set(openapi.AUTHENTICATED) | {"invalid_encoding"}


def settings():
    return load_settings(None, env={})


def document() -> dict[str, Any]:
    return openapi.build_document(settings())


# -- what the code does ----------------------------------------------------------------------------


@dataclass
class Reach:
    codes: dict[str, int] = field(default_factory=dict)  # code -> status
    upstream: bool = False  # passes WeChat's codes through (UpstreamError(exc.code, …))
    field_tables: list[frozenset] = field(default_factory=list)
    query: set[str] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not resolve: nothing to follow
        return {}


def _classes(annotation: Any) -> list[type]:
    args = typing.get_args(annotation) or (annotation,)
    return [a for a in args if isinstance(a, type) and a.__module__.startswith(OWN_PACKAGES)]


def _error_class(name: str, module: Any) -> type | None:
    obj = module.__dict__.get(name) or getattr(service_errors, name, None)
    return obj if isinstance(obj, type) and issubclass(obj, ServiceError) else None


def _literals(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        a, b = _literals(node.body), _literals(node.orelse)
        return a + b if a is not None and b is not None else None
    return None


def _chain(node: ast.AST) -> list[str]:
    """``self.services.refunds.create`` -> ["self", "services", "refunds", "create"]."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def visit(fn: Any, owner: type | None, reach: Reach) -> None:
    fn = inspect.unwrap(fn)
    if not isinstance(fn, FunctionType) or not fn.__module__.startswith(OWN_PACKAGES):
        return
    key = f"{fn.__module__}.{fn.__qualname__}"
    if key in reach.seen:
        return
    reach.seen.add(key)
    module = sys.modules[fn.__module__]
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    services = _hints(Services)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        chain = _chain(node.func)
        for kw in node.keywords:  # query_int(..., code="invalid_limit")
            if kw.arg == "code" and (values := _literals(kw.value)):
                for v in values:
                    reach.codes[v] = openapi.ERRORS[v].status if v in openapi.ERRORS else -1
        if len(chain) == 1:
            name = chain[0]
            cls = _error_class(name, module)
            if cls is not None:
                values = _literals(node.args[0]) if node.args else None
                if values is None and isinstance(node.args[0], ast.Name) and node.args[0].id == "code":
                    continue  # the caller names it: query_int(..., code="invalid_limit"), collected there
                if values is None:
                    assert name == "UpstreamError", f"{key}: a {name} whose code is not a literal"
                    reach.upstream = True
                for v in values or ():
                    reach.codes[v] = STATUS_BY_KIND[cls.kind]
                continue
            if name == "store_guard":
                reach.codes["store_unavailable"] = 503
            target = module.__dict__.get(name)
            if name == "json_object" and len(node.args) == 2 and isinstance(node.args[1], ast.Name):
                reach.field_tables.append(frozenset(module.__dict__[node.args[1].id]))
            visit(target, None, reach)
            continue
        if chain[:1] != ["self"] or owner is None:
            continue
        if chain == ["self", "query_arg"] and node.args:
            reach.query.update(_literals(node.args[0]) or [])
        elif chain == ["self", "request", "headers", "get"] and node.args:
            reach.headers.update(_literals(node.args[0]) or [])
        elif len(chain) == 2:
            visit(getattr(owner, chain[1], None), owner, reach)
        elif len(chain) == 4 and chain[1] == "services":
            for cls in _classes(services.get(chain[2])):
                visit(getattr(cls, chain[3], None), cls, reach)
        elif len(chain) == 3:
            for cls in _classes(_hints(owner.__init__).get(chain[1])):
                visit(getattr(cls, chain[2], None), cls, reach)


def reach_of(handler: type, method: str) -> Reach:
    reach = Reach()
    steps = ("prepare", method) if method == "get" else ("prepare", "check_xsrf_cookie", method)
    for step in steps:
        visit(getattr(handler, step), handler, reach)
    return reach


# -- the routes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The route table exactly as the server builds it (services are not called)."""
    return make_app(None, with_sandbox_defaults(settings(), 8000))


def described_routes(app) -> dict[str, type]:
    """Document path -> handler, for every /api route and /healthz."""
    out = {}
    for rule in app.default_router.rules[0].target.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if not (pattern.startswith("/api") or pattern == "/healthz"):
            continue
        names = iter(["checkout_id"] if "/checkouts/" in pattern else ["event_id"])
        path = re.sub(r"\([^)]*\)", lambda _m: "{" + next(names) + "}", pattern).replace("\\.", ".")
        out[path] = rule.target
    return out


def operations_by_path() -> dict[str, dict[str, openapi.Operation]]:
    out: dict[str, dict[str, openapi.Operation]] = {}
    for op in openapi.operations():
        out.setdefault(op.path, {})[op.method] = op
    return out


def test_every_api_route_is_documented_with_exactly_its_methods(app):
    routes = described_routes(app)
    ops = operations_by_path()
    assert set(routes) == set(ops)
    for path, handler in routes.items():
        assert {m.lower() for m in handler.allowed_methods()} == set(ops[path]), path


def test_path_parameters_match_the_route_groups(app):
    for path, handler in described_routes(app).items():
        for method, op in operations_by_path()[path].items():
            documented = [p.name for p in op.params if p.where == "path"]
            assert documented == re.findall(r"\{(\w+)\}", path), (method, path)
            assert len(inspect.signature(getattr(handler, method)).parameters) - 1 == len(documented)


def all_operations(app):
    routes = described_routes(app)
    return [(op, routes[op.path]) for op in openapi.operations()]


def test_each_operation_reads_exactly_the_documented_query_arguments_and_headers(app):
    for op, handler in all_operations(app):
        reach = reach_of(handler, op.method)
        assert reach.query == {p.name for p in op.params if p.where == "query"}, op.operation_id
        if not op.public:  # ApiHandler refuses any other query argument
            assert handler.query_params.get(op.method.upper(), frozenset()) == reach.query, op.operation_id
        # Authorization is the bearer security scheme: read by every operation that is not public.
        # X-Forwarded-For is believed only from server.trusted_proxies: infrastructure, not the API.
        assert ("Authorization" in reach.headers) is not op.public, op.operation_id
        own = reach.headers - {"Authorization", "X-Forwarded-For"}
        assert own == {p.name for p in op.params if p.where == "header"}, op.operation_id


def test_each_body_is_documented_field_for_field(app):
    schemas = document()["components"]["schemas"]
    for op, handler in all_operations(app):
        reach = reach_of(handler, op.method)
        if op.body is None:
            assert reach.field_tables == [], op.operation_id
            continue
        assert len(set(reach.field_tables)) == 1, (op.operation_id, reach.field_tables)
        assert set(schemas[op.body]["properties"]) == set(reach.field_tables[0]), op.operation_id
        assert schemas[op.body]["additionalProperties"] is False


def test_each_operation_documents_exactly_the_codes_it_can_raise(app):
    for op, handler in all_operations(app):
        reach = reach_of(handler, op.method)
        documented = set(op.all_errors())
        ours = set(reach.codes)
        if reach.upstream:
            ours |= set(openapi.UPSTREAM)
        assert ours - documented == set(), f"{op.operation_id} can raise undocumented codes"
        assert documented - ours - GENERIC == set(), f"{op.operation_id} documents codes it cannot raise"
        for code, status in reach.codes.items():
            assert openapi.status_of(code) == status, (op.operation_id, code)


# -- every code, everywhere ----------------------------------------------------------------------


def raise_sites() -> dict[str, set[int]]:
    """Every literal code given to a ServiceError subclass in service/ and handlers/, with its status."""
    found: dict[str, set[int]] = {}
    for path in [*ROOT.joinpath("service").glob("*.py"), *ROOT.joinpath("handlers").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                cls = getattr(service_errors, node.func.id, None)
                if isinstance(cls, type) and issubclass(cls, ServiceError) and node.args:
                    for code in _literals(node.args[0]) or ():
                        found.setdefault(code, set()).add(STATUS_BY_KIND[cls.kind])
    return found


def test_every_code_raised_anywhere_is_in_the_table_with_its_status():
    sites = raise_sites()
    # The shopper's page, OAuth and /status: not the merchant API.
    page_only = {"oauth_state_missing", "oauth_state_mismatch", "oauth_denied", "oauth_code_invalid",
                 "oauth_code_used", "oauth_code_replayed", "oauth_state_used", "too_many_sign_ins",
                 "xsrf_invalid", "product_not_found",
                 "admin_auth_required", "too_many_login_attempts", "trade_type_not_allowed",
                 # the operator's console under /status (handlers/console.py)
                 "invalid_search", "search_too_long", "invalid_action_key", "invalid_day", "checkout_not_open",
                 "confirmation_stale", "cross_site_export"}
    assert not page_only & set(openapi.ERRORS)
    for code, statuses in sites.items():
        if code in page_only:
            continue
        assert code in openapi.ERRORS, f"{code} is raised but not in handlers/openapi.py ERRORS"
        assert statuses == {openapi.ERRORS[code].status}, code


def test_every_code_in_the_table_is_raised_somewhere():
    sites = set(raise_sites())
    made_elsewhere = {"invalid_encoding", "not_found", "body_too_large", "malformed_request", "method_not_allowed",
                      "internal_error"}  # handlers/base.py, handlers/body_limit.py
    assert set(openapi.ERRORS) - sites - made_elsewhere == set()
    source = (ROOT / "handlers" / "base.py").read_text() + (ROOT / "handlers" / "body_limit.py").read_text()
    for code in made_elsewhere:
        assert f'"{code}"' in source, code


def test_wechat_codes_are_every_code_the_wxpay_library_can_pass_up():
    codes = set()
    stack = [wxpay.errors.WxPayError]
    while stack:
        cls = stack.pop()
        codes.add(cls.code)
        stack.extend(cls.__subclasses__())
    not_from_the_merchant_api = {c for c in codes if c.startswith(("bill", "no_bill", "oauth_"))}
    assert set(openapi.UPSTREAM) == codes - not_from_the_merchant_api
    assert not set(openapi.UPSTREAM) & set(openapi.ERRORS)


# -- the document itself -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    # The OpenAPI 3.1 meta-schema as schemathesis ships it (its loader validates the same way).
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    doc = document()
    errors = [e.message for e in jsonschema_rs.validator_for(OPENAPI_31).iter_errors(doc)]
    assert errors == []
    for name, schema in doc["components"]["schemas"].items():
        # Each schema compiles as JSON Schema 2020-12, its references resolved inside the document.
        jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})
        assert schema.get("additionalProperties") is False, name


def test_error_responses_name_their_codes_and_every_code_is_in_the_table():
    doc = document()
    table = {row["code"]: row["status"] for row in doc["x-error-codes"]}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                for code in schema.get("properties", {}).get("code", {}).get("enum", []):
                    assert table[code] == int(status), (method, path, code)


def test_docs_are_rendered_from_the_document(capsys):
    assert server.openapi_main(["--check"]) == 0, "run: make api-docs"
    docs_doc = openapi.build_document(settings(), version=server.VERSION, server_url=openapi_markdown.DOCS_SERVER_URL)
    assert json.loads(openapi_markdown.JSON_FILE.read_text()) == docs_doc
    assert openapi_markdown.render(docs_doc) == openapi_markdown.MARKDOWN.read_text()


async def test_the_document_is_served_without_a_token(tmp_path):
    sock, _ = bind_unused_port()
    running = await server.start(load_settings(None, env={}, overrides={
        "store.sqlite_path": str(tmp_path / "s.sqlite3"), "reconciler.enabled": False}), sockets=[sock])
    try:
        from tests.server.browser import Browser, as_json

        r = await Browser(f"http://127.0.0.1:{running.port}").get("/api/openapi.json")
        assert r.code == 200 and r.headers["Content-Type"].startswith("application/json")
        served = as_json(r)
        assert served == openapi.build_document(running.settings, server_url=running.services.public_base)
        assert served["servers"] == [{"url": f"http://127.0.0.1:{running.port}"}]
    finally:
        await running.stop(grace=1)


def test_unknown_api_paths_are_not_an_operation(app):
    # The JSON 404 for /api/... comes from the default handler, not a route this test would have to skip.
    assert all(not p.endswith(".*") for p in described_routes(app))
    assert BaseHandler.allowed_methods() == []
