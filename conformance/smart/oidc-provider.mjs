// A real, external OpenID Connect provider for fhirledger's tests, built on
// `oidc-provider` (a certified OP implementation) so that the server's login
// federation is tested against somebody else's idea of the protocol, not ours.
//
//   node oidc-provider.mjs [--port PORT] [--clients JSON] [--claims-in-id-token]
//
//   --port     (or OIDC_PORT)     port on 127.0.0.1; 0 (the default) picks a free one.
//   --clients  (or OIDC_CLIENTS)  JSON array of clients, each
//              {"client_id": "...", "client_secret": "...", "redirect_uris": ["..."]}
//              plus any other oidc-provider client metadata. Without
//              client_secret the client is public (token_endpoint_auth_method
//              "none"). Default: one demo client, see DEFAULT_CLIENTS.
//   --claims-in-id-token (or OIDC_CLAIMS_IN_ID_TOKEN=1)  put email and name
//              in the id_token too, as many providers do (see below).
//
// When it listens it prints exactly one JSON line to stdout, e.g.
//   {"issuer":"http://127.0.0.1:41234","clients":["fhirledger"]}
// and nothing else there. Diagnostics go to stderr, with one line per request
// (`GET /jwks`). It exits on SIGTERM,
// SIGINT, or when its stdin is closed, so a test harness that dies cannot
// leave it behind: run it with stdin open (a pipe or a terminal).
//
// Issuer: http://127.0.0.1:PORT. PKCE (S256) is required from every client.
// Accounts: any login name, any password. The account's `sub` is the login
// name, its `email` is `{login}@example.org` with `email_verified: true`, and
// its `name` is the login name. Scopes: openid, email, profile. As the spec
// asks when an access token is issued, `email` and `name` are served by the
// userinfo endpoint (`/me`), not put in the id_token (oidc-provider's
// conformIdTokenClaims default), unless --claims-in-id-token.
//
// Login uses oidc-provider's development interactions: plain HTML forms that
// a browser without JavaScript, or an HTTP client with a cookie jar, can
// drive (the interaction's cookies are scoped to its path):
//   1. GET /auth?...            -> 303 to /interaction/{uid}
//   2. GET /interaction/{uid}   -> login form, POST to /interaction/{uid}
//        prompt=login  login={name}  password={anything}
//   3.                          -> 303 to /auth/{uid} -> 303 to /interaction/{uid2}
//   4. GET /interaction/{uid2}  -> consent form, POST to /interaction/{uid2}
//        prompt=consent
//   5.                          -> 303 to /auth/{uid2} -> 303 to redirect_uri?code=&state=&iss=

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const DEFAULT_CLIENTS = [
  {
    client_id: 'fhirledger',
    client_secret: 'fhirledger-dev-secret',
    redirect_uris: ['http://127.0.0.1:8080/auth/login/callback'],
  },
];

function fail(message) {
  process.stderr.write(`oidc-provider.mjs: ${message}\n`);
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        clients: { type: 'string' },
        'claims-in-id-token': { type: 'boolean' },
      },
    }));
  } catch (e) {
    fail(e.message);
  }
  const portText = values.port ?? process.env.OIDC_PORT ?? '0';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`invalid port ${JSON.stringify(portText)}`);
  }
  const clientsText = values.clients ?? process.env.OIDC_CLIENTS;
  let clients = DEFAULT_CLIENTS;
  if (clientsText) {
    try {
      clients = JSON.parse(clientsText);
    } catch (e) {
      fail(`--clients is not JSON: ${e.message}`);
    }
    if (!Array.isArray(clients) || clients.length === 0) {
      fail('--clients must be a non-empty JSON array');
    }
  }
  const claimsInIdToken = values['claims-in-id-token'] ?? process.env.OIDC_CLAIMS_IN_ID_TOKEN === '1';
  return { port, clients: clients.map(clientMetadata), claimsInIdToken };
}

// oidc-provider client metadata for a test client: the authorization code
// flow only; confidential (client_secret_basic) when it has a secret.
function clientMetadata(client) {
  if (typeof client?.client_id !== 'string' || !Array.isArray(client.redirect_uris)) {
    fail(`a client needs client_id and redirect_uris: ${JSON.stringify(client)}`);
  }
  return {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: client.client_secret ? 'client_secret_basic' : 'none',
    ...client,
  };
}

// A fresh signing key per process: two providers started by one test never
// accept each other's tokens.
function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' }],
  };
}

async function findAccount(_ctx, id) {
  if (typeof id !== 'string' || id === '') {
    return undefined;
  }
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.org`,
        email_verified: true,
        name: id,
      };
    },
  };
}

function configuration(clients, claimsInIdToken) {
  return {
    clients,
    conformIdTokenClaims: !claimsInIdToken,
    findAccount,
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: ['openid', 'email', 'profile'],
    pkce: { methods: ['S256'], required: () => true },
    features: {
      devInteractions: { enabled: true },
      // Not used by these tests; off so that nothing else needs configuring.
      rpInitiatedLogout: { enabled: false },
    },
  };
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function main() {
  const { port: wanted, clients, claimsInIdToken } = options();
  // The issuer contains the port, so the socket is bound before the provider
  // exists; requests are handed to it once it does.
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  let port;
  try {
    port = await listen(server, wanted);
  } catch (e) {
    fail(`cannot listen on 127.0.0.1:${wanted}: ${e.message}`);
  }
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration(clients, claimsInIdToken));
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(event, (_ctx, err) => {
      process.stderr.write(`oidc-provider.mjs: ${event}: ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}\n`);
    });
  }
  const callback = provider.callback();
  // One stderr line per request as it arrives (`GET /jwks`), before it is
  // answered: once a client has its response, the line is in the pipe, so a
  // harness can count requests exactly. No query strings: they carry codes.
  handler = (req, res) => {
    process.stderr.write(`${req.method} ${(req.url ?? '').split('?')[0]}\n`);
    callback(req, res);
  };

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`oidc-provider.mjs: stopping (${why})\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    // Whatever still holds the loop open must not keep the process alive.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('stdin closed'));
  process.stdin.on('error', () => stop('stdin error'));
  process.stdin.resume();

  process.stdout.write(`${JSON.stringify({ issuer, clients: clients.map((c) => c.client_id) })}\n`);
}

main().catch((e) => fail(e?.stack ?? String(e)));
