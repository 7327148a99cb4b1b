// A person's browser for the end-to-end tests: Debian's headless Chromium
// driven by playwright-core, walking the pages of a sign-in the way a person
// would (links and buttons found by their visible names, fields by their
// labels), and checking those pages as it goes.

import { chromium } from 'playwright-core';

// The machine's network is closed: nothing may try to reach out (updates,
// sync, QUIC probes), and host names other than loopback fail at once
// (oidc-provider's development pages @import a web font).
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

// Playwright's launch gives the browser a fresh temporary profile
// (user-data-dir), removed when it closes.
export function launchBrowser(executablePath = '/usr/bin/chromium') {
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true, timeout: 60000 });
}

// The kinds of pages a sign-in goes through.
//   provider-login, provider-consent   the external OpenID Connect provider
//   sign-in, picker, approval          fhirledger's authorization pages
//   invitation, signed-in              an invitation and its end
//   app                                back at the SMART app
//   error                              anything else on fhirledger (an error page)
export async function classify(page, { serverOrigin, providerOrigin, appOrigin }) {
  const url = new URL(page.url());
  if (url.origin === providerOrigin) {
    if (await page.locator('input[name="login"]').count()) return 'provider-login';
    if (await page.locator('input[name="prompt"][value="consent"]').count()) return 'provider-consent';
    return 'provider-other';
  }
  if (url.origin === appOrigin) return 'app';
  if (url.origin === serverOrigin) {
    const h1 = await heading(page);
    if (h1 === 'Sign in') return 'sign-in';
    if (h1 === 'Choose a patient') return 'picker';
    if (/^Allow .*\?$/.test(h1)) return 'approval';
    if (h1 === 'Activate your account') return 'invitation';
    if (h1 === 'You are signed in') return 'signed-in';
    return 'error';
  }
  return 'elsewhere';
}

export async function heading(page) {
  const h1 = page.locator('h1');
  return (await h1.count()) ? (await h1.first().innerText()).trim() : null;
}

// Runs `action` (a click that submits a form or follows a link) and waits
// until the browser shows the next document.
export async function andWait(page, action) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 30000 });
  await action();
  await navigated;
  await page.waitForLoadState('domcontentloaded');
}

export async function goto(page, url) {
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
  return response;
}

// Steps through pages: on each, `handlers[kind](page)` acts (and must
// navigate), until a page of a kind in `stopAt` is shown. Returns that kind
// and the trail of pages seen ({kind, path, h1}).
export async function walk(page, origins, handlers, stopAt, maxSteps = 16) {
  const trail = [];
  for (let i = 0; i < maxSteps; i++) {
    const kind = await classify(page, origins);
    const url = new URL(page.url());
    trail.push({ kind, path: url.pathname, h1: await heading(page) });
    if (stopAt.includes(kind)) return { kind, trail };
    const handler = handlers[kind];
    if (!handler) {
      const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 800);
      throw new Error(`no way on from a ${kind} page at ${url.origin}${url.pathname}: ${text}\ntrail: ${JSON.stringify(trail)}`);
    }
    await handler(page);
  }
  throw new Error(`still walking after ${maxSteps} pages: ${JSON.stringify(trail)}`);
}

// Handlers for the pages every sign-in at the test provider goes through:
// the provider's login form (any password) and consent, and fhirledger's
// "Sign in with <label>" link.
export function signInHandlers({ login, providerLabel }) {
  return {
    'sign-in': (page) => andWait(page, () => page.getByRole('link', { name: `Sign in with ${providerLabel}` }).click()),
    invitation: (page) => andWait(page, () => page.getByRole('link', { name: `Sign in with ${providerLabel}` }).click()),
    'provider-login': async (page) => {
      await page.locator('input[name="login"]').fill(login);
      await page.locator('input[name="password"]').fill('any password');
      await andWait(page, () => page.getByRole('button', { name: 'Sign-in' }).click());
    },
    'provider-consent': (page) => andWait(page, () => page.getByRole('button', { name: 'Continue' }).click()),
  };
}

// Opens an invitation in a fresh context and signs in at the provider as
// `login`, which links that provider account to the invited one. Returns
// the trail of pages (the last: "You are signed in").
export async function redeemInvitation(browser, origins, { invitation, login, providerLabel, contextOptions = {} }) {
  const context = await browser.newContext(contextOptions);
  try {
    const page = await context.newPage();
    await goto(page, invitation);
    const { kind, trail } = await walk(page, origins, signInHandlers({ login, providerLabel }), ['signed-in', 'error']);
    if (kind !== 'signed-in') {
      throw new Error(`redeeming ${invitation} ended on ${JSON.stringify(trail.at(-1))}: ${await page.locator('body').innerText()}`);
    }
    return trail;
  } finally {
    await context.close();
  }
}

// What a page offers people using assistive technology: its language, its
// headings, and for every visible form control whether its label finds it
// (Playwright's getByLabel, i.e. the accessible name a screen reader reads).
export async function accessibility(page) {
  const lang = await page.locator('html').getAttribute('lang');
  const h1s = await page.locator('h1').allInnerTexts();
  const controls = [];
  const inputs = page.locator('input:not([type="hidden"]), select, textarea');
  for (let i = 0; i < (await inputs.count()); i++) {
    const input = inputs.nth(i);
    const id = await input.getAttribute('id');
    const type = await input.getAttribute('type');
    const name = await input.getAttribute('name');
    const labels = id ? await page.locator(`label[for="${id}"]`).allInnerTexts() : [];
    const label = labels[0]?.trim() ?? null;
    let found = false;
    if (label) {
      const byLabel = page.getByLabel(label, { exact: true });
      found = (await byLabel.count()) === 1 && (await byLabel.getAttribute('id')) === id;
    }
    controls.push({ name, type, id, label, foundByLabel: found });
  }
  const buttons = await page.getByRole('button').allInnerTexts();
  const links = await page.getByRole('link').allInnerTexts();
  return { lang, h1s, controls, buttons: buttons.map((b) => b.trim()), links: links.map((l) => l.trim()) };
}
