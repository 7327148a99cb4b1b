// A tiny SMART app on loopback, built only on fhirclient's Node API
// (`smart(req, res, storage).authorize(...)` / `.ready()`), the way an app
// developer following fhirclient's documentation would write one. The
// end-to-end tests (e2e.mjs) start it in-process; it can also run alone
// against `fhirledger dev`:
//
//   node app.mjs --client-id ID [--iss http://127.0.0.1:8080/fhir] [--port 3000]
//                [--scope "openid fhirUser launch/patient patient/*.rs offline_access"]
//
// Register http://127.0.0.1:PORT/callback as the client's redirect URI, then
// open http://127.0.0.1:PORT/standalone (standalone launch), or
// http://127.0.0.1:PORT/launch?iss=…&launch=… (EHR launch).
//
// Routes:
//   GET /standalone   standalone launch at the configured FHIR server
//   GET /launch       EHR launch: iss and launch come in the query
//   GET /callback     (the redirect URI) fhirclient's ready(): the code is
//                     exchanged for tokens, then the app does its work
//                     (reads the patient in context, searches documents, ...)
//                     and shows the result as JSON in a <pre>.
//
// Sessions: fhirclient keeps its state in `req.session`; this app gives each
// browser an in-memory session behind an HttpOnly cookie.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import smart from 'fhirclient';

