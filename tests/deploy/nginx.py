"""Debian's nginx on loopback, running deploy/nginx-site.conf as shipped.

Only the site's ports, file paths and certificate are changed (each
replacement must match exactly as often as expected, so the file cannot
drift from what the tests run). The main configuration around it mirrors
Debian's /etc/nginx/nginx.conf where it matters (one http block, mime
types, gzip on) with every path in a private prefix. nginx runs as an
unprivileged process: as the calling user, or as ``nobody`` when the tests
run as root (CI), never as root itself.
"""
from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .tls import self_signed

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx-site.conf"
NGINX = os.environ.get("WXPAY_NGINX", "/usr/sbin/nginx")
MISSING = (
    f"Debian's nginx is not at {NGINX}. As root, `make test` installs it (.ci/ensure-deploy-tools); "
    "by hand: apt-get install nginx. Or point WXPAY_NGINX at an nginx binary."
)

MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/main-error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    gzip on;
    access_log {prefix}/main-access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/wxpay-server-site.conf;
}}
"""


LOG_LINE = re.compile(
    r'(?P<client>\S+) \[(?P<time>[^]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'(?P<duration>[\d.]+) (?P<upstream>\S+) "(?P<agent>[^"]*)"$'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_site(text: str, replacements: list[tuple[str, str, int]]) -> str:
    """Replace each ``old`` (expected ``count`` times) with ``new``; anything else unchanged."""
    for old, new, count in replacements:
        found = text.count(old)
        assert found == count, f"deploy/nginx-site.conf: {old!r} found {found} times, expected {count}"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """One nginx master with one worker, in front of ``upstream_port``."""

    upstream_port: int
    prefix: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wxpay-nginx-")))
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def cert(self) -> Path:
        return self.prefix / "cert.pem"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def site_text(self) -> str:
        p = self.prefix
        return render_site(SITE.read_text(), [
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{self.upstream_port};", 1),
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};", 1),
            ("listen 443 ssl;", f"listen 127.0.0.1:{self.https_port} ssl;", 1),
            ("/etc/letsencrypt/live/pay.example.com/fullchain.pem", str(p / "cert.pem"), 1),
            ("/etc/letsencrypt/live/pay.example.com/privkey.pem", str(p / "key.pem"), 1),
            ("/var/log/nginx/wxpay-server.access.log", str(self.access_log), 2),
            ("/var/log/nginx/wxpay-server.error.log", str(self.error_log), 1),
            ("/var/www/letsencrypt", str(p / "acme"), 2),
        ])

    def start(self) -> "Nginx":
        p = self.prefix
        for sub in ("tmp", "acme"):
            (p / sub).mkdir()
        self_signed(p)
        (p / "wxpay-server-site.conf").write_text(self.site_text())
        (p / "nginx.conf").write_text(MAIN_CONF.format(prefix=p))
        run_as: dict = {}
        if os.geteuid() == 0:  # CI runs as root: nginx itself does not
            nobody = pwd.getpwnam("nobody")
            for path in [p, *p.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        args = [NGINX, "-p", str(p), "-c", str(p / "nginx.conf"), "-e", str(p / "main-error.log"),
                "-g", "daemon off;"]
        checked = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30, **run_as)
        assert checked.returncode == 0, f"nginx -t refused the site:\n{checked.stderr}"
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            try:
                for port in (self.https_port, self.http_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx never listened")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def access_entries(self) -> list[dict[str, str]]:
        """The site's access log (its ``wxpay`` format) as records; ``upstream`` is "-"
        for a request nginx answered without the server."""
        found = []
        for line in self.access_lines():
            m = LOG_LINE.match(line)
            assert m, f"unexpected access log line: {line}"
            found.append(m.groupdict())
        return found

    async def logged(self, ready: Callable[[list[dict[str, str]]], bool]) -> list[dict[str, str]]:
        """The access log once ``ready`` says it holds what a test waits for: nginx writes a
        request's line after the answer has gone out, so a client can read first (bounded)."""
        for _ in range(200):
            entries = self.access_entries()
            if ready(entries):
                return entries
            await asyncio.sleep(0.025)
        return self.access_entries()


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)
