"""Write docs/RELIABILITY.md from the battery's results folder.

``python -m tests.battery.report`` (``make reliability`` runs the whole
battery, the slow cases and a soak first). Every figure in the document
comes from a JSON record a test or the soak wrote (tests/battery/results.py);
nothing here is typed by hand except the list of weaknesses, and each of
those names the case that pins its fix, whose outcome is looked up.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .results import ROOT, read_all, results_dir

SECTIONS = [
    ("duplicates", "1. Duplicates and races",
     "One async client, at most 100 requests in flight, loopback only."),
    ("crashes", "2. Crashes (kill -9)",
     "A standalone simulator retrying notifies at 1000x speed; the server restarted on the same SQLite file after "
     "each kill; test pauses (service/pauses.py, sandbox only) widen the windows. `kills_inside_window` counts the "
     "windows each kill cut (read from the killed process's log)."),
    ("dependencies", "3. Dependencies failing", "Store (MongoDB emulator's down switch, a SQLite write lock) and "
     "WeChat (the simulator's fault switches)."),
    ("hostile", "4. Hostile input", "Each case asserts the status code and that checkouts, orders, refunds and the "
     "webhook outbox are unchanged (snapshots before/after). `notify-v3-*` and `refund-notify-v3-*` go to an "
     "APIv3 server: WeChat's signature over the raw body, its time window and serial, then decryption, then our "
     "records."),
    ("secrets", "5. Secrets", "Every log line of the battery (in-process at DEBUG with the access log, and the "
     "server processes' log files) and every error body received, searched for every configured secret."),
    ("soak", "6. Load (soak)", "`python -m tests.battery.soak --minutes N`: one sandbox server process (the "
     "simulated WeChat in a process of its own), mixed traffic from virtual shoppers, RSS sampled every 5 s; "
     "bounds: no error reply, no pending order after the reconciler, RSS growth after warm-up under the stated "
     "bound."),
    ("fuzz", "7. Fuzzing the merchant API (schemathesis)", "`tests/server/test_fuzz_api.py`: schemathesis 4 against "
     "a real server on loopback, from the server's own OpenAPI document (`/api/openapi.json`), valid and invalid "
     "cases with a fixed seed (30 per operation in `make test`, 400 with `-m slow`). Each call: no 5xx, status, "
     "content type and body conform to the document, invalid data refused, errors `{code, message}` with a code the "
     "operation documents, and the store unchanged by every refused call."),
    ("edge", "8. The HTTP edge: slow clients, connection caps, log lines, headers",
     "Real sockets on loopback: clients that send nothing, half a header line, half a body, or sit on a kept-alive "
     "connection (timeouts set to 1 s for the test); a server process with 300 file descriptors flooded with 400 "
     "connections; hostile characters (CR/LF, ESC, U+2028, bidi overrides, C1) in every place a request carries "
     "text, through the process's own log formatter; a crawl of every route in sandbox and live mode."),
    ("notify_costs", "9. What an unverified notify costs (and fuzzing)",
     "Real sandbox servers on loopback. Bytes are the SQLite file's growth after a WAL checkpoint, divided by the "
     "refusals; the fuzz cases post Hypothesis-generated bodies (arbitrary bytes, XML-shaped, mutations of a real "
     "signed or encrypted notify, huge and nested) and compare the business state after every one."),
    ("outsider", "10. A second outside review: what an outsider could still make the server spend",
     "Real sandbox servers on loopback (`tests/battery/test_outsider.py`). Calls to WeChat are the server's own "
     "counts (what /status shows); log lines are the records emitted at INFO and above; connections are the "
     "listener's own count. Each case names the cost before the fix in its docstring and in the weakness table."),
    ("speed_review", "11. A third outside review: the speed work's shortcuts",
     "`tests/battery/test_speed_review.py`: the in-place upgrade of a SQLite file to indexed fields as columns, "
     "raced by a second starting process and cut short by kill -9, judged by whether a start fails, a row is lost "
     "or an index column disagrees with its document. Real SQLite files, real processes beside the test's. (The "
     "columns against MongoDB's answers through every write verb: tests/store/test_differential.py.)"),
]

# (weakness, fix, section, case that pins it)
WEAKNESSES = [
    ("A store failure (or crash) between the order's move to paid and the checkout's update left the checkout open "
     "forever: the repeated notify found the order paid and answered SUCCESS; the reconciler only looks at unpaid "
     "orders.",
     "The move to paid sets `settle_due_at` in the same write; `Payments.settle` (idempotent) finishes the "
     "checkout, siblings, webhook intent and listeners, then clears it. A repeated notify finishes it before "
     "answering SUCCESS; the reconciler sweeps markers older than 5 s.",
     "dependencies", "store lost between the order's move and the checkout's"),
    ("WeChat calls used Tornado's process-wide AsyncHTTPClient (10 slots): with the slots taken (a burst of "
     "notifies each awaiting its orderquery, or any other HTTP in the process), orderqueries timed out in the "
     "queue and notifies failed.",
     "`TornadoTransport` has its own client per event loop (`max_clients=100`).",
     "dependencies", "WeChat calls with the shared HTTP client saturated"),
    ("A kill inside unifiedorder left the checkout's prepay lease (30 s, fixed) held by the dead process: every "
     "shopper retry waited 10 s and got 409 `prepay_in_progress` for half a minute.",
     "The prepay lease is 6 s, renewed every 2 s while unifiedorder runs; waiting requests take it over once it "
     "lapses.",
     "crashes", "kill -9 across 20 payments (CI variant)"),
    ("JSON nested deeply enough to exhaust the parser's recursion was a 500 `internal_error` on the merchant API "
     "(and NaN/Infinity were accepted as numbers).",
     "`BaseHandler.json_body` turns RecursionError into 400 `invalid_json` and refuses NaN/Infinity.",
     "hostile", "api-body-deeply-nested"),
    ("The access log carried full query strings: OAuth codes on `/oauth/callback`, and in sandbox the app secret "
     "on the simulated `sns/oauth2/access_token`.",
     "`handlers/access_log.py`: query values replaced by `…` in the access log.",
     "secrets", "no secret in logs or error bodies"),
    ("The start-up banner printed `merchant_api.tokens[0]` even when it was a configured secret (stdout ends up in "
     "journald/docker logs).",
     "Only the public sandbox default is shown; a configured token reads `(configured; not shown)`.",
     "secrets", "no secret in logs or error bodies"),
    ("With WeChat calls moved to Tornado's curl client (kept-alive connections), its DEBUG log carried every "
     "URL: the app secret and OAuth code in `sns/oauth2/access_token`'s query.",
     "`wxpay/transport.py`: a filter on the curl client's logger masks query strings and drops curl's traces of "
     "request bodies.",
     "secrets", "no secret in logs or error bodies"),
    ("The admin login only delayed each wrong reply: 40 parallel guesses were all evaluated (the delay came after "
     "the comparison). The merchant API's bearer token had no limit at all.",
     "`handlers/lockout.py`: an attempt is admitted before its credentials are compared, attempts in flight count. "
     "Admin: 5 failures per address, then 429 + Retry-After for 30 s doubling to 15 min; 100 failures per 10 min "
     "overall, addresses that signed in within 7 days exempt; every lock expires. API token: 20 per address, then "
     "1 s doubling to 60 s.",
     "hostile", "status-brute-force-burst"),
    ("Same weakness on the merchant API's bearer token (no limit on wrong tokens).",
     "`merchant_api_lockout`: 20 wrong tokens per address, then 429 `too_many_token_attempts`.",
     "hostile", "api-token-brute-force-burst"),
    ("A WeChat OAuth code's cached result was handed to any browser presenting the code with a valid state of its "
     "own: a code replayed from another browser got the shopper's openid. Cached results never expired.",
     "Claims store a digest of the starting browser's state: another state gets 403 `oauth_code_replayed` and no "
     "WeChat call; the same browser may repeat within 10 s; claims expire after 10 min and are pruned.",
     "hostile", "oauth-code-replayed-from-other-browser"),
    ("Live mode started with the simulator's demo merchant (its appid, mch_id, API key, secrets, the demo "
     "certificate), WeChat's documentation examples and degenerate secrets (`\"k\" * 32`).",
     "`config/validate.py` refuses every public value, the demo key by path and by fingerprint of its RSA numbers "
     "(copies and re-encodings too), secrets with one repeated character, fewer than 8 distinct characters or a "
     "repeated pattern, a public_url beyond a bare domain origin, trusted_proxies covering every address and a "
     "placeholder shop name.",
     "secrets", "live mode refuses public and degenerate credentials"),
    ("Query integers went through `str.isdigit()` and `int()`: `limit=١٢` (Arabic-Indic) or `１２` listed 12 "
     "checkouts, `limit=²` was a 500; Tornado stripped whitespace so `12\\n` passed too.",
     "`service/validation.query_int`: ASCII digits matched whole, on the argument as sent (`ApiHandler.query_arg`, "
     "no stripping); the same family closed in wxpay (reply integers, wire times, bill counts, errcode).",
     "hostile", "api-list-limit-superscript-two"),
    ("Patterns were `re.match` with `$`, which lets a trailing newline through: `merchant_reference: \"order-1\\n\"` "
     "was stored, `out_refund_no: \"R1\\n\"` refunded, `jsApiList=chooseWXPay%0A` signed.",
     "Every pattern is matched whole (`fullmatch` or `\\Z`), in the services, wxpay, the store and the simulator.",
     "hostile", "api-reference-trailing-newline"),
    ("A lone surrogate (`\\ud800`) in description or attach was a 500 (UTF-8 encoding failed), in a refund reason a "
     "503 `store_unavailable` (SQLite refused it); as a JSON key, the 400 itself failed to encode and the body was "
     "empty. Bidi overrides and line or paragraph separators were accepted in what WeChat shows the shopper.",
     "`service/validation.safe_text` refuses controls (C0, C1), surrogates, bidi embeddings/overrides/isolates and "
     "U+2028/2029 in description, attach and reason; unknown field names are quoted back escaped; JSON bodies are "
     "encoded with `backslashreplace`, so no answer can fail to encode.",
     "hostile", "api-description-lone-surrogate"),
    ("URLs went straight to `urlsplit`: `return_url` or wx-config `url` = `http://[::1` was a 500 (ValueError), "
     "ports 99999 or `:http` were accepted; the page's `page_url` likewise made prepay a 500.",
     "`service/validation.http_url` parses inside `try`, reads `.port`, wants a host and ASCII; used by return_url, "
     "wx-config and the page's same-origin check.",
     "hostile", "api-return-url-unclosed-ipv6"),
    ("The documented body limit (`server.max_body_bytes`, 64 KiB) was not the real one: the HTTP server took up to "
     "1 MiB (a 1 MiB checkout request was created), and past that Tornado answered a bare `400` with no body.",
     "`handlers/body_limit.py` wraps the application: a Content-Length over the limit is 413 `body_too_large` in "
     "JSON before the handler runs (chunked bodies counted likewise), a malformed one 400 `malformed_request`.",
     "hostile", "api-body-limit-plus-one"),
    ("Unknown `/api/...` paths answered the HTML 404 page (a POST to one: an HTML 403 XSRF page); 405s had code "
     "`http_405` and no `Allow`, and `POST /api/checkouts/{id}` answered 405 with code `internal_error`; the page's "
     "missing XSRF token was `http_403`; undecodable query arguments `http_400`.",
     "JSON `not_found` for any `/api` path, `method_not_allowed` with `Allow`, `xsrf_invalid`, `invalid_encoding`: "
     "one mapping in `handlers/base.py`.",
     "hostile", "api-unknown-path-without-token"),
    ("The App/Mini Program payload request ignored unknown fields, took an integer or `true` as `client_ip` "
     "(then WeChat's 502 `invalid_argument`) and any openid up to 128 characters (NUL, spaces: a 502 from WeChat).",
     "`service/prepay.payment_request`: a field table like the other bodies, `client_ip` as text without zone, "
     "openid `[A-Za-z0-9_-]{1,128}`.",
     "hostile", "api-payment-client-ip-integer"),
    ("Unknown query parameters were ignored: a typo such as `?stauts=paid` listed every checkout.",
     "Each API handler names the query parameters it reads; any other, or one given twice, is 400 "
     "`unknown_parameter` / `repeated_parameter` (found by schemathesis' negative cases against the OpenAPI "
     "document).",
     "hostile", "api-list-typo-in-filter-is-refused"),
    ("After a kill -9 during a webhook delivery pass or a reconciler pass, the lease the dead process held (30 s "
     "and 60 s, fixed) blocked that work until it expired: with 4 such kills across 12 payments, payment to "
     "webhook took median 31-46 s, 90th percentile 62 s, worst 62 s (two runs of the case below on the earlier "
     "code).",
     "`Leases.hold` (store/leases.py): leases of 6 s renewed every 2 s by a heartbeat while the pass runs (webhook "
     "delivery, reconciler, prepay slot, token refresh); a holder that lost its lease stops at its next safe point "
     "(a webhook POST under way is recorded first, so delivery stays at least once); a reconciler that finds the "
     "lease busy looks again after one lease ttl.",
     "crashes", "payment to webhook under kill -9 of leased passes (CI variant)"),
    ("A pay link could make unbounded `unifiedorder` calls: each new H5 client IP (or openid, or trade type) made "
     "a new WeChat order, for any number of checkouts from one source; closing a paid checkout's siblings read "
     "at most 200 of its orders.",
     "At most `checkout.max_orders` (10) WeChat orders per checkout, reserved in the compare-and-set that finds the "
     "checkout open (409 `too_many_orders`); at most `checkout.orders_per_ip` (60 per 10 min; an IPv6 /64 is one "
     "source) new orders per source, counted in the store so every process shares it (429 `too_many_requests`, "
     "`Retry-After`); a checkout's orders and refunds are read whole.",
     "duplicates", "pay-link flood and one source, two processes"),
    ("A cancel racing a prepay: an order whose unifiedorder landed after the cancel had listed the checkout's "
     "orders stayed payable with its prepay_id handed out, and a payment after the merchant was told `closed` "
     "turned the checkout paid.",
     "A close marks the checkout first (no order can be reserved after), checks every order with WeChat, then "
     "moves open → closed; a prepay reads the checkout again after WeChat answers and hands a late order to the "
     "reconciler instead of to the shopper. Closed is final: a payment that still lands is confirmed, refunded "
     "automatically and flagged `double_paid`.",
     "duplicates", "a cancel racing unifiedorder"),
    ("Tornado's defaults kept a connection that sent nothing or half a header line open for an hour, and one that "
     "sent half a body open for ever.",
     "`edge/http_server.py`: header (20 s), kept-alive idle (75 s) and body (30 s) timeouts from `[server]`.",
     "edge", "slow clients dropped after their timeouts"),
    ("No cap on open connections: past the open-files limit `accept()` failed on every loop turn (EMFILE), about "
     "4.5 MB of tracebacks a second in the log, about 70 % of a core, and the server unreachable.",
     "`edge/connection_cap.py`: `server.max_connections` (and a per-source share) refused with a bare 503; the cap "
     "is fitted under the open-files limit at start, raising the soft limit when the hard one allows.",
     "edge", "connection flood past the open-files limit"),
    ("Log lines could be forged: a notify's `out_trade_no` (before its signature is checked) and merchant API JSON "
     "field names were logged raw, so a CR/LF in them started a line of its own (ESC, U+2028 and bidi overrides "
     "likewise).",
     "`edge/log_lines.py`: the process's formatter escapes controls, separators and bidi characters in every "
     "record; traceback lines are marked as continuations.",
     "edge", "hostile values in paths, queries, headers, JSON and notify bodies: no forged log line"),
    ("Static files, the mounted simulator and Tornado's own errors had no `nosniff` and announced "
     "`Server: TornadoServer/6.6.1`; live mode sent no HSTS.",
     "`edge/headers.py`: an output transform on every response adds `nosniff` (and HSTS in live mode) and drops "
     "`Server`.",
     "edge", "every route, static file and error: nosniff, no Server header, HSTS in live mode"),
    ("Every body posted to `/notify/pay` and `/notify/refund` was stored in the audit trail (up to 16 KiB each, "
     "17,025 bytes of SQLite file per refused 16 KiB notify), even when refused before any signature check, and "
     "nothing was ever deleted; each refusal also wrote two WARNING lines.",
     "The proof of origin (signature; decryption for refunds) runs before any store lookup; what fails it keeps "
     "verdict, size, SHA-256 and a 64-character prefix only, within a per-source limit (`[notify]`, 429 beyond, "
     "never consulted for a verified notify); one WARNING summary a minute; `audit.retention_days` (MongoDB TTL "
     "index, SQLite pruning task).",
     "notify_costs", "bytes stored per refused 16 KiB notify"),
    ("A rate limit on the notify endpoints could have refused WeChat's own retries when its address was flooded.",
     "The limiter is consulted only after verification failed, so a notify with a valid signature always goes "
     "through the whole flow.",
     "notify_costs", "signed notify after a flood from the same source"),
    ("One signed OAuth state cookie, replayed with made-up codes, made a call to WeChat's "
     "`sns/oauth2/access_token` and stored a claim per callback (300 callbacks: 300 calls, 300 claims, 7.7 MB of "
     "WAL); a fresh state is one page load away, and sign-ins had no per-source bound.",
     "`service/oauth.py`: a state is good for one code (its own claim; another code gets `oauth_state_used`, no "
     "call); `oauth.sign_ins_per_ip` (60 per 10 min, in the store, `service/source_quota.py` under its own "
     "scope) bounds code exchanges per source: 429 `too_many_sign_ins`, nothing stored.",
     "outsider", "oauth-state-replayed-with-made-up-codes"),
    ("Same class: fresh sign-ins from one source (page load + callback) were unbounded WeChat calls.",
     "The sign-in quota above; a used state is refused before the quota counts.",
     "outsider", "oauth-sign-ins-per-source"),
    ("While WeChat refused `cgi-bin/token` (an outage, the server's IP missing from the whitelist), every request "
     "that needed a token made its own fetch: 200 `wx-config` requests, 200 calls, against a quota of 2,000 a day "
     "that an outage could use up for the rest of the day.",
     "`service/tokens.py`: a failed fetch is remembered in the store and not repeated for 5 s, doubling to 5 min "
     "(at most 288 fetches a day per kind in a long outage); a still-usable cached value is served meanwhile.",
     "outsider", "token-fetch-backoff-while-wechat-refuses"),
    ("Every refused request wrote a log line, a refusal by a lockout or a quota two (the handler's INFO line and "
     "the access log's WARNING), malformed request lines and oversized bodies one each (Tornado's and the body "
     "limit's): 80-260 bytes of log per request, without bound (a wrong-token flood: 52 KB per 200 requests).",
     "`edge/log_budget.py`: a per-source line budget (30 a minute per source, 300 in all; IPv6 by /64) for the "
     "access log's 4xx lines, the body limit's refusals and Tornado's own lines; the rest counted and summed up "
     "in one WARNING line a minute; an error line names its code, so a refusal is one line. The notify limiter's "
     "buckets are the same class.",
     "outsider", "client-error-lines-per-source"),
    ("The login and API-token lockouts counted the address string: an IPv6 host rotating through its /64 got 20 "
     "free wrong tokens per address (200 wrong tokens from one /64: 200 evaluated, none refused), and one address "
     "had many spellings (`2001:DB8::1`, `[2001:db8::1]:4711`, a zone id, IPv4-mapped). Four modules had their own "
     "copy of the source rule.",
     "`edge/sources.py` owns it (IPv4 address or IPv6 /64, canonical spelling, `X-Forwarded-For` hops with a "
     "port); the connection cap, both lockouts, the notify limiter, the quotas and the line budget use it; "
     "`client_ip()` is canonical (also what WeChat gets as the shopper's IP).",
     "outsider", "lockout-ipv6-rotation-in-one-64"),
    ("A client that pipelined requests and never read the answers (a small receive window) held its connection, "
     "and an answer in memory, for ever: past the header, idle and body timeouts (Tornado keeps no timer while it "
     "writes). Any page serves: 20 pipelined pay pages already outgrow the socket buffers; a few hundred such "
     "sockets fill `server.max_connections` (in sandbox, loopback is exempt from the per-source share).",
     "`server.write_timeout_s` (30 s): a sweep once a second drops a connection whose pending answer made no "
     "progress (bytes leaving the socket's send queue) for that long; requests left in a dropped stream's buffer "
     "run no handler.",
     "outsider", "slow-reader-pipelining-never-reads"),
    ("Sandbox: the mounted simulator had no APIv3 credentials for the demo merchant, so every `/_wechat/v3/` call "
     "was 401 `商户未设置APIv3密钥` although the README offers the V3 keys; `POST /_sim/faults` (open to anyone who "
     "reaches a sandbox server) kept every fault: 20,000 took 14 MB and were looked through on every call.",
     "`server.simulator_config` gives the demo merchant its TEST-ONLY V3 side; the simulator keeps at most 100 "
     "active faults (endpoint names of at most 128 characters).",
     "outsider", "sandbox-simulator-v3-and-bounded-faults"),
    ("A careless operator's `server.max_body_bytes` had no maximum: every body is held in memory whole, and one "
     "100 MB notify took the process from 60 MB to 485 MB of RSS.",
     "At most 1 MiB (16 times the default; every body this server takes is a few KB); the new settings' edges "
     "(0, 1, maximum, one past it) are checked in one case.",
     "outsider", "settings-of-the-limits-at-their-edges"),
    ("A notify whose orderquery said REFUND (paid, then refunded in the merchant platform before the notify got "
     "through) was refused with 409 `query_says_REFUND` on every one of WeChat's retries, while the reconciler "
     "recorded the same answer as a payment: the notify and the reconciler confirmed payments by two rules.",
     "One payment confirmation (`service/payments.py`) for the notify, the reconciler and a cancel: SUCCESS and "
     "REFUND are both a payment; every move to paid goes through it and the lifecycle's one table.",
     "duplicates", "a notify for a payment refunded at WeChat before it arrived"),
    ("A Mini Program payment could not be tried in sandbox (the simulator had no `sns/jscode2session` and "
     "accepted only openids it derived itself), and an openid WeChat refuses (made up, or the Official "
     "Account's) was a 502 `invalid_request` on `POST /api/checkouts/{id}/payment`: WeChat blamed, not the "
     "merchant's input.",
     "The simulator answers `sns/jscode2session` and mints `wx.login` codes (`/_sim/wx-login`); "
     "`POST /api/mini-program/sessions` trades a code for the openid; `OpenidMismatchError` (V2 `PARAM_ERROR` "
     "naming the openid, V3 `OPENID_MISMATCH`) is 400 `openid_rejected`, the order failed, nothing paid.",
     "dependencies", "WeChat refuses the openid of a Mini Program payment"),
    ("Shopper-facing errors were one line of the API's English message and the raw code, the same in every "
     "language; a missing static file got Tornado's bare 404, and a handler that is no page (the sandbox "
     "bridge's 404 in live mode) sent its HTML without the pages' CSP.",
     "`web/templates/error.html` (handlers/error_pages.py): what happened and what to do next in the page's "
     "language, the code small; every HTML error, static files' included, carries the pages' CSP and no script "
     "or inline style.",
     "edge", "every HTML error: the error page, under the pages' CSP, no script or inline style"),
    ("Why WeChat failed was invisible at the default log level: each attempt was one DEBUG line and /status's "
     "last error said only `wechat_unreachable` (refused, DNS, TLS, timeout and 5xx alike); with curl 8 the "
     "message no longer even said \"refused\".",
     "`wxpay/causes.py` names the cause from curl's error number and the socket's errno, or the simple client's "
     "socket, DNS and ssl errors (refused, dns, tls_certificate, tls_client_certificate, connect/read timeout, "
     "reset, closed, http_N, malformed_reply, bad_signature …); one INFO line per failed call with endpoint, "
     "host, cause and latency; /status's WeChat calls panel counts failures by cause and shows the latest.",
     "dependencies", "WeChat's address refused: the cause in the log and on /status"),
    ("A busy port, an SQLite path in a folder that could not be created (or that was a folder, or not a "
     "database) and an unreachable MongoDB stopped the start with a Python traceback; a MongoDB URI with a bad "
     "port raised a bare ValueError; `wxpay-server bills` run from another folder created an empty store of its "
     "own and reported every payment as missing.",
     "`wiring/startup.py` and the stores' open errors: exit 2 and one line naming the setting and what to do "
     "(MongoDB: hosts and database, never credentials; its URI's serverSelectionTimeoutMS bounds the wait); "
     "bills refuses a store that does not exist.",
     "dependencies", "start-up refusals: one line, no traceback"),
    ("In sandbox, `wxpay-server bills --date <today>` as the README says always answered \"not ready\": the "
     "mounted simulator kept WeChat's 09:00-the-next-day rule, so the command could not be tried on the day.",
     "The sandbox server's simulator serves the day's bill on the day (`SimConfig.bills_on_the_day`); `--port` "
     "or `--url` names the server.",
     "dependencies", "bills --date <today> --port P against a sandbox server"),
    ("A payment notify waited for WeChat's orderquery without a bound (the query's own retries and timeouts "
     "included): a slow query kept the notify open past the 5 s WeChat waits, so WeChat counted a failure while "
     "the server went on to answer SUCCESS to nobody.",
     "The notify's query is bounded by `notify.confirm_timeout_s` (3 s, at most 4.5); past it the notify is "
     "answered FAIL / 503 with nothing changed, and WeChat's retry (or the reconciler) confirms the payment.",
     "dependencies", "orderquery slower than WeChat's notify timeout"),
    ("The console's refund confirmation (new in this round) first read its hidden amount with `str.isdigit()` and "
     "`int()`, which take full-width and other Unicode digits: a forged form with `１００` refunded 100 fen.",
     "`service/console.py`: the form's fen and the typed yuan must be ASCII digits (`[0-9]`), or 400 "
     "`invalid_amount`; the same family as the merchant API's digits.",
     "hostile", "console-refund-confirm-amount-fullwidth-digits"),
    ("The console's confirmation step did not check its key against the checkout: a refund reviewed as \"¥1.00, "
     "¥11.34 stays refundable\" refunded ¥7.00 when its hidden amount was edited, and a form left open while the "
     "merchant API refunded ¥5 still acted on the state it no longer showed (a cancel reviewed as \"no WeChat "
     "order\" likewise). And a confirmation about a checkout that does not exist was recorded before it was "
     "looked up: each one kept an audit record carrying the URL's id (6 KB each in the test).",
     "`service/console.py`: the checkout is read first (unknown: 404, nothing recorded), and a key that is not "
     "`refund_key`/`cancel_key` of the checkout as it stands, with the form's amount and reason, is refused "
     "409 `confirmation_stale` unless that key has acted already (then it is the repeat it always was).",
     "hostile", "console-refund-confirm-stale-after-another-refund"),
    ("The console's yuan parser dropped every comma: \"1,50\" (one yuan fifty to a European hand) was read as "
     "¥150.00 and \"12,3\" as ¥123.00.",
     "`service/console.parse_yuan`: a comma only between groups of three digits (1,234.50); anything else is 400 "
     "`invalid_amount` saying to write decimals with a point.",
     "hostile", "console-refund-amount-decimal-comma"),
    ("The console's webhook resend had the same two gaps: its key was not checked against the event (an edited "
     "form or one from before the last delivery attempt still resent), and a resend of an event that does not "
     "exist kept an audit record each time.",
     "`service/console.py` reads the event first (`Webhooks.get`: unknown, 404 and nothing recorded) and refuses "
     "409 `confirmation_stale` a key that is not `resend_key` of the event as it stands (unless it acted already).",
     "hostile", "console-resend-unknown-event-keeps-no-record"),
    ("The day's CSV defused a merchant_reference starting with `=` but not one starting with spaces and then `=` "
     "(`  =HYPERLINK(…)` is a valid reference): a spreadsheet that trims cells on import would run it.",
     "`handlers/console.cell` looks past leading spaces before deciding a text cell needs its `'`.",
     "hostile", "console-csv-formula-behind-spaces"),
    ("A failed webhook could be resent from the console only once with the default settings: the Resend "
     "button's key rested on the length of the event's history, which keeps the last 10 attempts, so after the "
     "resend failed again (15 attempts) the new button carried the old key and was taken for a repeat: "
     "\"nothing was done twice\", and nothing was done.",
     "`service/console.resend_key` includes the last attempt's time, which every new attempt changes.",
     "hostile", "console-resend-twice-after-history-full"),
    ("Two instances restarted together on a SQLite file of the layout before the index columns: the one that read "
     "a table's columns just before the other added them added them again (\"duplicate column name\") and refused "
     "to start (1 start in 15 of two racing on a 3,000-order file).",
     "`store/sqlite._add_columns` and `_create_index` look again under the write lock before changing the layout; "
     "what the other process did is left as it is.",
     "speed_review", "sqlite-upgrade-two-starts-at-once"),
    ("The in-place upgrade to index columns left the WAL at about the table's size for as long as the process ran "
     "(68 MB beside a 105 MB file of 200,000 orders): regular checkpoints reuse the WAL but never shrink it.",
     "An open that changed the layout ends with one `wal_checkpoint(TRUNCATE)`.",
     "speed_review", "sqlite-upgrade-wal-given-back"),
    ("Two instances started together on a SQLite file that did not exist yet: switching it into WAL answered "
     "\"database is locked\" at once to one of them (SQLite gives that switch no busy handler), which refused to "
     "start (about 1 pair in 8; seen as a flaky two-process battery case).",
     "`store/sqlite._into_wal` retries the switch for up to the busy timeout.",
     "speed_review", "sqlite-two-starts-on-a-new-file"),
]

LIMITS = [
    "After a kill -9 the leases the dead process held (webhook delivery, reconciler, a prepay slot, a token "
    "refresh: 6 s each, renewed every 2 s while the work runs) stay with it until they lapse, so that work "
    "resumes up to about 6 s after the crash (plus the restart): nothing is lost, it is late (see 'payment to "
    "webhook under kill -9 of leased passes').",
    "WeChat refuses `closeorder` within 5 minutes of an order's creation: after a cancel, an order whose "
    "prepay_id a shopper already holds stays payable at WeChat until then (the reconciler closes it at the first "
    "moment WeChat allows); a payment in that window is confirmed, refunded automatically and flagged "
    "`double_paid`, and the checkout stays closed.",
    "`checkout.orders_per_ip` counts fixed windows (a burst across a window's edge may reach twice the limit); "
    "shoppers behind one NAT, or behind a proxy missing from `server.trusted_proxies`, share one count.",
    "A payment made at WeChat whose every notify is lost is found by the reconciler on its query schedule "
    "(`reconciler.query_after_s`, then 1, 2, 4 … 30 min): late, never lost.",
    "In sandbox mode with the simulator mounted in the server process, the simulator's own order book (WeChat's "
    "memory: every order, its notifies and OAuth codes, about 3 KB per order) grows the process's RSS by design "
    "(a first 3-minute soak measured +12 MB over 3,713 orders); the soak's memory bound is therefore measured "
    "with the simulator in its own process, so the figure is the server's own.",
    "The MongoDB figures come from the in-process emulator (no MongoDB server can run here); set MONGODB_URI to run "
    "the store contract suite against a real one.",
    "Login and token lockouts count in each process: N processes behind a load balancer allow N times the guesses "
    "(the per-address and overall budgets are per process).",
    "A stolen OAuth code redeemed by another browser before its owner does wins (WeChat does not bind a code to our "
    "state); the owner gets `oauth_code_replayed` and signs in again.",
    "Per-source quotas have no overall bound: many sources together can still make `checkout.orders_per_ip` x "
    "sources new orders and `oauth.sign_ins_per_ip` x sources sign-ins per window (each one a real page load and "
    "a real call), and the client-error line budget's total (300 lines a minute) is shared by everyone, so a "
    "distributed flood can crowd out other sources' 4xx lines (they are still counted in the summary line).",
    "Server errors (5xx) are not held to the line budget: they are ours to see. During a store or WeChat "
    "outage every request that fails writes its ERROR line (about 110 bytes), so a flood at that moment writes "
    "one per request; calls to WeChat stay bounded (quotas, the token backoff).",
    "In sandbox mode the demo shop's Buy button (it needs only the XSRF cookie any visitor gets) stores a "
    "checkout per click, and the mounted simulator answers anyone (its order book grows, see above): sandbox "
    "listens on 127.0.0.1 for that reason; the README says what opening it to a phone on the LAN means.",
    "In sandbox mode the server's own calls to its mounted simulator are inbound connections too: they count "
    "towards `server.max_connections` (loopback is exempt only from the per-source share), so a very small cap "
    "(1) makes every prepay `wechat_unreachable`.",
    "Tornado reads a pipelined request only after the previous answer is written; the write timeout drops a "
    "client that stops reading, but one that reads just enough to keep its answers moving (a little within every "
    "`write_timeout_s`) holds its connection: the per-source connection share (200) is what bounds it.",
    "A notify that verifies is never rate-limited, by design: a replay of a body WeChat signed (which only someone "
    "holding one can send) costs a store lookup and a digest record (about 550 bytes) each time, until the audit "
    "retention removes it.",
]


def fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def render(entries: list[dict[str, Any]]) -> str:
    by_section: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_section.setdefault(e["section"], []).append(e)
    lookup = {(e["section"], e["case"]): e for e in entries}
    total = len(entries)
    failed = [e for e in entries if e["outcome"] != "pass"]
    newest = max((e["at"] for e in entries), default=0)
    out = [
        "# Reliability and security battery",
        "",
        "<!-- GENERATED by `python -m tests.battery.report` from the battery's results; do not edit by hand. -->",
        "",
        f"Generated from {total} recorded cases ({len(failed)} failing), last result "
        f"{dt.datetime.fromtimestamp(newest, dt.timezone.utc):%Y-%m-%d %H:%M UTC}, at commit `{git_head()}`, "
        f"on {platform.system()} with {platform.python_implementation()} {platform.python_version()}.",
        "",
        "How to reproduce:",
        "",
        "```sh",
        "make test                              # the battery's CI part runs with the suite (tests/battery/)",
        ".venv/bin/python -m pytest -m slow tests/battery   # + 200 payments under kill -9",
        ".venv/bin/python -m tests.battery.soak --minutes 10   # make soak",
        ".venv/bin/python -m tests.battery.report               # writes this file",
        "make reliability                       # all of the above in one go",
        "```",
        "",
        "## Weaknesses the battery found, and their fixes",
        "",
        "| # | Weakness | Fix | Pinned by | Outcome |",
        "|---|---|---|---|---|",
    ]
    for n, (weak, fix, section, case) in enumerate(WEAKNESSES, 1):
        entry = lookup.get((section, case))
        outcome = entry["outcome"] if entry else "not run"
        out.append(f"| {n} | {weak} | {fix} | {section}: {case} | {outcome} |")
    for key, title, intro in SECTIONS:
        cases = by_section.get(key, [])
        out += ["", f"## {title}", "", intro, ""]
        if not cases:
            out.append("_Not run in the results this report was generated from._")
            continue
        passed = sum(1 for c in cases if c["outcome"] == "pass")
        out.append(f"{passed} of {len(cases)} cases pass.")
        out.append("")
        if key == "hostile":
            out += ["| Case | Outcome | Status |", "|---|---|---|"]
            for c in cases:
                out.append(f"| `{c['case']}` | {c['outcome']} | {c['figures'].get('status', fmt(c['figures']))} |")
            continue
        for c in cases:
            out += [f"### {c['case']}", "", f"Outcome: **{c['outcome']}**", "", "| Figure | Value |", "|---|---|"]
            for name, value in c["figures"].items():
                if name == "rss_samples":
                    value = " ".join(f"{at:g}s:{mb:g}MB" for at, mb in value)
                out.append(f"| {name} | {fmt(value)} |")
            out.append("")
    out += ["", "## Known limits (measured, not fixed)", ""]
    out += [f"- {limit}" for limit in LIMITS]
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.battery.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=None, help=f"results folder (default {results_dir()})")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "RELIABILITY.md")
    args = parser.parse_args(argv)
    entries = read_all(args.results)
    if not entries:
        print("no battery results found; run the battery first", file=sys.stderr)
        return 2
    args.out.write_text(render(entries), encoding="utf-8")
    failing = sum(1 for e in entries if e["outcome"] != "pass")
    print(f"wrote {args.out} from {len(entries)} cases ({failing} failing)")
    return 0 if not failing else 1


if __name__ == "__main__":
    sys.exit(main())
