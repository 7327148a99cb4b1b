// End-to-end SMART scenarios against a running fhirledger, run by
// conformance/tests/smart_e2e.rs:
//
//   SMART_E2E_INPUT='{...}' node e2e.mjs SCENARIO
//
// Each scenario starts the SMART app of app.mjs (fhirclient) on loopback,
// registers it (or a backend client) with the `fhirledger` admin CLI, drives
// headless Chromium through the pages (browser.mjs), and prints ONE line of
// JSON to stdout: what the app, the browser and the backend client saw. The
// Rust test asserts on it. Any step that cannot be done (a page without the
// expected link, a token request refused) fails the script: a message and
// exit code 1.
//
// Input (JSON in SMART_E2E_INPUT), always:
//   server   {publicBase, fhirBase, issuer}
//   provider {issuer, label}              the external OpenID Connect provider
//   cli      {bin, databaseUrl, publicBase}  for `fhirledger client add`
//   chromium                               the browser's path
// and per scenario (see each function below).
//
// Scenarios: standalone (a person signs in; no picker), ehr-launch,
// picker (standalone launch of a doctor choosing a patient), backend, pages.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import smart from 'fhirclient';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

import { startApp } from './app.mjs';
import { accessibility, andWait, classify, goto, heading, launchBrowser, redeemInvitation, signInHandlers, walk } from './browser.mjs';

const input = JSON.parse(process.env.SMART_E2E_INPUT ?? '{}');
const origins = {
  serverOrigin: input.server ? new URL(input.server.publicBase).origin : null,
  providerOrigin: input.provider ? new URL(input.provider.issuer).origin : null,
  appOrigin: null,
};

function log(message) {
  process.stderr.write(`e2e.mjs: ${message}\n`);
}

// `fhirledger ARGS` on the test server's database; its JSON answer.
async function cli(args) {
  const { bin, databaseUrl, publicBase } = input.cli;
  const { stdout } = await promisify(execFile)(bin, args, {
    env: { ...process.env, FHIRLEDGER_DATABASE_URL: databaseUrl, FHIRLEDGER_BASE_URL: publicBase, FHIRLEDGER_LOG: 'warn' },
  });
  return JSON.parse(stdout);
}

// Registers the app as a public client whose redirect URI is the app's.
async function registerApp(app, scope, name = 'E2E SMART App') {
  const out = await cli(['client', 'add', '--name', name, '--kind', 'public', '--redirect-uri', app.redirectUri, '--scope', scope]);
  app.config.clientId = out.client_id;
  return out.client_id;
}

async function startRegisteredApp({ scope, clientScope, probes, name }) {
  const app = await startApp({ fhirBase: input.server.fhirBase, scope, probes });
  origins.appOrigin = app.url;
  await registerApp(app, clientScope ?? scope, name);
  return app;
}

// ---------------------------------------------------------------- backend

// The discovery document, as a client finds the token endpoint.
async function smartConfiguration() {
  const r = await fetch(`${input.server.fhirBase}/.well-known/smart-configuration`);
  if (!r.ok) throw new Error(`smart-configuration: ${r.status}`);
  return r.json();
}

