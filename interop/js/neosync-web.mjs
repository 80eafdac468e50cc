// A stand-in for Neosync's web app (frontend/apps/web), as far as signing
// in and out goes: the same Auth.js (@auth/core) configuration, read from
// the same environment variables, with the same JWT session, the same jwt
// and session callbacks (refresh by POSTing client_id, client_secret,
// grant_type=refresh_token and refresh_token to the discovered token
// endpoint) and the same sign-out route (end_session_endpoint with
// id_token_hint and post_logout_redirect_uri = NEXTAUTH_URL). Next.js is
// replaced by node:http and a few lines that do what next-auth's handlers
// do: the request's origin becomes NEXTAUTH_URL's, and Auth() answers
// under /api/auth.
//
// Environment (Neosync's names):
//   AUTH_ISSUER, AUTH_EXPECTED_ISSUER, AUTH_CLIENT_ID, AUTH_CLIENT_SECRET,
//   AUTH_AUDIENCE, AUTH_SCOPE, AUTH_PROVIDER_ID, AUTH_PROVIDER_NAME,
//   AUTH_AUTHORIZE_URL, AUTH_USERINFO_URL, AUTH_TOKEN_URL, AUTH_LOGOUT_URL,
//   NEXTAUTH_URL (the app's base URL), NEXTAUTH_SECRET or AUTH_SECRET,
//   AUTH_TRUST_HOST.
// The stand-in's own:
//   NEOSYNC_STANDIN_LISTEN  host:port to listen on (default: NEXTAUTH_URL's
//                           port on 127.0.0.1)
//   NEOSYNC_STANDIN_TEST_HOOKS=1  enables /test/* (below), for the tests.
//   NEOSYNC_STANDIN_AUTH_CORE     the @auth/core package to run (below).
//
// Test hooks (never in Neosync): GET /test/state reports how many refreshes succeeded and failed (no token); POST
// /test/refresh runs the refresh POST again with the last refresh token the
// app held and answers {status, error} (no token), so that a test can see
// that sign-out made the provider refuse it.
//
// It prints one line `neosync-web listening on URL` when ready.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

// NEOSYNC_STANDIN_AUTH_CORE names another @auth/core to run (a package of
// interop/js, e.g. auth-core-0.41 for a newer next-auth's); the default is
// 0.37.2, the one Neosync's next-auth 5.0.0-beta.25 resolves to.
const authCore = process.env.NEOSYNC_STANDIN_AUTH_CORE || '@auth/core';
const { Auth, setEnvDefaults } = await import(authCore);
const authCoreVersion = JSON.parse(readFileSync(new URL(`./node_modules/${authCore}/package.json`, import.meta.url))).version;

const env = process.env;

// ---- Neosync's frontend: app/api/auth/[...nextauth]/auth.ts -------------

function oauthConfig() {
  const issuer = env.AUTH_ISSUER;
  const clientId = env.AUTH_CLIENT_ID;
  const audience = env.AUTH_AUDIENCE;
  const scope = env.AUTH_SCOPE;
  if (!issuer || !clientId || !audience || !scope) {
    return null;
  }
  return {
    id: env.AUTH_PROVIDER_ID ?? 'unknown',
    name: env.AUTH_PROVIDER_NAME ?? 'unknown',
    type: 'oidc',
    issuer,
    expectedIssuer: env.AUTH_EXPECTED_ISSUER || issuer,
    clientId,
    clientSecret: env.AUTH_CLIENT_SECRET,
    audience,
    scope,
    authorizeUrl: env.AUTH_AUTHORIZE_URL,
    userInfoUrl: env.AUTH_USERINFO_URL,
    logoutUrl: env.AUTH_LOGOUT_URL,
    tokenUrl: env.AUTH_TOKEN_URL,
  };
}

function wellKnown(issuer) {
  return `${issuer.endsWith('/') ? issuer.slice(0, -1) : issuer}/.well-known/openid-configuration`;
}

function providers() {
  const c = oauthConfig();
  if (!c) {
    return [];
  }
  return [
    {
      id: c.id,
      name: c.name,
      type: c.type,
      issuer: c.expectedIssuer,
      clientId: c.clientId,
      clientSecret: c.clientSecret ?? '',
      authorization: {
        url: c.authorizeUrl,
        params: { audience: c.audience, scope: c.scope },
      },
      userinfo: c.userInfoUrl,
      token: c.tokenUrl,
      wellKnown: wellKnown(c.issuer),
    },
  ];
}