const SESSION_COOKIE = 'smart_app_session';

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(res, status, heading, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(heading)}</title></head>` +
    `<body><main><h1>${escapeHtml(heading)}</h1><pre id="result">${escapeHtml(body)}</pre></main></body></html>`);
}

// An HttpError of fhirclient (or any other failure) as plain data.
export function failure(e) {
  return { ok: false, status: e?.status ?? e?.statusCode ?? null, message: String(e?.message ?? e) };
}

// What the app does once it has a client: what a patient-facing or
// clinician-facing document viewer would do.
export async function defaultWork(client, { probes = [] } = {}) {
  const tr = client.state.tokenResponse ?? {};
  const out = {
    tokenResponse: {
      token_type: tr.token_type,
      scope: tr.scope,
      patient: tr.patient,
      need_patient_banner: tr.need_patient_banner,
      smart_style_url: tr.smart_style_url,
      expires_in: tr.expires_in,
      has_refresh_token: typeof tr.refresh_token === 'string',
      has_id_token: typeof tr.id_token === 'string',
    },
    patientId: client.patient.id,
    fhirUser: client.user.fhirUser,
    userId: client.user.id,
    userType: client.user.resourceType,
    idToken: client.getIdToken(),
  };
  if (client.patient.id) {
    try {
      const p = await client.request(`Patient/${client.patient.id}`);
      out.patient = { ok: true, resourceType: p.resourceType, id: p.id, name: p.name?.[0] };
    } catch (e) {
      out.patient = failure(e);
    }
  }
  try {
    // No patient parameter: what the token may see is all it gets.
    const docs = await client.request('DocumentReference?_count=100', { flat: true, pageLimit: 0 });
    out.documents = { ok: true, items: docs.map((d) => ({ id: d.id, subject: d.subject?.reference })) };
  } catch (e) {
    out.documents = failure(e);
  }
  try {
    const user = await client.user.read();
    out.user = { ok: true, resourceType: user.resourceType, id: user.id };
  } catch (e) {
    out.user = failure(e);
  }
  out.probes = {};
  for (const probe of probes) {
    try {
      const r = await client.request(probe.url, { flat: true, pageLimit: 0 });
      out.probes[probe.name] = Array.isArray(r)
        ? { ok: true, ids: r.map((x) => `${x.resourceType}/${x.id}`) }
        : { ok: true, ids: [`${r.resourceType}/${r.id}`] };
    } catch (e) {
      out.probes[probe.name] = failure(e);
    }
  }
  if (tr.refresh_token) {
    const before = { access: tr.access_token, refresh: tr.refresh_token };
    try {
      const state = await client.refresh();
      const after = state.tokenResponse;
      const again = await client.request(`Patient/${client.patient.id ?? ''}`.replace(/\/$/, ''));
      out.refresh = {
        ok: true,
        newAccessToken: after.access_token !== before.access,
        newRefreshToken: typeof after.refresh_token === 'string' && after.refresh_token !== before.refresh,
        scope: after.scope,
        patient: after.patient,
        readAfterRefresh: again?.resourceType ?? null,
      };
    } catch (e) {
      out.refresh = failure(e);
    }
  }
  return out;
}

// Starts the app. `config` (mutable while it runs): fhirBase (standalone
// launches), clientId, scope, redirectPath (default /callback; a test may
// point it somewhere unregistered), work(client) -> JSON, probes.
// Returns { url, redirectUri, config, results, requests, waitForResult, close }.
export async function startApp(config) {
  const sessions = new Map();
  const results = []; // one per visit of the redirect URI
  const requests = []; // "GET /path" of every request
  const waiters = [];
  const launches = []; // { state, authorizeUrl } of every authorization started

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) page(res, 500, 'App error', e?.stack ?? String(e));
    });
  });

  function session(req, res) {
    const cookie = (req.headers.cookie ?? '').split(';').map((c) => c.trim().split('='))
      .find(([k]) => k === SESSION_COOKIE);
    let id = cookie?.[1];
    if (!id || !sessions.has(id)) {
      id = randomBytes(16).toString('hex');
      sessions.set(id, {});
      res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`);
    }
    return sessions.get(id);
  }

  function record(result) {
    results.push(result);
    for (const w of waiters.splice(0)) w();
  }

  async function authorize(req, res, options) {
    // noRedirect: the app keeps the URL (and so the state it sent) before
    // sending the browser there, as fhirclient would have.
    const url = await smart(req, res).authorize({ ...options, noRedirect: true });
    launches.push({ state: new URL(url).searchParams.get('state'), authorizeUrl: url });
    res.writeHead(302, { location: url });
    res.end();
  }

  async function handle(req, res) {
    const url = new URL(req.url, base);
    requests.push(`${req.method} ${url.pathname}`);
    req.session = session(req, res);
    const redirectUri = new URL(config.redirectPath ?? '/callback', base).href;
    const common = { clientId: config.clientId, scope: config.scope, redirectUri };
    if (url.pathname === '/standalone') {
      return authorize(req, res, { ...common, iss: config.fhirBase });
    }
    if (url.pathname === '/launch') {
      // fhirclient reads iss and launch from this request's query.
      return authorize(req, res, common);
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(404).end();
      return;
    }
    if (url.pathname === new URL(redirectUri).pathname || url.pathname === '/callback') {
      const returned = Object.fromEntries(url.searchParams);
      delete returned.code;
      let client;
      try {
        client = await smart(req, res).ready();
      } catch (e) {
        const result = { ok: false, path: url.pathname, params: returned, error: failure(e) };
        record(result);
        return page(res, 400, 'App error', JSON.stringify(result, null, 2));
      }
      const work = config.work ?? ((c) => defaultWork(c, { probes: config.probes }));
      const result = { ok: true, path: url.pathname, params: returned, app: await work(client) };
      record(result);
      return page(res, 200, 'App ready', JSON.stringify(result, null, 2));
    }
    page(res, 404, 'Not found', url.pathname);
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port ?? 0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: base,
    redirectUri: new URL('/callback', base).href,
    config,
    results,
    requests,
    launches,
    // Resolves with the result of the `n`th visit of the redirect URI (1-based).
    async waitForResult(n, timeoutMs = 30000) {
      const deadline = Date.now() + timeoutMs;
      while (results.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the app got no result #${n} within ${timeoutMs} ms`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => { clearTimeout(t); resolve(); });
        });
      }
      return results[n - 1];
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// Running alone: a manual check against a running server.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      iss: { type: 'string', default: 'http://127.0.0.1:8080/fhir' },
      'client-id': { type: 'string' },
      scope: { type: 'string', default: 'openid fhirUser launch/patient patient/*.rs offline_access' },
      port: { type: 'string', default: '3000' },
    },
  });
  if (!values['client-id']) {
    process.stderr.write('usage: node app.mjs --client-id ID [--iss URL] [--scope S] [--port N]\n');
    process.exit(2);
  }
  const app = await startApp({
    fhirBase: values.iss,
    clientId: values['client-id'],
    scope: values.scope,
    port: Number(values.port),
  });
  process.stdout.write(`SMART app on ${app.url}: open ${app.url}/standalone (redirect URI ${app.redirectUri})\n`);
}