// A backend service: a key pair made with jose, its public JWK Set
// registered with `fhirledger client add --kind backend --jwks-file`.
async function backendClient(scope, alg = 'ES384') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `e2e-${alg}-${randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const dir = await mkdtemp(join(tmpdir(), 'fhirledger-e2e-'));
  const file = join(dir, 'jwks.json');
  try {
    await writeFile(file, JSON.stringify({ keys: [jwk] }));
    const out = await cli(['client', 'add', '--name', `E2E backend ${alg}`, '--kind', 'backend', '--jwks-file', file, '--scope', scope]);
    return { clientId: out.client_id, privateKey, kid, alg };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// A client assertion (SMART Backend Services): iss = sub = client id,
// aud = the token URL, five minutes at most, a fresh jti.
function assertion(client, tokenUrl) {
  return new SignJWT({})
    .setProtectedHeader({ alg: client.alg, kid: client.kid, typ: 'JWT' })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(tokenUrl)
    .setIssuedAt()
    .setExpirationTime('4m')
    .setJti(randomUUID())
    .sign(client.privateKey);
}

async function tokenRequest(tokenUrl, scope, jwt) {
  const r = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: jwt,
    }),
  });
  return { status: r.status, cacheControl: r.headers.get('cache-control'), body: await r.json().catch(() => null) };
}

async function backendToken(scope, alg) {
  const config = await smartConfiguration();
  const client = await backendClient(scope, alg);
  const jwt = await assertion(client, config.token_endpoint);
  const answer = await tokenRequest(config.token_endpoint, scope, jwt);
  if (answer.status !== 200) throw new Error(`the token endpoint refused ${alg}: ${JSON.stringify(answer)}`);
  return { client, jwt, answer, tokenUrl: config.token_endpoint };
}

// fhirclient used as a plain FHIR client with a token it did not fetch.
function fhirClient(tokenResponse) {
  return smart({ headers: {}, url: '/' }, {}).client({ serverUrl: input.server.fhirBase, tokenResponse });
}

async function attempt(f) {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    return { ok: false, status: e?.status ?? e?.statusCode ?? null, message: String(e?.message ?? e) };
  }
}

// Input: patientId, scope. For ES384 and RS384 each: a key, a client, a
// token; reads with fhirclient; the same assertion a second time.
async function backend() {
  const out = {};
  for (const alg of ['ES384', 'RS384']) {
    const { client, jwt, answer, tokenUrl } = await backendToken(input.scope, alg);
    const fhir = fhirClient(answer.body);
    const patient = await attempt(async () => (await fhir.request(`Patient/${input.patientId}`)).id);
    const documents = await attempt(async () =>
      (await fhir.request(`DocumentReference?patient=${input.patientId}`, { flat: true, pageLimit: 0 })).map((d) => d.id));
    const replay = await tokenRequest(tokenUrl, input.scope, jwt);
    out[alg] = {
      clientId: client.clientId,
      token: {
        status: answer.status,
        cacheControl: answer.cacheControl,
        token_type: answer.body.token_type,
        scope: answer.body.scope,
        expires_in: answer.body.expires_in,
        has_refresh_token: 'refresh_token' in answer.body,
      },
      patient,
      documents,
      replay: { status: replay.status, error: replay.body?.error },
    };
  }
  return out;
}

// ---------------------------------------------------------------- browser

// On the approval page: what it asks (the plain words of each permission),
// then `decide` (default: Allow).
function approvalHandler(seen, decide) {
  return async (page) => {
    const boxes = page.locator('input[type="checkbox"][name="scope"]');
    const permissions = [];
    for (let i = 0; i < (await boxes.count()); i++) {
      const box = boxes.nth(i);
      const id = await box.getAttribute('id');
      permissions.push({
        scopes: await box.getAttribute('value'),
        label: (await page.locator(`label[for="${id}"]`).innerText()).trim(),
        checked: await box.isChecked(),
      });
    }
    seen.push({ heading: await heading(page), permissions });
    if (decide) return decide(page, permissions);
    return andWait(page, () => page.getByRole('button', { name: 'Allow', exact: true }).click());
  };
}

// On the picker: the patients offered, then the one with id `pick`,
// chosen by its label.
function pickerHandler(seen, pick) {
  return async (page) => {
    const choices = await pickerChoices(page);
    seen.push(choices);
    const chosen = choices.find((c) => c.id === pick);
    if (!chosen) throw new Error(`the picker does not offer Patient/${pick}: ${JSON.stringify(choices)}`);
    await page.getByLabel(chosen.label, { exact: true }).check();
    await andWait(page, () => page.getByRole('button', { name: 'Continue' }).click());
  };
}

async function pickerChoices(page) {
  const radios = page.locator('input[type="radio"][name="patient"]');
  const choices = [];
  for (let i = 0; i < (await radios.count()); i++) {
    const radio = radios.nth(i);
    const id = await radio.getAttribute('id');
    choices.push({ id: await radio.getAttribute('value'), label: (await page.locator(`label[for="${id}"]`).innerText()).trim() });
  }
  return choices;
}

// A person (input.person = {invitation, login}) activates their account,
// then in a new browser context opens `startPath` of the app and signs in
// at the provider, goes through the picker and the approval page.
async function signedInLaunch(browser, app, { person, startPath, pick, contextOptions = {} }) {
  const invitation = await redeemInvitation(browser, origins, { ...person, providerLabel: input.provider.label });
  const context = await browser.newContext(contextOptions);
  const approvals = [];
  const pickers = [];
  try {
    const page = await context.newPage();
    await goto(page, `${app.url}${startPath}`);
    const handlers = {
      ...signInHandlers({ login: person.login, providerLabel: input.provider.label }),
      approval: approvalHandler(approvals),
      picker: pickerHandler(pickers, pick),
    };
    const { kind, trail } = await walk(page, origins, handlers, ['app', 'error']);
    if (kind !== 'app') throw new Error(`the flow ended on an error page: ${await page.locator('body').innerText()}`);
    const result = await app.waitForResult(1);
    return { invitation, trail, approvals, pickers, launches: app.launches, result };
  } finally {
    await context.close();
  }
}

// Input: person {invitation, login}, scope, clientScope, probes. A
// standalone launch of someone who needs no picker (a patient).
async function standalone(browser) {
  const app = await startRegisteredApp(input);
  try {
    return await signedInLaunch(browser, app, { person: input.person, startPath: '/standalone' });
  } finally {
    await app.close();
  }
}

// Input: person {invitation, login, userId}, patientId, scope, clientScope,
// probes. An EHR integration (a backend client holding fhirledger.launch)
// creates the launch over HTTP; the EHR opens the app's launch URL with
// iss and launch.
async function ehrLaunch(browser) {
  const { answer } = await backendToken('system/Patient.rs fhirledger.launch', 'ES384');
  const r = await fetch(`${input.server.publicBase}/auth/launch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${answer.body.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ patient: input.patientId, user: input.person.userId }),
  });
  const launch = { status: r.status, body: await r.json() };
  if (r.status !== 201 && r.status !== 200) throw new Error(`POST /auth/launch: ${JSON.stringify(launch)}`);
  const app = await startRegisteredApp(input);
  try {
    const params = new URLSearchParams({ iss: input.server.fhirBase, launch: launch.body.launch });
    const out = await signedInLaunch(browser, app, { person: input.person, startPath: `/launch?${params}` });
    return { launch: { status: launch.status, expires_in: launch.body.expires_in }, ...out };
  } finally {
    await app.close();
  }
}

