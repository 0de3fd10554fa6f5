#!/usr/bin/python3
"""Mint license tokens for tests with independent JOSE implementations.

Signed licenses (JWS, alg EdDSA) are produced by PyJWT, sealed tokens (JWE, dir +
A256GCM) by jwcrypto, so the agent is checked against code it does not share. Deliberately
broken tokens (raw payloads with duplicate keys, non-empty JWE encrypted keys, tampered
parts, forbidden algorithms) are assembled by hand with `cryptography`.

Subcommands (each prints one token on stdout unless noted):
  keys   --out DIR            write signing-keys.json (public JWK Set), signing-private.json,
                              secrets.json (oct keys, kid = secret version), all mode 0600
  sign   --keys DIR ...       a JWS compact token
  seal   --keys DIR ...       a JWE compact token
  secrets --out FILE          write a JWK Set of fresh oct secrets (mode 0600) for
                              `license-agent-cli secrets import`: --versions 2,3 (kid = version),
                              optional --valid-from/--valid-until/--grace-until (Unix s), --state
  batch  --keys DIR           read a JSON array of {"name":..., "cmd":"sign"|"seal", <option>: value}
                              on stdin (option names as below, with '_' for '-'; "claims" may be
                              an object) and print "name token" lines

Examples:
  mint.py keys --out /tmp/k
  mint.py sign --keys /tmp/k --claims '{"jti":"l1","iss":"acme","sub":"c1","product":"pos",
               "lic_type":"perpetual","iat":1700000000}'
  mint.py sign --keys /tmp/k --alg none --claims '{...}'
  mint.py sign --keys /tmp/k --payload '{"jti":"a","jti":"b"}'      # duplicate key, valid signature
  mint.py seal --keys /tmp/k --kid 1 --claims '{...}'
  mint.py seal --keys /tmp/k --alg RSA-OAEP --claims '{...}'
  mint.py secrets --out /tmp/k2/secrets.json --versions 2 --valid-until 1900000000
                                                    # then: mint.py seal --keys /tmp/k2 --kid 2 ...
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwe as jc_jwe
from jwcrypto import jwk as jc_jwk


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_private(path: str, obj) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.chmod(path, 0o600)


def load_json(path: str):
    with open(path) as f:
        return json.load(f)


def cmd_keys(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    public, private = [], []
    for kid in args.signing_kids.split(","):
        sk = ed25519.Ed25519PrivateKey.generate()
        d = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
        x = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        pub = {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64u(x), "use": "sig", "alg": "EdDSA"}
        public.append(pub)
        private.append(dict(pub, d=b64u(d)))
    secrets = [{"kty": "oct", "kid": v, "k": b64u(os.urandom(32)), "alg": "A256GCM"}
               for v in args.secret_versions.split(",")]
    write_private(os.path.join(args.out, "signing-keys.json"), {"keys": public})
    write_private(os.path.join(args.out, "signing-private.json"), {"keys": private})
    write_private(os.path.join(args.out, "secrets.json"), {"keys": secrets})
    print(args.out)


def cmd_secrets(args) -> None:
    keys = []
    for v in args.versions.split(","):
        entry = {"kty": "oct", "kid": v, "k": b64u(os.urandom(32)), "alg": "A256GCM"}
        for name in ("valid_from", "valid_until", "grace_until"):
            value = getattr(args, name)
            if value is not None:
                entry[name] = value
        if args.state is not None:
            entry["state"] = args.state
        keys.append(entry)
    parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    write_private(args.out, {"keys": keys})
    print(args.out)


def signing_key(args):
    """The Ed25519 private key for args.kid, or a fresh one (unknown or --foreign-key)."""
    if not args.foreign_key:
        for k in load_json(os.path.join(args.keys, "signing-private.json"))["keys"]:
            if k["kid"] == args.kid:
                return ed25519.Ed25519PrivateKey.from_private_bytes(b64u_decode(k["d"])), k
    return ed25519.Ed25519PrivateKey.generate(), None


def payload_bytes(args) -> bytes:
    if args.payload is not None:
        return args.payload.encode("utf-8")
    if args.claims is None:
        sys.exit("mint.py: give --claims JSON or --payload RAW")
    return json.dumps(json.loads(args.claims), separators=(",", ":")).encode("utf-8")


def header_with(base: dict, args) -> dict:
    hdr = dict(base)
    if args.header:
        hdr.update(json.loads(args.header))
    if args.no_kid:
        hdr.pop("kid", None)
    return hdr


def tamper_jws(token: str, how: str) -> str:
    h, p, s = token.split(".")
    if how == "payload":  # same claims plus trailing whitespace: still JSON, different bytes
        p = b64u(b64u_decode(p) + b" ")
    elif how == "signature":
        sig = bytearray(b64u_decode(s))
        sig[5] ^= 0x01
        s = b64u(bytes(sig))
    elif how == "header":
        h = b64u(b64u_decode(h) + b" ")
    return ".".join((h, p, s))


def cmd_sign(args) -> str:
    sk, jwk_entry = signing_key(args)
    alg = args.alg
    if alg == "EdDSA" and args.payload is None and args.raw_header is None:
        # The independent path: PyJWT builds and signs the token.
        extra = header_with({"kid": args.kid}, args)
        extra.pop("alg", None)
        extra.pop("typ", None)
        token = jwt.encode(json.loads(payload_bytes(args)), sk, algorithm="EdDSA", headers=extra)
    elif alg in ("none", "HS256", "RS256") and args.payload is None and args.raw_header is None:
        claims = json.loads(payload_bytes(args))
        headers = header_with({"kid": args.kid}, args)
        if alg == "none":
            token = jwt.encode(claims, None, algorithm="none", headers=headers)
        elif alg == "HS256":
            # Algorithm confusion: HMAC keyed with the Ed25519 public key bytes.
            pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            token = jwt.encode(claims, pub, algorithm="HS256", headers=headers)
        else:
            rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            token = jwt.encode(claims, rk, algorithm="RS256", headers=headers)
    else:
        # Hand-built: raw header and/or raw payload bytes, signed with Ed25519 (or HS256).
        if args.raw_header is not None:
            hdr_bytes = args.raw_header.encode("utf-8")
        else:
            hdr_bytes = json.dumps(header_with({"alg": alg, "kid": args.kid}, args),
                                   separators=(",", ":")).encode("utf-8")
        signing_input = (b64u(hdr_bytes) + "." + b64u(payload_bytes(args))).encode("ascii")
        if alg == "HS256":
            pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            sig = hmac.new(pub, signing_input, hashlib.sha256).digest()
        elif alg == "none":
            sig = b""
        else:
            sig = sk.sign(signing_input)
        token = signing_input.decode("ascii") + "." + b64u(sig)
    if args.tamper:
        token = tamper_jws(token, args.tamper)
    return token


def secret_key(args, size: int) -> bytes:
    if size == 32 and not args.foreign_key:
        for k in load_json(os.path.join(args.keys, "secrets.json"))["keys"]:
            if k["kid"] == args.kid:
                return b64u_decode(k["k"])
    return os.urandom(size)


def tamper_jwe(token: str, how: str) -> str:
    parts = token.split(".")
    index = {"header": 0, "iv": 2, "ciphertext": 3, "tag": 4}[how]
    if how == "header":  # a different encoding of the same header: the AAD changes
        parts[0] = b64u(b64u_decode(parts[0]) + b" ")
    else:
        raw = bytearray(b64u_decode(parts[index]))
        raw[0] ^= 0x01
        parts[index] = b64u(bytes(raw))
    return ".".join(parts)


def cmd_seal(args) -> str:
    kid = args.kid
    plaintext = payload_bytes(args)
    hand_built = args.payload is not None or args.encrypted_key is not None or args.raw_header is not None
    if args.alg == "dir" and args.enc == "A256GCM" and hand_built:
        if args.raw_header is not None:
            hdr_bytes = args.raw_header.encode("utf-8")
        else:
            hdr_bytes = json.dumps(header_with({"alg": "dir", "enc": "A256GCM", "kid": kid}, args),
                                   separators=(",", ":")).encode("utf-8")
        h64 = b64u(hdr_bytes)
        iv = os.urandom(12)
        sealed = AESGCM(secret_key(args, 32)).encrypt(iv, plaintext, h64.encode("ascii"))
        ct, tag = sealed[:-16], sealed[-16:]
        token = ".".join((h64, args.encrypted_key or "", b64u(iv), b64u(ct), b64u(tag)))
    else:
        # The independent path: jwcrypto builds and encrypts the token.
        header = header_with({"alg": args.alg, "enc": args.enc, "kid": kid}, args)
        if args.alg == "dir":
            size = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32}.get(args.enc, 32)
            key = jc_jwk.JWK(kty="oct", k=b64u(secret_key(args, size)))
        elif args.alg.startswith("RSA"):
            key = jc_jwk.JWK.generate(kty="RSA", size=2048)
        else:
            sys.exit("mint.py: unsupported --alg for seal: " + args.alg)
        obj = jc_jwe.JWE(plaintext, protected=json.dumps(header, separators=(",", ":")))
        obj.allowed_algs = [args.alg, args.enc]
        obj.add_recipient(key)
        token = obj.serialize(compact=True)
    if args.tamper:
        token = tamper_jwe(token, args.tamper)
    return token


def add_token_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--keys", required=True, help="directory written by 'mint.py keys'")
    p.add_argument("--kid", default="k1" if kind == "sign" else "1",
                   help="key id in the header (sign: signing kid, default k1; seal: secret version, default 1)")
    p.add_argument("--claims", help="claims as a JSON object (re-serialised compactly)")
    p.add_argument("--payload", help="raw payload bytes used verbatim (e.g. with duplicate keys)")
    p.add_argument("--header", help="JSON object merged into the protected header (e.g. '{\"crit\":[\"x\"]}')")
    p.add_argument("--raw-header", help="raw protected header bytes used verbatim")
    p.add_argument("--no-kid", action="store_true", help="omit kid from the header")
    p.add_argument("--foreign-key", action="store_true",
                   help="use a fresh random key instead of the one named by --kid")
    if kind == "sign":
        p.add_argument("--alg", default="EdDSA", choices=["EdDSA", "none", "HS256", "RS256"])
        p.add_argument("--tamper", choices=["header", "payload", "signature"])
    else:
        p.add_argument("--alg", default="dir", help="dir (default) or RSA-OAEP, RSA-OAEP-256")
        p.add_argument("--enc", default="A256GCM", help="A256GCM (default), A128GCM, ...")
        p.add_argument("--encrypted-key", help="base64url put in the (normally empty) encrypted-key part")
        p.add_argument("--tamper", choices=["header", "iv", "ciphertext", "tag"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", help="generate a key directory")
    k.add_argument("--out", required=True)
    k.add_argument("--signing-kids", default="k1", help="comma-separated signing kids (default k1)")
    k.add_argument("--secret-versions", default="1", help="comma-separated secret versions (default 1)")
    s = sub.add_parser("secrets", help="write a JWK Set of fresh secrets for an import")
    s.add_argument("--out", required=True, help="the file to write (e.g. DIR/secrets.json, so that "
                   "'seal --keys DIR' finds the secrets)")
    s.add_argument("--versions", default="1", help="comma-separated secret versions (default 1)")
    s.add_argument("--valid-from", type=int, help="Unix seconds")
    s.add_argument("--valid-until", type=int, help="Unix seconds")
    s.add_argument("--grace-until", type=int, help="Unix seconds")
    s.add_argument("--state", choices=["active", "grace", "invalidated"])
    add_token_options(sub.add_parser("sign", help="mint a signed license (JWS)"), "sign")
    add_token_options(sub.add_parser("seal", help="mint a sealed token (JWE)"), "seal")
    b = sub.add_parser("batch", help="mint many tokens from a JSON array on stdin")
    b.add_argument("--keys", required=True)
    return parser


def run_batch(parser: argparse.ArgumentParser, keys: str) -> None:
    for req in json.load(sys.stdin):
        argv = [req["cmd"], "--keys", keys]
        for name, value in req.items():
            if name in ("name", "cmd"):
                continue
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not False and value is not None:
                argv += [flag, value if isinstance(value, str) else json.dumps(value)]
        args = parser.parse_args(argv)
        token = cmd_sign(args) if args.cmd == "sign" else cmd_seal(args)
        print(req["name"], token)


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.cmd == "keys":
        cmd_keys(args)
    elif args.cmd == "secrets":
        cmd_secrets(args)
    elif args.cmd == "sign":
        print(cmd_sign(args))
    elif args.cmd == "seal":
        print(cmd_seal(args))
    else:
        run_batch(parser, args.keys)


if __name__ == "__main__":
    main()
