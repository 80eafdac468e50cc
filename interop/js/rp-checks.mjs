// Relying-party checks of two libraries nobody here wrote against nsauth's
// apps: oauth4webapi with a public client (code flow with PKCE S256 and
// `none` authentication, the ID token and RFC 9207's `iss` validated by the
// library) and openid-client with a confidential one. A Go test
// (internal/interop/rpchecks_test.go) registers the apps, runs this program
// and plays the browser: it reads JSON lines on standard output.
//
//   {"open": URL}     the browser must open URL (an authorization or
//                     end-session request); the provider sends it back to
//                     CALLBACK_BASE, which this program serves
//   {"library": L, "check": NAME, "ok": BOOL, "detail": S}
//   {"done": true}
//
// Environment: ISSUER; PUBLIC_CLIENT_ID; CONF_CLIENT_ID, CONF_CLIENT_SECRET;
// CALLBACK_LISTEN (host:port) and CALLBACK_BASE (its URL: the apps'
// redirect URIs are CALLBACK_BASE/public, /conf, and /bye the confidential
// app's post-logout redirect URI); RESOURCE, an audience the public app may
// ask for. No token is ever printed.
import { createServer } from 'node:http';
import * as o from 'oauth4webapi';
import * as client from 'openid-client';
import { readFileSync } from 'node:fs';

const env = process.env;
const issuer = new URL(env.ISSUER);
const callbackBase = env.CALLBACK_BASE;
const versions = Object.fromEntries(
  ['oauth4webapi', 'openid-client'].map((p) => [
    p,
    JSON.parse(readFileSync(new URL(`./node_modules/${p}/package.json`, import.meta.url))).version,
  ]),
);

function emit(v) {
  process.stdout.write(JSON.stringify(v) + '\n');
}

// ---- the apps' redirect URIs ------------------------------------------------