// Input: person (a doctor), pick (a Patient id), scope, clientScope, probes.
async function picker(browser) {
  const app = await startRegisteredApp(input);
  try {
    return await signedInLaunch(browser, app, { person: input.person, startPath: '/standalone', pick: input.pick });
  } finally {
    await app.close();
  }
}

// Input: person (a doctor), pick {id, family}, scope (asks for
// patient/Patient.rs and patient/DocumentReference.rs among others),
// untick (a scope of the approval page to untick).
//
// Everything with JavaScript off: the sign-in, picker and approval pages
// are checked (language, one h1, every control found by its label), the
// picker's search is used, a scope is unticked, then a second launch is
// denied, then a launch with an unregistered redirect URI is refused.
async function pages(browser) {
  const app = await startRegisteredApp(input);
  const person = input.person;
  const out = { checks: {} };
  const context = await browser.newContext({ javaScriptEnabled: false });
  try {
    out.invitation = await redeemInvitation(browser, origins, {
      ...person,
      providerLabel: input.provider.label,
      contextOptions: { javaScriptEnabled: false },
    });
    const page = await context.newPage();
    out.javaScriptEnabled = false;

    // 1. Sign in, search the picker, untick a scope, allow.
    await goto(page, `${app.url}/standalone`);
    const approvals = [];
    const handlers = {
      ...signInHandlers({ login: person.login, providerLabel: input.provider.label }),
      'sign-in': async (p) => {
        out.checks['sign-in'] = await accessibility(p);
        await andWait(p, () => p.getByRole('link', { name: `Sign in with ${input.provider.label}` }).click());
      },
      picker: async (p) => {
        out.checks.picker = await accessibility(p);
        out.pickerBefore = await pickerChoices(p);
        await p.getByLabel('Find a patient by name').fill(input.pick.family);
        await andWait(p, () => p.getByRole('button', { name: 'Search' }).click());
        out.pickerSearched = await pickerChoices(p);
        out.pickerQuery = new URL(p.url()).searchParams.get('q');
        await pickerHandler([], input.pick.id)(p);
      },
      approval: async (p) => {
        out.checks.approval = await accessibility(p);
        await approvalHandler(approvals, async (ap, permissions) => {
          const untick = permissions.find((x) => x.scopes.split(' ').includes(input.untick));
          if (!untick) throw new Error(`no permission for ${input.untick}: ${JSON.stringify(permissions)}`);
          await ap.getByLabel(untick.label, { exact: true }).uncheck();
          await andWait(ap, () => ap.getByRole('button', { name: 'Allow', exact: true }).click());
        })(p);
      },
    };
    out.allowed = { trail: (await walk(page, origins, handlers, ['app', 'error'])).trail };
    out.allowed.approvals = approvals;
    out.allowed.result = await app.waitForResult(1);

    // 2. Again in the same browser (still signed in): Deny.
    await goto(page, `${app.url}/standalone`);
    const denyHandlers = {
      picker: pickerHandler([], input.pick.id),
      approval: approvalHandler([], (p) => andWait(p, () => p.getByRole('button', { name: 'Deny', exact: true }).click())),
    };
    out.denied = { trail: (await walk(page, origins, denyHandlers, ['app', 'error'])).trail };
    out.denied.result = await app.waitForResult(2);
    out.denied.sentState = app.launches[1]?.state;

    // 3. A redirect URI the client did not register: an error page at the
    //    server, never a redirect to it.
    app.config.redirectPath = '/not-registered';
    const response = await goto(page, `${app.url}/standalone`);
    const url = new URL(page.url());
    out.wrongRedirect = {
      status: response?.status(),
      origin: url.origin,
      path: url.pathname,
      kind: await classify(page, origins),
      page: await accessibility(page),
      text: (await page.locator('body').innerText()).slice(0, 500),
      appRequests: app.requests.slice(),
      sentRedirectUri: new URL(app.launches.at(-1).authorizeUrl).searchParams.get('redirect_uri'),
    };
    return out;
  } finally {
    await context.close();
    await app.close();
  }
}

// ---------------------------------------------------------------- main

const SCENARIOS = {
  standalone: { browser: true, run: standalone },
  'ehr-launch': { browser: true, run: ehrLaunch },
  picker: { browser: true, run: picker },
  pages: { browser: true, run: pages },
  backend: { browser: false, run: backend },
};

async function main() {
  const name = process.argv[2];
  const scenario = SCENARIOS[name];
  if (!scenario) {
    log(`unknown scenario ${JSON.stringify(name)}; one of ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const started = Date.now();
  let browser = null;
  try {
    if (scenario.browser) browser = await launchBrowser(input.chromium);
    const result = await scenario.run(browser);
    log(`${name}: ${Date.now() - started} ms`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    if (browser) await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    log(e?.stack ?? String(e));
    process.exit(1);
  },
);