async function openIDConfiguration(issuer) {
  const res = await fetch(wellKnown(issuer), {
    method: 'GET',
    headers: { 'Content-Type': 'application/json' },
  });
  return await res.json();
}

async function logoutURL() {
  const c = oauthConfig();
  if (!c) {
    return undefined;
  }
  if (c.logoutUrl) {
    return c.logoutUrl;
  }
  const d = await openIDConfiguration(c.issuer);
  return d.end_session_endpoint || undefined;
}

// What the tests may observe (no token leaves through it).
const observed = { refreshes: 0, refreshFailures: 0, lastRefreshError: '', lastRefreshToken: '' };

// refresh is Neosync's refresh request: a form POST with the client's id and
// secret in the body (client_secret_post) to the discovered token endpoint.
async function refresh(c, refreshToken) {
  const d = await openIDConfiguration(c.issuer);
  if (!d.token_endpoint) {
    throw new Error('unable to find token endpoint');
  }
  return await fetch(d.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: c.clientId,
      client_secret: c.clientSecret ?? '',
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
    }),
  });
}

const authConfig = {
  providers: providers(),
  session: { strategy: 'jwt' },
  callbacks: {
    async session({ session, token }) {
      session.accessToken = token.accessToken;
      session.idToken = token.idToken;
      return session;
    },
    async jwt({ token, account }) {
      if (account) {
        token.idToken = account.id_token;
        token.accessToken = account.access_token;
        token.refreshToken = account.refresh_token;
        token.expiresAt = account.expires_at;
        token.provider = account.provider;
      }
      if (token.refreshToken) {
        observed.lastRefreshToken = token.refreshToken;
      }
      if (!token.expiresAt || new Date() > new Date(token.expiresAt * 1000)) {
        if (!token.refreshToken) {
          throw new Error('session is expired, no refresh token available');
        }
        const c = oauthConfig();
        if (!c) {
          throw new Error('unable to find provider to refresh token');
        }
        const response = await refresh(c, token.refreshToken);
        const tokens = await response.json();
        if (!response.ok) {
          observed.refreshFailures++;
          observed.lastRefreshError = String(tokens.error ?? response.status);
          throw new Error(`failed to refresh token: ${observed.lastRefreshError}`);
        }
        observed.refreshes++;
        token.accessToken = tokens.access_token;
        if (tokens.refresh_token) {
          token.refreshToken = tokens.refresh_token;
          observed.lastRefreshToken = tokens.refresh_token;
        }
        if (tokens.expires_at) {
          token.expiresAt = tokens.expires_at;
        } else if (tokens.expires_in) {
          token.expiresAt = Math.floor(Date.now() / 1000) + tokens.expires_in;
        }
      }
      return token;
    },
  },
};

// ---- what next-auth (NextAuth()) adds around @auth/core -------------------

const baseURL = new URL(env.NEXTAUTH_URL ?? env.AUTH_URL ?? 'http://localhost:3000');
const base = baseURL.origin; // the app's base URL, as NEXTAUTH_URL, without a slash
setEnvDefaults({ ...env, AUTH_SECRET: env.AUTH_SECRET ?? env.NEXTAUTH_SECRET }, authConfig);
authConfig.basePath = '/api/auth';

// auth: the session as the server sees it (next-auth's auth()).
async function currentSession(cookieHeader) {
  const res = await Auth(
    new Request(`${base}/api/auth/session`, { headers: { cookie: cookieHeader ?? '' } }),
    authConfig,
  );
  const setCookies = res.headers.getSetCookie();
  const body = await res.json();
  return { session: body, setCookies };
}

async function csrf(cookieHeader) {
  const res = await Auth(new Request(`${base}/api/auth/csrf`, { headers: { cookie: cookieHeader ?? '' } }), authConfig);
  return { token: (await res.json()).csrfToken, setCookies: res.headers.getSetCookie() };
}

// ---- Neosync's app/api/auth/provider-sign-out/route.ts -------------------

async function providerSignOut(req, url) {
  const nextauthURL = env.NEXTAUTH_URL;
  try {
    const { session } = await currentSession(req.headers.cookie);
    const idToken = session?.idToken ?? url.searchParams.get('idToken');
    if (!idToken) {
      return redirect(nextauthURL);
    }
    const logout = await logoutURL();
    if (!logout) {
      throw new Error('unable to locate logout url');
    }
    const qp = new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: nextauthURL });
    return redirect(`${logout}?${qp.toString()}`);
  } catch (err) {
    console.error('unable to redirect to provider logout', String(err));
    return redirect(nextauthURL);
  }
}