const waiting = new Map(); // path -> {resolve(URL), reject(Error)}
const server = createServer((req, res) => {
  const url = new URL(req.url, callbackBase);
  const w = waiting.get(url.pathname);
  res.writeHead(w ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><title>RP</title><p id="rp-done">done</p>');
  if (w) {
    waiting.delete(url.pathname);
    w.resolve(url);
  }
});
// The browser's side answers {"stuck": PATH, "at": URL} on standard input
// when the provider kept it on a page instead of sending it back.
let stdinBuf = '';
process.stdin.on('data', (chunk) => {
  stdinBuf += chunk;
  let i;
  while ((i = stdinBuf.indexOf('\n')) >= 0) {
    const line = stdinBuf.slice(0, i);
    stdinBuf = stdinBuf.slice(i + 1);
    const m = JSON.parse(line);
    const w = waiting.get(m.stuck);
    if (w) {
      waiting.delete(m.stuck);
      w.reject(new Error(`the provider kept the browser at ${m.at} instead of sending it to ${m.stuck}`));
    }
  }
});
const listen = env.CALLBACK_LISTEN;
await new Promise((r) => server.listen(Number(listen.slice(listen.lastIndexOf(':') + 1)), listen.slice(0, listen.lastIndexOf(':')), r));

// browse asks the test's browser to open url and waits for the provider to
// send it to path.
function browse(url, path) {
  const p = new Promise((resolve, reject) => {
    waiting.set(path, { resolve, reject });
    setTimeout(() => reject(new Error(`nothing came back to ${path} within 60 s`)), 60000).unref();
  });
  emit({ open: url.toString() });
  return p;
}

// ---- checks -------------------------------------------------------------------

async function check(library, name, fn) {
  try {
    const detail = await fn();
    if (detail === false) {
      throw new Error('not as expected');
    }
    emit({ library, check: name, ok: true, detail: typeof detail === 'string' ? detail : '' });
    return true;
  } catch (err) {
    const detail = err instanceof o.ResponseBodyError || err instanceof o.AuthorizationResponseError ? `${err.name}: ${err.error} ${err.error_description ?? ''}` : String(err?.message ?? err);
    emit({ library, check: name, ok: false, detail });
    return false;
  }
}

// expect passes when cond holds, and fails the check with detail otherwise.
function expect(cond, detail) {
  if (!cond) {
    throw new Error(detail);
  }
  return true;
}

function decodePayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

function audList(aud) {
  return Array.isArray(aud) ? aud : aud === undefined ? [] : [aud];
}

const insecure = { [o.allowInsecureRequests]: true };

// ---- oauth4webapi: a public client --------------------------------------------

async function oauth4webapiChecks() {
  const L = `oauth4webapi ${versions.oauth4webapi}`;
  const c = { client_id: env.PUBLIC_CLIENT_ID, token_endpoint_auth_method: 'none' };
  const redirectURI = `${callbackBase}/public`;
  let as;
  await check(L, 'discovery', async () => {
    as = await o.processDiscoveryResponse(issuer, await o.discoveryRequest(issuer, insecure));
  });
  if (!as) return;
  await check(L, 'discovery advertises iss in authorization responses (RFC 9207) and none', () =>
    as.authorization_response_iss_parameter_supported === true && (as.token_endpoint_auth_methods_supported ?? []).includes('none'));

  const authorize = async (extra = {}, withPKCE = true) => {
    const verifier = o.generateRandomCodeVerifier();
    const state = o.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    url.search = new URLSearchParams({
      client_id: c.client_id, response_type: 'code', redirect_uri: redirectURI,
      scope: 'openid profile email offline_access', state,
      ...(withPKCE ? { code_challenge: await o.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' } : {}),
      ...extra,
    }).toString();
    const back = await browse(url, '/public');
    return { back, verifier, state };
  };

  let tokens;
  let params;
  let flow;
  await check(L, 'authorization response validated, iss included', async () => {
    flow = await authorize();
    params = o.validateAuthResponse(as, c, flow.back, flow.state);
  });
  if (params) {
    await check(L, 'code exchange with PKCE and none, ID token validated', async () => {
      const res = await o.authorizationCodeGrantRequest(as, c, o.None(), params, redirectURI, flow.verifier, insecure);
      tokens = await o.processAuthorizationCodeResponse(as, c, res, { requireIdToken: true });
    });
  }
  if (!tokens) return;
  const claims = o.getValidatedIdTokenClaims(tokens);
  await check(L, "the ID token's aud is the public client", () => expect(audList(claims.aud).join(' ') === c.client_id, `aud ${claims.aud}`));
  await check(L, 'userinfo names the same subject', async () => {
    const u = await o.processUserInfoResponse(as, c, claims.sub, await o.userInfoRequest(as, c, tokens.access_token, insecure));
    return u.sub === claims.sub;
  });
  let refreshToken = tokens.refresh_token;
  await check(L, 'refresh with none', async () => {
    if (!refreshToken) throw new Error('no refresh token for offline_access');
    const r = await o.processRefreshTokenResponse(as, c, await o.refreshTokenGrantRequest(as, c, o.None(), refreshToken, insecure));
    refreshToken = r.refresh_token ?? refreshToken;
  });
  await check(L, 'an authorization request without PKCE is refused', async () => {
    const f = await authorize({}, false);
    try {
      o.validateAuthResponse(as, c, f.back, f.state);
    } catch (err) {
      if (err instanceof o.AuthorizationResponseError) return `refused: ${err.error}`;
      throw err;
    }
    throw new Error('the provider issued a code without PKCE');
  });
  await check(L, 'an allowed resource lands in the access token aud', async () => {
    const f = await authorize({ resource: env.RESOURCE });
    const p = o.validateAuthResponse(as, c, f.back, f.state);
    const r = await o.processAuthorizationCodeResponse(as, c, await o.authorizationCodeGrantRequest(as, c, o.None(), p, redirectURI, f.verifier, insecure), { requireIdToken: true });
    const aud = audList(decodePayload(r.access_token).aud);
    return expect(aud.includes(env.RESOURCE), `aud ${aud}`);
  });
  await check(L, 'an unknown resource is refused with invalid_target', async () => {
    const f = await authorize({ resource: 'https://not-allowed.example' });
    try {
      o.validateAuthResponse(as, c, f.back, f.state);
    } catch (err) {
      if (err instanceof o.AuthorizationResponseError) return expect(err.error === 'invalid_target', `error ${err.error}`);
      throw err;
    }
    throw new Error('the provider issued a code for an unknown resource');
  });
  await check(L, 'revocation with none, then the refresh token is refused', async () => {
    await o.processRevocationResponse(await o.revocationRequest(as, c, o.None(), refreshToken, insecure));
    try {
      await o.processRefreshTokenResponse(as, c, await o.refreshTokenGrantRequest(as, c, o.None(), refreshToken, insecure));
    } catch (err) {
      if (err instanceof o.ResponseBodyError) return expect(err.error === 'invalid_grant', `error ${err.error}`);
      throw err;
    }
    throw new Error('a revoked refresh token still works');
  });
  return { as, c, accessToken: tokens.access_token };
}

// ---- openid-client: a confidential client -------------------------------------

async function openidClientChecks(publicApp) {
  const L = `openid-client ${versions['openid-client']}`;
  const redirectURI = `${callbackBase}/conf`;
  let config;
  await check(L, 'discovery', async () => {
    config = await client.discovery(issuer, env.CONF_CLIENT_ID, env.CONF_CLIENT_SECRET, undefined, { execute: [client.allowInsecureRequests] });
  });
  if (!config) return;
  let tokens;
  await check(L, 'code flow with PKCE and client_secret_basic, ID token and iss validated', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectURI, scope: 'openid profile email offline_access', state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const back = await browse(url, '/conf');
    tokens = await client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
  });
  if (!tokens) return;
  const claims = tokens.claims();
  await check(L, "the ID token's aud is the app", () => expect(audList(claims.aud).join(' ') === env.CONF_CLIENT_ID, `aud ${claims.aud}`));
  await check(L, 'userinfo', async () => (await client.fetchUserInfo(config, tokens.access_token, claims.sub)).sub === claims.sub);
  await check(L, "introspection of the app's own access token", async () => {
    const r = await client.tokenIntrospection(config, tokens.access_token);
    return expect((r.active === true && r.client_id === env.CONF_CLIENT_ID), `active ${r.active}, client_id ${r.client_id}`);
  });
  if (publicApp) {
    await check(L, "introspection of another app's token says inactive", async () => {
      const r = await client.tokenIntrospection(config, publicApp.accessToken);
      return expect(r.active === false, 'another app read it');
    });
  }
  let refreshToken = tokens.refresh_token;
  await check(L, 'refresh (client_secret_basic)', async () => {
    const r = await client.refreshTokenGrant(config, refreshToken);
    refreshToken = r.refresh_token ?? refreshToken;
  });
  await check(L, 'refresh with client_secret_post', async () => {
    const post = await client.discovery(issuer, env.CONF_CLIENT_ID, undefined, client.ClientSecretPost(env.CONF_CLIENT_SECRET), { execute: [client.allowInsecureRequests] });
    const r = await client.refreshTokenGrant(post, refreshToken);
    refreshToken = r.refresh_token ?? refreshToken;
  });
  await check(L, 'revocation, then the refresh token is refused', async () => {
    await client.tokenRevocation(config, refreshToken);
    try {
      await client.refreshTokenGrant(config, refreshToken);
    } catch (err) {
      return expect(err.error === 'invalid_grant', `error ${err.error ?? err.message}`);
    }
    throw new Error('a revoked refresh token still works');
  });
  await check(L, 'end session with id_token_hint comes back to the post-logout URI with state', async () => {
    const state = client.randomState();
    const url = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${callbackBase}/bye`, state });
    const back = await browse(url, '/bye');
    return expect(back.searchParams.get('state') === state, 'state lost');
  });
}

const publicApp = await oauth4webapiChecks().catch((err) => {
  emit({ library: `oauth4webapi ${versions.oauth4webapi}`, check: 'ran to the end', ok: false, detail: String(err) });
});
await openidClientChecks(publicApp).catch((err) => {
  emit({ library: `openid-client ${versions['openid-client']}`, check: 'ran to the end', ok: false, detail: String(err) });
});
emit({ done: true });
server.close();
process.stdin.destroy();
