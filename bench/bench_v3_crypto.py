"""APIv3 crypto primitives: pycryptodome vs cryptography (OpenSSL), one run, same inputs.

Run: ``.venv/bin/python bench/bench_v3_crypto.py [--repeat N]``. Needs both
libraries installed. Prints microseconds per operation for each side (best
of several timed repeats with ``time.perf_counter``, so noise from other
processes can only make a side look slower) and the ratio.

What is timed, with the test-only keys of tests/wxpay/vectors/v3/keys.json:

- RSA-2048 PKCS#1 v1.5 SHA-256 **sign** of a request string-to-sign (R4, 430 bytes);
- the same **verify** with the public key (what every response and notify costs);
- AES-256-GCM **decrypt** of a notify ``resource`` (A1: 451 bytes, base64-decoded
  first, as the notify reader does) and **encrypt** of the same plaintext;
- **loading** the private key PEM and the public key PEM (done once per
  process, reported for completeness).

Both sides are first checked to produce the vector's signature and plaintext,
so the race is over equal work. A second table times the same work through
``wxpay.v3`` (Authorization for R4, a V1 response validated, the N1 notify
read into a typed event), to show what the library adds to the primitives.
"""
from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "wxpay" / "vectors" / "v3"


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best mean microseconds per call over ``repeat`` runs of ``number`` calls."""
    fn()  # warm up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    import Crypto
    import cryptography
    from Crypto.Cipher import AES
    from Crypto.Hash import SHA256
    from Crypto.PublicKey import RSA
    from Crypto.Signature import pkcs1_15
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys = _load("keys.json")
    r4 = next(v for v in _load("request-signing.json")["vectors"] if v["id"] == "R4_post_json_utf8")
    a1 = next(v for v in _load("notify-aes-gcm.json")["vectors"] if v["id"] == "A1_transaction")
    priv_pem = keys["merchant"]["private_key_pem"].encode()
    pub_pem = keys["merchant"]["public_key_pem"].encode()
    message = r4["string_to_sign"].encode("utf-8")
    signature = base64.b64decode(r4["signature"])
    apiv3_key = a1["apiv3_key"].encode()
    nonce, aad = a1["nonce"].encode(), a1["associated_data"].encode()
    ciphertext_b64 = a1["ciphertext"]
    plaintext = a1["plaintext"].encode("utf-8")

    # pycryptodome
    d_priv = RSA.import_key(priv_pem)
    d_pub = RSA.import_key(pub_pem)
    d_signer = pkcs1_15.new(d_priv)
    d_verifier = pkcs1_15.new(d_pub)

    def d_sign() -> bytes:
        return d_signer.sign(SHA256.new(message))

    def d_verify() -> None:
        d_verifier.verify(SHA256.new(message), signature)

    def d_decrypt() -> bytes:
        raw = base64.b64decode(ciphertext_b64)
        cipher = AES.new(apiv3_key, AES.MODE_GCM, nonce=nonce)
        cipher.update(aad)
        return cipher.decrypt_and_verify(raw[:-16], raw[-16:])

    def d_encrypt() -> str:
        cipher = AES.new(apiv3_key, AES.MODE_GCM, nonce=nonce)
        cipher.update(aad)
        ct, tag = cipher.encrypt_and_digest(plaintext)
        return base64.b64encode(ct + tag).decode()

    # cryptography
    c_priv = serialization.load_pem_private_key(priv_pem, password=None)
    c_pub = serialization.load_pem_public_key(pub_pem)
    pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()
    c_gcm = AESGCM(apiv3_key)

    def c_sign() -> bytes:
        return c_priv.sign(message, pkcs1v15, sha256)

    def c_verify() -> None:
        c_pub.verify(signature, message, pkcs1v15, sha256)

    def c_decrypt() -> bytes:
        return c_gcm.decrypt(nonce, base64.b64decode(ciphertext_b64), aad)

    def c_encrypt() -> str:
        return base64.b64encode(c_gcm.encrypt(nonce, plaintext, aad)).decode()

    # Same work on both sides.
    assert d_sign() == c_sign() == signature
    d_verify(), c_verify()
    assert d_decrypt() == c_decrypt() == plaintext
    assert d_encrypt() == c_encrypt() == ciphertext_b64

    rows = [
        ("RSA-2048 sign (PKCS#1 v1.5, SHA-256)", d_sign, c_sign, 200),
        ("RSA-2048 verify", d_verify, c_verify, 2000),
        ("AES-256-GCM decrypt, notify resource (451 B)", d_decrypt, c_decrypt, 5000),
        ("AES-256-GCM encrypt, same plaintext", d_encrypt, c_encrypt, 5000),
        ("load private key PEM", lambda: RSA.import_key(priv_pem),
         lambda: serialization.load_pem_private_key(priv_pem, password=None), 50),
        ("load public key PEM", lambda: RSA.import_key(pub_pem),
         lambda: serialization.load_pem_public_key(pub_pem), 2000),
    ]
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"pycryptodome {Crypto.__version__}, cryptography {cryptography.__version__}")
    print(f"{'operation':48} {'pycryptodome µs':>16} {'cryptography µs':>16} {'ratio':>7}")
    for name, d_fn, c_fn, number in rows:
        d_us = best_us(d_fn, number, args.repeat)
        c_us = best_us(c_fn, number, args.repeat)
        print(f"{name:48} {d_us:16.1f} {c_us:16.1f} {d_us / c_us:6.1f}x")
    core_rows(args.repeat)
    return 0


def core_rows(repeat: int) -> None:
    """The same work through wxpay.v3's public API."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from wxpay.v3 import (ApiV3Cipher, MerchantSigner, NotifyReader, PublicKeyVerifier, Validator,
                          load_private_key, load_public_key)

    keys = _load("keys.json")
    r4 = next(v for v in _load("request-signing.json")["vectors"] if v["id"] == "R4_post_json_utf8")
    verification = _load("response-verification.json")
    v1, n1 = verification["responses"][0], verification["notifies"][0]
    now = verification["now"]
    signer = MerchantSigner(keys["mchid"], keys["merchant"]["serial_no"],
                            load_private_key(keys["merchant"]["private_key_pem"]))
    pub = keys["wechatpay_public_key"]
    validator = Validator(PublicKeyVerifier(pub["public_key_id"], load_public_key(pub["public_key_pem"])),
                          clock=lambda: now)
    reader = NotifyReader(validator, ApiV3Cipher(keys["apiv3_key"]), keys["mchid"])
    body, v1_body, n1_body = r4["body"].encode(), v1["body"].encode(), n1["body"].encode()
    assert signer.authorization("POST", r4["path_with_query"], body, timestamp=int(r4["timestamp"]),
                                nonce=r4["nonce_str"]) == r4["authorization"]
    rows = [
        ("Authorization header (R4)", lambda: signer.authorization(
            "POST", r4["path_with_query"], body, timestamp=int(r4["timestamp"]), nonce=r4["nonce_str"]), 200),
        ("Validator.validate, response (V1)", lambda: validator.validate(v1["headers"], v1_body), 2000),
        ("NotifyReader.read, payment notify (N1)", lambda: reader.read(n1["headers"], n1_body), 2000),
    ]
    print(f"\n{'wxpay.v3 (cryptography)':48} {'µs':>16}")
    for name, fn, number in rows:
        print(f"{name:48} {best_us(fn, number, repeat):16.1f}")


if __name__ == "__main__":
    sys.exit(main())
