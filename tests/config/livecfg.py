"""A complete, correct live configuration for the config tests, and what is public."""
from __future__ import annotations

from pathlib import Path

from config import PublicCredentials
from wxpay.simulator import demo

API_KEY = "Kq3Zt8Vw2Xy7Ab4Cd9Ef1Gh6Jk5Lm0Np"
APP_SECRET = "s3cr3tAppSecretValue0123456789ab"
COOKIE_SECRET = "Qm9yZWFsLWNvb2tpZS1zZWNyZXQtdmFsdWUtMDEyMzQ1Njc4OQ"
ADMIN_PASSWORD = "Correct-Horse-Battery-9"
MERCHANT_TOKEN = "mT0k3n-9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c"
WEBHOOK_SECRET = "wh-Secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
MINI_SECRET = "miniProgramSecret000111222333444"
MONGO_PASSWORD = "m0ng0-Pa55word"

# What the entry point hands the live check (server.public_credentials builds the same).
PUBLIC = PublicCredentials(frozenset(demo.PUBLIC_VALUES), (str(demo.CERT_PATH), str(demo.KEY_PATH)))


def write_pem_pair(folder: Path) -> tuple[Path, Path]:
    """Files that look like the merchant's certificate pair (PEM, not the demo's)."""
    cert = folder / "apiclient_cert.pem"
    key = folder / "apiclient_key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    return cert, key


def write_live_config(folder: Path, cert: Path, key: Path) -> Path:
    path = folder / "live.toml"
    path.write_text(f"""
mode = "live"
[server]
public_url = "https://pay.tea-merchant.cn"
cookie_secret = "{COOKIE_SECRET}"
trusted_proxies = ["10.0.0.5"]
[store]
mongodb_uri = "mongodb://wxpay:{MONGO_PASSWORD}@db1.example.com:27017,db2.example.com/?replicaSet=rs0"
[wechat]
appid = "wx1234567890abcdef"
app_secret = "{APP_SECRET}"
mch_id = "1230000109"
api_key = "{API_KEY}"
cert_path = "{cert}"
key_path = "{key}"
mini_program_appid = "wxfedcba0987654321"
mini_program_secret = "{MINI_SECRET}"
[merchant_api]
tokens = ["{MERCHANT_TOKEN}"]
[admin]
password = "{ADMIN_PASSWORD}"
[shop]
name = "Lu's Tea House"
[webhooks]
url = "https://shop.tea-merchant.cn/hooks"
secret = "{WEBHOOK_SECRET}"
""", encoding="utf-8")
    return path
