"""Token interoperability check: tollgate's JWTs against an independent verifier.

Proves, against a running server, that the tokens tollgate issues verify with PyJWT (a standard
library that shares no code with tollgate) using only the published JWKS, and that a verifier
configured the way a site should configure one rejects the usual forgeries:

  0. the JWKS publishes public signing keys only, each of which PyJWT loads;
  1. an entitlements token (POST /v1/tokens) verifies and carries the documented claims;
  2. an article token (POST /v1/access, metered grant) verifies and carries the article claims;
  3. after a signing-key rotation the JWKS publishes the new and the old key, a token signed
     before the rotation still verifies, and new tokens carry the new kid;
  4. forgeries are rejected with a PyJWT error: alg "none", HS256 keyed with the public key,
     kids that name no key (path traversal, SQL, empty, very long, none at all), a foreign key
     behind tollgate's kid, a wrong audience and a tampered signature; the JWKS is the same
     afterwards and the genuine token still verifies;
  5. an article token stops verifying once past its exp.

Check 5 waits for a token to expire, so the server must run with a short article token
lifetime (TOLLGATE_ARTICLE_TOKEN_TTL=2s); the check fails, rather than being skipped, when the
lifetime is over 10 seconds. The server must use the default issuer and audience.

    python -m venv venv && venv/bin/pip install -r tests/interop/requirements.txt
    venv/bin/python tests/interop/verify_tokens.py http://127.0.0.1:PORT ADMIN_KEY

Prints an `ok - ...` line per check (one per forgery in 4); on the first failure prints why
and exits non-zero. It creates readers with random ids, so it can run again against the same
database, and it rotates the signing key: run it against a test server only.
"""

import hashlib
import hmac
import json
import secrets
import sys
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.utils import base64url_decode, base64url_encode

# How a site verifies: the algorithms are fixed here, never taken from the token.
ALGORITHMS = ["EdDSA", "ES256"]
AUDIENCE = "paywall"
ISSUER = "tollgate"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
# Check 5 sleeps for the token's whole lifetime; longer than this means a misconfigured run.
MAX_EXPIRY_WAIT_SECONDS = 10


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


class Api:
    """The few tollgate calls the checks need, over urllib."""

    def __init__(self, base_url, key):
        self.base_url = base_url.rstrip("/")
        self.key = key

    def call(self, method, path, body=None, auth=True, expected=(200,)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode(errors="replace")
        except urllib.error.URLError as error:
            raise CheckFailed(f"{method} {path}: {error.reason}") from error
        expect(status in expected, f"{method} {path} answered {status}: {text}")
        return json.loads(text) if text else None

    def jwks(self):
        return self.call("GET", "/.well-known/jwks.json", auth=False)

    def entitlements_token(self, reader_id):
        return self.call("POST", "/v1/tokens", {"reader_id": reader_id})

    def access(self, reader_id, article_id):
        return self.call("POST", "/v1/access", {"reader_id": reader_id, "article_id": article_id})

    def grant(self, reader_id, entitlements):
        body = {"entitlements": entitlements, "expires_at": "2099-01-01T00:00:00Z", "reason": "interop check"}
        return self.call("POST", f"/v1/readers/{reader_id}/grants", body, expected=(201,))

    def rotate(self):
        return self.call("POST", "/v1/admin/signing-keys/rotate")


def new_verifier(api):
    # A fresh client holds no cached key set, so what it accepts is what the JWKS publishes now.
    return jwt.PyJWKClient(api.base_url + "/.well-known/jwks.json", timeout=10)


def verify(verifier, token, audience=AUDIENCE):
    """Verifies as a site should: key by the header's kid from the JWKS, fixed algorithms,
    audience and issuer, and every registered claim required."""
    key = verifier.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,  # a PyJWK, which binds the key to its own algorithm
        algorithms=ALGORITHMS,
        audience=audience,
        issuer=ISSUER,
        options={"require": REQUIRED_CLAIMS},
    )


def expect_rejected(verifier, token, what, audience=AUDIENCE):
    """Returns the PyJWT error class that rejected `token`; fails if it verified or if something
    other than a PyJWT error was raised (a crash is not a rejection)."""
    try:
        verify(verifier, token, audience)
    except jwt.exceptions.PyJWTError as error:
        return type(error).__name__
    except Exception as error:
        raise CheckFailed(f"{what}: raised {type(error).__name__} ({error}), not a PyJWT error") from error
    raise CheckFailed(f"{what}: the verifier accepted it")


def ok(message):
    print(f"ok - {message}", flush=True)


def unique(prefix):
    return f"{prefix}-{secrets.token_hex(6)}"


def timestamp(rfc3339):
    return datetime.fromisoformat(rfc3339).timestamp()


def split(token):
    header, payload, signature = token.split(".")
    return json.loads(base64url_decode(header)), json.loads(base64url_decode(payload)), signature


