"""APIv3's wire rules on WeChat's side: the error shape and what a request body may hold.

Every refusal is a :class:`V3Error`: an HTTP status and ``{code, message,
detail?}`` (digest §4). Bodies are strict JSON objects (digest §5 common
conventions): valid UTF-8, no repeated key, no ``null`` anywhere (absent
fields are omitted), no character outside the Basic Multilingual Plane
(WeChat stores 1-3-byte UTF-8 only, so an emoji is refused).
"""
from __future__ import annotations

import json
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024  # real request bodies are a few KiB


class V3Error(Exception):
    """A V3 error reply: ``status`` + ``{code, message, detail?}``."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def param_error(path: str, issue: str, *, value: Any = None, location: str = "body") -> V3Error:
    """400 PARAM_ERROR naming the field as a JSON pointer (``/amount/total``)."""
    detail: dict[str, Any] = {"field": path, "location": location, "issue": issue}
    if value is not None and not isinstance(value, (dict, list)):
        detail["value"] = value
    return V3Error(400, "PARAM_ERROR", f"输入源“/{location}{path}”校验失败：{issue}", detail)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as WeChat writes it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise V3Error(400, "PARAM_ERROR", "请求体JSON中有重复的字段名")
    return obj


def _no_constant(name: str) -> Any:
    raise V3Error(400, "PARAM_ERROR", f"请求体不是合法的JSON：{name}")


def _check_values(value: Any, path: str) -> None:
    if value is None:
        raise param_error(path or "/", "不允许为null，无值的字段请省略")
    if isinstance(value, str):
        if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise param_error(path, "含有4字节UTF-8字符（如emoji），仅支持1-3字节的UTF-8字符")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, f"{path}/{key}")  # a name is a string: the same rule
            _check_values(item, f"{path}/{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_values(item, f"{path}/{n}")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or the V3Error WeChat answers."""
    if len(raw) > MAX_BODY_BYTES:
        raise V3Error(400, "INVALID_REQUEST", f"请求体过大（{len(raw)}字节，上限{MAX_BODY_BYTES}字节）")
    if not raw.strip():
        raise V3Error(400, "PARAM_ERROR", "请求体为空，应为JSON对象")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的UTF-8编码") from None
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
    if not isinstance(obj, dict):
        raise V3Error(400, "PARAM_ERROR", "请求体应为JSON对象")
    _check_values(obj, "")
    return obj
