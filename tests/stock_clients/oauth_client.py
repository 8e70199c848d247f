"""A stock OAuth 2.0 client and a stock JWT library against the crate's
routes: authlib refreshes (RFC 6749 section 6) and revokes (RFC 7009), PyJWT
verifies an access token through the JWKS. Run by tests/stock_clients.rs,
which reads the JSON this prints.

    python3 oauth_client.py <base URL> <access token> <refresh token>
"""

import json
import sys

import jwt
from authlib.integrations.requests_client import OAuth2Session, OAuthError

base, access, refresh = sys.argv[1:4]
said = {}

# Another service verifies the access token with the public keys alone.
keys = jwt.PyJWKClient(base + "/.well-known/jwks.json")
signing_key = keys.get_signing_key_from_jwt(access)
claims = jwt.decode(access, signing_key, algorithms=["EdDSA", "ES256"], options={"verify_aud": False})
said["verified_sub"] = claims["sub"]
said["verified_alg"] = jwt.get_unverified_header(access)["alg"]

# A public client (no secret), as a mobile app is.
client = OAuth2Session(client_id="mobile-app", token={"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": 900})
token = client.refresh_token(base + "/auth/refresh", refresh_token=refresh)
said["refreshed"] = token["access_token"] != access and token["refresh_token"] != refresh
said["refreshed_access"] = token["access_token"]
said["refreshed_refresh"] = token["refresh_token"]

# The refreshed access token verifies through the JWKS too.
claims = jwt.decode(token["access_token"], keys.get_signing_key_from_jwt(token["access_token"]), algorithms=["EdDSA", "ES256"], options={"verify_aud": False})
said["refreshed_sub"] = claims["sub"]

# Revoked (RFC 7009), the refresh token then fails with the RFC 6749 error.
response = client.revoke_token(base + "/auth/revoke", token=token["refresh_token"], token_type_hint="refresh_token")
said["revoke_status"] = response.status_code
try:
    client.refresh_token(base + "/auth/refresh", refresh_token=token["refresh_token"])
    said["after_revoke"] = "refreshed"
except OAuthError as error:
    said["after_revoke"] = error.error

print(json.dumps(said))