def assemble(header, claims, sign):
    """A compact JWS from a header and claims; `sign` maps the signing input to signature bytes."""
    signing_input = b".".join(
        base64url_encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return (signing_input + b"." + base64url_encode(sign(signing_input))).decode()


def expect_common_claims(claims, reader_id, scope):
    expect(claims["iss"] == ISSUER, f"iss is {claims['iss']!r}")
    expect(claims["aud"] in (AUDIENCE, [AUDIENCE]), f"aud is {claims['aud']!r}")
    expect(claims["sub"] == reader_id, f"sub is {claims['sub']!r}, expected {reader_id!r}")
    expect(claims.get("scope") == scope, f"scope is {claims.get('scope')!r}, expected {scope!r}")
    for name in ("iat", "nbf", "exp"):
        expect(type(claims[name]) is int, f"{name} is not an integer of seconds: {claims[name]!r}")
    expect(claims["nbf"] < claims["exp"] and claims["iat"] < claims["exp"], f"bad time claims: {claims}")
    expect(isinstance(claims["jti"], str) and claims["jti"], f"jti is {claims['jti']!r}")
    ent = claims.get("ent")
    expect(isinstance(ent, list) and all(isinstance(e, str) for e in ent), f"ent is {ent!r}")


def check_jwks(api, state):
    keys = api.jwks().get("keys")
    expect(isinstance(keys, list) and keys, "the JWKS has no keys")
    for key in keys:
        expect(key.get("kid"), f"a key without kid: {key}")
        expect(key.get("alg") in ALGORITHMS, f"key {key['kid']} has alg {key.get('alg')!r}")
        expect(key.get("use") == "sig", f"key {key['kid']} has use {key.get('use')!r}")
        # "d" is the private part of an OKP or EC JWK.
        expect("d" not in key, f"key {key['kid']} publishes its private part")
        jwt.PyJWK(key)  # raises if PyJWT cannot load it (a PyJWKSet would skip it quietly)
    ok(f"the JWKS publishes {len(keys)} public signing key(s) PyJWT loads")


def check_entitlements_token(api, state):
    reader_id = unique("interop-reader")
    api.grant(reader_id, ["articles"])
    issued = api.entitlements_token(reader_id)
    token = issued["token"]
    header, _, _ = split(token)
    expect(header.get("alg") in ALGORITHMS, f"header alg is {header.get('alg')!r}")
    expect(header.get("kid"), "the header has no kid")
    claims = verify(state["verifier"], token)
    expect_common_claims(claims, reader_id, "entitlements")
    expect("articles" in claims["ent"], f"ent {claims['ent']} lacks the granted 'articles'")
    expect(
        sorted(claims["ent"]) == sorted(issued["entitlements"]),
        f"ent {claims['ent']} differs from the response's {issued['entitlements']}",
    )
    expect(
        claims["exp"] == int(timestamp(issued["expires_at"])),
        f"exp {claims['exp']} is not expires_at {issued['expires_at']}",
    )
    state.update(token=token, kid=header["kid"], alg=header["alg"], claims=claims)
    ok(
        f"entitlements token ({header['alg']}, kid {header['kid']}) verifies; lifetime {claims['exp'] - claims['iat']} s"
    )


def check_article_token(api, state):
    reader_id, article_id = unique("interop-metered"), "interop-article-1"
    answer = api.access(reader_id, article_id)
    expect(
        answer["granted"] is True and answer["reason"] == "metered",
        f"a fresh reader's first article was not a metered grant: {answer}",
    )
    expect(answer["token"], "a grant came without a token")
    claims = verify(state["verifier"], answer["token"])
    expect_common_claims(claims, reader_id, "article")
    expect(claims.get("art") == article_id, f"art is {claims.get('art')!r}, expected {article_id!r}")
    meter = claims.get("meter")
    expect(isinstance(meter, dict), f"meter is {meter!r}")
    for name in ("used", "limit", "remaining"):
        expect(
            meter.get(name) == answer["meter"][name],
            f"meter.{name} is {meter.get(name)!r} in the token, {answer['meter'][name]!r} in the response",
        )
    expect(
        meter.get("resets_at") is None or type(meter["resets_at"]) is int,
        f"meter.resets_at is {meter.get('resets_at')!r}",
    )
    ok(f"article token verifies; art {article_id}, meter {meter['used']}/{meter['limit']}")


def check_rotation(api, state):
    rotated = api.rotate()
    new_kid, old_kid = rotated["kid"], state["kid"]
    expect(new_kid != old_kid, f"rotation kept kid {old_kid}")
    expect(
        rotated.get("retired_kid") == old_kid,
        f"retired_kid is {rotated.get('retired_kid')!r}, expected {old_kid!r}",
    )
    kids = {key["kid"] for key in api.jwks()["keys"]}
    expect(
        new_kid in kids and old_kid in kids,
        f"the JWKS lists {sorted(kids)}, not both {new_kid} and {old_kid}",
    )
    state["verifier"] = new_verifier(api)
    verify(state["verifier"], state["token"])  # signed before the rotation
    issued = api.entitlements_token(state["claims"]["sub"])
    header, _, _ = split(issued["token"])
    expect(header.get("kid") == new_kid, f"a new token carries kid {header.get('kid')!r}, not {new_kid!r}")
    claims = verify(state["verifier"], issued["token"])
    expect(claims["jti"] != state["claims"]["jti"], f"two tokens share jti {claims['jti']}")
    state.update(token=issued["token"], kid=new_kid, alg=header["alg"], claims=claims)
    ok(f"after rotation the JWKS lists {old_kid} and {new_kid}; old and new tokens verify")


def check_forgeries(api, state):
    verifier, token, kid, alg = state["verifier"], state["token"], state["kid"], state["alg"]
    _, claims, signature = split(token)
    jwk = next(key for key in api.jwks()["keys"] if key["kid"] == kid)
    public_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    foreign_key = (
        ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    )

    def hs256(secret):
        # By hand: PyJWT refuses a PEM as an HMAC secret, an attacker's code would not.
        return lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest()

    def foreign(header_kid):
        return jwt.encode(claims, foreign_key, algorithm=alg, headers={"kid": header_kid})

    def foreign_without_kid():
        # PyJWT's encode sets no kid unless asked; the header carries alg and typ only.
        return jwt.encode(claims, foreign_key, algorithm=alg)

    flipped = bytes(b ^ 0xFF for b in base64url_decode(signature))
    forgeries = [
        ('alg "none"', assemble({"alg": "none", "kid": kid}, claims, lambda _: b""), AUDIENCE),
        (
            "HS256 keyed with the JWK's x",
            assemble({"alg": "HS256", "kid": kid}, claims, hs256(base64url_decode(jwk["x"]))),
            AUDIENCE,
        ),
        (
            "HS256 keyed with the public key's PEM",
            assemble({"alg": "HS256", "kid": kid}, claims, hs256(public_pem)),
            AUDIENCE,
        ),
        ("kid '../../etc/passwd'", foreign("../../etc/passwd"), AUDIENCE),
        ("kid '../../../../etc/passwd'", foreign("../../../../etc/passwd"), AUDIENCE),
        ("kid '..%2f..%2fkeys'", foreign("..%2f..%2fkeys"), AUDIENCE),
        ('kid "\' OR 1=1 --"', foreign("' OR 1=1 --"), AUDIENCE),
        ('kid "\' OR \'1\'=\'1"', foreign("' OR '1'='1"), AUDIENCE),
        ("kid '1; DROP TABLE signing_keys; --'", foreign("1; DROP TABLE signing_keys; --"), AUDIENCE),
        ("an empty kid", foreign(""), AUDIENCE),
        ("a kid of 4096 characters", foreign("k" * 4096), AUDIENCE),
        ("no kid at all", foreign_without_kid(), AUDIENCE),
        ("a foreign key behind tollgate's kid", foreign(kid), AUDIENCE),
        ("a real token for another audience", token, "another-site"),
        (
            "a real token with its signature bytes flipped",
            token.rsplit(".", 1)[0] + "." + base64url_encode(flipped).decode(),
            AUDIENCE,
        ),
    ]
    # The untampered token must pass, or the rejections below would prove nothing.
    verify(verifier, token)
    jwks_before = api.jwks()
    for what, forged, audience in forgeries:
        ok(f"rejected {what} ({expect_rejected(verifier, forged, what, audience)})")
    # A verifier looks kids up in its copy of the JWKS (refetching it on a miss); none of them
    # reaches tollgate as anything but a JWKS fetch, and nothing changed.
    expect(api.jwks() == jwks_before, "the JWKS changed while forgeries were verified")
    verify(new_verifier(api), token)
    ok("after the forgeries the JWKS is unchanged and the genuine token verifies")


def check_expiry(api, state):
    answer = api.access(unique("interop-expiry"), "interop-article-1")
    expect(answer["granted"] is True and answer["token"], f"no article token to expire: {answer}")
    claims = verify(state["verifier"], answer["token"])
    lifetime = claims["exp"] - claims["iat"]
    expect(
        lifetime <= MAX_EXPIRY_WAIT_SECONDS,
        f"the article token lives {lifetime} s; run the server with a short "
        f"TOLLGATE_ARTICLE_TOKEN_TTL (e.g. 2s) for this check",
    )
    time.sleep(max(0, claims["exp"] + 1 - time.time()))
    error = expect_rejected(state["verifier"], answer["token"], "an expired article token")
    expect(
        error == "ExpiredSignatureError",
        f"an expired article token was rejected with {error}, not ExpiredSignatureError",
    )
    ok(f"an article token living {lifetime} s verifies at once and is expired after its exp")


CHECKS = [
    check_jwks,
    check_entitlements_token,
    check_article_token,
    check_rotation,
    check_forgeries,
    check_expiry,
]


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        print("usage: verify_tokens.py BASE_URL ADMIN_KEY", file=sys.stderr)
        return 2
    api = Api(argv[1], argv[2])
    state = {"verifier": new_verifier(api)}  # what one check leaves for the next
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            check(api, state)
        except CheckFailed as failure:
            print(f"not ok - {name}: {failure}", flush=True)
            return 1
        except Exception:
            print(f"not ok - {name}: unexpected error", flush=True)
            traceback.print_exc()
            return 1
    print("all token interop checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
