// A stock OAuth 2.0 client, panva's oauth4webapi, against the demo with DPoP
// (RFC 9449): it signs in (the password grant, RFC 6749 §4.3), calls a guarded
// route, refreshes, logs out and revokes, every request with a proof by its
// own key, retrying with the server's nonce when asked (§8). Prints what it
// saw as JSON for tests/stock_clients.rs.
//
//   node dpop_client.mjs http://127.0.0.1:PORT USERNAME PASSWORD

import * as oauth from 'oauth4webapi';

const [base, username, password] = process.argv.slice(2);
const insecure = { [oauth.allowInsecureRequests]: true }; // plain http on loopback
const client = { client_id: 'dpop-cli' };
const login = { issuer: base, token_endpoint: `${base}/auth/login` };
const server = { issuer: base, token_endpoint: `${base}/auth/refresh`, revocation_endpoint: `${base}/auth/revoke` };
const said = {};

// One retry when the server asks for its nonce (oauth4webapi keeps the nonce
// from the answer and puts it in the next proof).
async function withNonce(request) {
  try {
    return await request();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    said.nonce_retries = (said.nonce_retries ?? 0) + 1;
    return await request();
  }
}

async function signIn(DPoP) {
  return withNonce(async () => {
    const response = await oauth.genericTokenEndpointRequest(
      login, client, oauth.None(), 'password', { username, password }, { DPoP, ...insecure });
    return oauth.processGenericTokenEndpointResponse(login, client, response);
  });
}

async function me(DPoP, accessToken) {
  return withNonce(async () => {
    const response = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${base}/me`), undefined, undefined, { DPoP, ...insecure });
    return { status: response.status, body: await response.json() };
  });
}

// Status of a request oauth4webapi would throw for (a 401 challenge).
async function statusOf(request) {
  try {
    return (await request()).status;
  } catch (error) {
    if (error instanceof oauth.WWWAuthenticateChallengeError) return error.response.status;
    throw error;
  }
}

const keyPair = await oauth.generateKeyPair('ES256');
const DPoP = oauth.DPoP(client, keyPair);
said.thumbprint = await DPoP.calculateThumbprint();

const first = await signIn(DPoP);
said.token_type = first.token_type;
said.cnf_jkt = JSON.parse(Buffer.from(first.access_token.split('.')[1], 'base64url')).cnf?.jkt;
const seen = await me(DPoP, first.access_token);
said.me_status = seen.status;
said.sender_constrained = seen.body.sender_constrained;

// The same access token without the key: as a bearer token, and with
// another key's proofs.
said.as_bearer_status = (await fetch(`${base}/me`, { headers: { authorization: `Bearer ${first.access_token}` } })).status;
const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
said.other_key_status = await statusOf(() => withNonce(() =>
  oauth.protectedResourceRequest(first.access_token, 'GET', new URL(`${base}/me`), undefined, undefined, { DPoP: thief, ...insecure })));
// The refresh token without the key: refused.
said.other_key_refresh = await withNonce(async () => {
  const response = await oauth.refreshTokenGrantRequest(server, client, oauth.None(), first.refresh_token, { DPoP: thief, ...insecure });
  try {
    await oauth.processRefreshTokenResponse(server, client, response);
    return 'refreshed';
  } catch (error) {
    if (oauth.isDPoPNonceError(error)) throw error;
    return error.error ?? String(error);
  }
});

// The owner's refresh, then the new access token at the guarded route.
const second = await withNonce(async () => {
  const response = await oauth.refreshTokenGrantRequest(server, client, oauth.None(), first.refresh_token, { DPoP, ...insecure });
  return oauth.processRefreshTokenResponse(server, client, response);
});
said.refreshed_token_type = second.token_type;
said.refreshed_me_status = (await me(DPoP, second.access_token)).status;

// Logout with DPoP (POST /auth/logout), of a second sign-in.
const other = await signIn(DPoP);
said.logout_status = await withNonce(async () => (await oauth.protectedResourceRequest(
  other.access_token, 'POST', new URL(`${base}/auth/logout`), undefined, undefined, { DPoP, ...insecure })).status);
said.after_logout_status = await statusOf(() => me(DPoP, other.access_token));

// Revocation (RFC 7009) of the first session's refresh token.
await oauth.processRevocationResponse(
  await oauth.revocationRequest(server, client, oauth.None(), second.refresh_token, insecure));
said.after_revocation_status = await statusOf(() => me(DPoP, second.access_token));

console.log(JSON.stringify(said));