// ---- pages (Neosync's UI reduced to what a test needs) --------------------

function escape(s) {
  return String(s ?? '').replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

// home shows who is signed in and the two buttons: next-auth/react's
// signIn(providerId) and signOut({callbackUrl}) post these same forms.
async function home(req) {
  const { session, setCookies } = await currentSession(req.headers.cookie);
  const token = await csrf(req.headers.cookie);
  const c = oauthConfig();
  let body;
  if (session?.user) {
    const callbackUrl = `/api/auth/provider-sign-out?idToken=${encodeURIComponent(session.idToken ?? '')}`;
    body = `<p id="signed-in">Signed in as <span id="user-name">${escape(session.user.name)}</span>
<span id="user-email">${escape(session.user.email)}</span></p>
<form method="post" action="/api/auth/signout">
<input type="hidden" name="csrfToken" value="${escape(token.token)}">
<input type="hidden" name="callbackUrl" value="${escape(callbackUrl)}">
<button id="sign-out" type="submit">Log out</button></form>`;
  } else {
    body = `<p id="signed-out">Not signed in</p>
<form method="post" action="/api/auth/signin/${escape(c?.id)}">
<input type="hidden" name="csrfToken" value="${escape(token.token)}">
<input type="hidden" name="callbackUrl" value="${escape(base + '/')}">
<button id="sign-in" type="submit">Sign in with ${escape(c?.name)}</button></form>`;
  }
  return new Response(`<!doctype html><html><head><title>Neosync (stand-in)</title></head><body>${body}</body></html>`, {
    headers: [['content-type', 'text/html; charset=utf-8'], ...[...setCookies, ...token.setCookies].map((v) => ['set-cookie', v])],
  });
}

function redirect(location) {
  return new Response(null, { status: 302, headers: { location } });
}

function json(v, status = 200) {
  return new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
}

async function testHook(req, url) {
  if (url.pathname === '/test/state' && req.method === 'GET') {
    const { refreshes, refreshFailures, lastRefreshError } = observed;
    return json({ refreshes, refreshFailures, lastRefreshError, holdsRefreshToken: observed.lastRefreshToken !== '' });
  }
  if (url.pathname === '/test/refresh' && req.method === 'POST') {
    const res = await refresh(oauthConfig(), observed.lastRefreshToken);
    const body = await res.json().catch(() => ({}));
    return json({ status: res.status, error: body.error ?? '' });
  }
  return new Response('not found', { status: 404 });
}

// ---- node:http -------------------------------------------------------------

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function handle(req) {
  // As next-auth does: the request as if it came to NEXTAUTH_URL.
  const url = new URL(req.url, base);
  if (url.pathname === '/') {
    return await home(req);
  }
  if (url.pathname === '/api/auth/provider-sign-out') {
    return await providerSignOut(req, url);
  }
  if (url.pathname.startsWith('/api/auth/')) {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) {
        headers.set(k, Array.isArray(v) ? v.join(', ') : v);
      }
    }
    const init = { method: req.method, headers };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      init.body = await readBody(req);
    }
    return await Auth(new Request(url, init), authConfig);
  }
  if (env.NEOSYNC_STANDIN_TEST_HOOKS === '1' && url.pathname.startsWith('/test/')) {
    return await testHook(req, url);
  }
  return new Response('not found', { status: 404 });
}

const server = createServer(async (req, res) => {
  let response;
  try {
    response = await handle(req);
  } catch (err) {
    console.error('request failed', req.method, req.url?.split('?')[0], String(err));
    response = new Response('internal error', { status: 500 });
  }
  const headers = {};
  response.headers.forEach((v, k) => {
    if (k !== 'set-cookie') {
      headers[k] = v;
    }
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) {
    headers['set-cookie'] = cookies;
  }
  res.writeHead(response.status, headers);
  res.end(Buffer.from(await response.arrayBuffer()));
});

const listen = env.NEOSYNC_STANDIN_LISTEN ?? `127.0.0.1:${baseURL.port || 80}`;
const colon = listen.lastIndexOf(':');
server.listen(Number(listen.slice(colon + 1)), listen.slice(0, colon), () => {
  console.log(`neosync-web listening on ${base} with @auth/core ${authCoreVersion}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
