// The portal (/portal) in a person's browser, run by conformance/tests/portal.rs:
//
//   SMART_E2E_INPUT='{...}' node portal.mjs SCENARIO
//
// Like e2e.mjs: headless Chromium (browser.mjs), people signing in at the
// external OpenID Connect provider, ONE line of JSON on stdout with what the
// browser saw, which the Rust test asserts on; any step that cannot be done
// fails the script.
//
// Input (SMART_E2E_INPUT): server, provider, cli, chromium as for e2e.mjs,
// plus `artifacts` (a directory for screenshots) and per scenario (below).
//
// Scenarios: sign-in-and-out, share-and-revoke, administration, upload, live,
// patients-pages.

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { andWait, classify, goto, heading, launchBrowser, redeemInvitation, signInHandlers, walk } from './browser.mjs';

const input = JSON.parse(process.env.SMART_E2E_INPUT ?? '{}');
const origins = {
  serverOrigin: input.server ? new URL(input.server.publicBase).origin : null,
  providerOrigin: input.provider ? new URL(input.provider.issuer).origin : null,
  appOrigin: null,
};
const portalUrl = input.server ? `${input.server.publicBase}/portal` : null;

function log(message) {
  process.stderr.write(`portal.mjs: ${message}\n`);
}

// Pages of the portal are their own kind; the rest as browser.mjs tells them.
async function kindOf(page) {
  const url = new URL(page.url());
  if (url.origin === origins.serverOrigin && url.pathname.startsWith('/portal')) return 'portal';
  return classify(page, origins);
}

// Walks from wherever the page is until it shows a portal page (or a page
// of a kind in `stopAt`), signing in at the provider as `login` on the way.
async function walkToPortal(page, login, stopAt = []) {
  const handlers = signInHandlers({ login, providerLabel: input.provider.label });
  const trail = [];
  for (let i = 0; i < 16; i++) {
    const kind = await kindOf(page);
    trail.push({ kind, path: new URL(page.url()).pathname, h1: await heading(page) });
    if (kind === 'portal' || stopAt.includes(kind)) return { kind, trail };
    if (!handlers[kind]) {
      const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 800);
      throw new Error(`no way on from a ${kind} page at ${page.url()}: ${text}\ntrail: ${JSON.stringify(trail)}`);
    }
    await handlers[kind](page);
  }
  throw new Error(`still walking after 16 pages: ${JSON.stringify(trail)}`);
}

// axe-core's WCAG 2.1 A and AA rules on the page as shown; the violations
// of serious or critical impact ({id, impact, help, targets}). axe runs
// through the DevTools protocol, which the pages' Content-Security-Policy
// does not govern (the policy itself allows no inline script).
const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
async function axe(page) {
  await page.evaluate(await axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
}

// What a page shows, for the test: path, heading, the header's person, the
// tables (caption and rows of cell texts), and the accessibility check.
async function look(page, name, { axe: check = true } = {}) {
  const url = new URL(page.url());
  const tables = [];
  const t = page.locator('table');
  for (let i = 0; i < (await t.count()); i++) {
    const table = t.nth(i);
    const caption = (await table.locator('caption').allTextContents())[0]?.trim() ?? null;
    const rows = [];
    const r = table.locator('tbody tr');
    for (let j = 0; j < (await r.count()); j++) {
      rows.push((await r.nth(j).locator('td').allInnerTexts()).map((c) => c.trim()));
    }
    tables.push({ caption, rows });
  }
  if (input.artifacts) {
    await mkdir(input.artifacts, { recursive: true });
    await page.screenshot({ path: join(input.artifacts, `${name}.png`), fullPage: true });
  }
  return {
    path: url.pathname,
    h1: await heading(page),
    person: (await page.locator('header .who').allInnerTexts())[0]?.replace(/\s+/g, ' ').trim() ?? null,
    tables,
    // axe runs in the page: not where JavaScript is off (those pages are
    // checked with it on in the other scenarios).
    seriousViolations: check ? await axe(page) : null,
  };
}

// ------------------------------------------------------- sign-in-and-out
//
// Input: person {invitation, login}.
// A person redeems their invitation, opens /portal, signs in (no approval
// page, no picker), sees their dashboard twice (the second time with the
// first visit's reads in their access log), then: a forged sign-out form
// (no CSRF token) is refused and changes nothing; the real sign-out ends
// the session; /portal then asks them to sign in again. Reports the
// session's access token (the test checks it is revoked).
async function signInAndOut(browser) {
  const { person } = input;
  await redeemInvitation(browser, origins, { invitation: person.invitation, login: person.login, providerLabel: input.provider.label });
  // A person in Tokyo (no daylight saving time): the portal shows their times.
  const context = await browser.newContext({ timezoneId: 'Asia/Tokyo', locale: 'en-US' });
  try {
    const page = await context.newPage();
    await goto(page, portalUrl);
    const signIn = await walkToPortal(page, person.login);
    const first = await look(page, 'dashboard-first');
    await andWait(page, () => page.reload());
    const second = await look(page, 'dashboard');
    await andWait(page, () => page.getByRole('link', { name: 'Your whole access log' }).click());
    const log = await look(page, 'access-log');
    await goto(page, portalUrl);
    await andWait(page, () => page.getByRole('link', { name: 'All your documents' }).click());
    const documents = await look(page, 'documents');
    await andWait(page, () => page.getByRole('link', { name: 'Older documents' }).click());
    const olderDocuments = await look(page, 'documents-older', { axe: false });
    const olderDocumentsHasOlder = (await page.getByRole('link', { name: 'Older documents' }).count()) > 0;
    await goto(page, `${portalUrl}/sharing/new?q=a`);
    const shareForm = await look(page, 'share-form');
    await goto(page, portalUrl);
    const cookies = await context.cookies(portalUrl);
    const session = cookies.find((c) => c.name === 'fhirledger_portal');
    const sessionCookie = session ? { httpOnly: session.httpOnly, sameSite: session.sameSite, path: session.path } : null;

    // A form another site could post: the session cookie, no CSRF token.
    const forged = await page.request.post(`${portalUrl}/sign-out`, { form: { csrf: 'forged' }, maxRedirects: 0 });
    const forgedAnswer = { status: forged.status(), text: (await forged.text()).includes('This form has expired') };
    await andWait(page, () => page.reload());
    const afterForged = await heading(page);

    const csp = (await page.request.get(portalUrl, { maxRedirects: 0 })).headers()['content-security-policy'] ?? null;

    await andWait(page, () => page.getByRole('button', { name: 'Sign out' }).click());
    await page.waitForURL((u) => u.pathname === '/portal/signed-out', { timeout: 30000 });
    const signedOut = { path: new URL(page.url()).pathname, h1: await heading(page) };

    // Back to the portal: the sign-in session is over too, so the person
    // must sign in again (the provider's own session does not matter here:
    // the walk stops at fhirledger's sign-in page).
    await goto(page, portalUrl);
    const again = await walkToPortal(page, person.login, ['sign-in']);

    // The session cookie put back after sign-out (its token is revoked, as
    // an expired one is invalid): a form is not acted on, a page asks to
    // sign in again.
    // (Each answer also removes the cookie, so it is put back for each.)
    await context.addCookies([session]);
    const stalePost = await page.request.post(`${portalUrl}/sharing`, { form: { csrf: 'x', with: 'Organization/x', what: 'all', until: '2099-01-01' }, maxRedirects: 0 });
    const staleForm = { status: stalePost.status(), ended: (await stalePost.text()).includes('Your session has ended') };
    await context.addCookies([session]);
    const staleGet = await page.request.get(portalUrl, { maxRedirects: 0 });
    const stalePage = { status: staleGet.status(), location: staleGet.headers()['location'] ?? null };
    return {
      signIn: signIn.trail,
      first,
      second,
      log,
      documents,
      olderDocuments,
      olderDocumentsHasOlder,
      shareForm,
      sessionCookie,
      accessToken: session?.value ?? null,
      forgedAnswer,
      afterForged,
      csp,
      signedOut,
      again: { kind: again.kind, trail: again.trail },
      staleForm,
      stalePage,
    };
  } finally {
    await context.close();
  }
}

// ------------------------------------------------------- share-and-revoke
//
// Input: patient, doctor ({invitation, login}), doctorFamily (to find the
// doctor by), patientId, shared {id, title} (a progress note), kept {id,
// title} (a lab report), documentText (the shared note's content).
// The README's demo path: the patient shares their progress notes with a
// doctor of another hospital; the doctor sees that document (and not the
// other) and opens it; the patient sees the doctor's reads in their access
// log; the patient revokes; the doctor no longer sees it.
async function shareAndRevoke(browser) {
  const { patient, doctor } = input;
  for (const person of [patient, doctor]) {
    await redeemInvitation(browser, origins, { invitation: person.invitation, login: person.login, providerLabel: input.provider.label });
  }
  // The patient grants and revokes with JavaScript off: plain forms.
  const patientContext = await browser.newContext({ javaScriptEnabled: false });
  const doctorContext = await browser.newContext();
  try {
    const p = await patientContext.newPage();
    await goto(p, portalUrl);
    await walkToPortal(p, patient.login);

    // Share the progress notes with the doctor, found by name.
    await andWait(p, () => p.getByRole('link', { name: 'Share your documents' }).click());
    await p.getByLabel('Find a doctor or hospital of the group by name').fill(input.doctorFamily);
    await andWait(p, () => p.getByRole('button', { name: 'Search' }).click());
    const shareForm = await look(p, 'patient-share-form', { axe: false });
    await p.getByRole('radio', { name: new RegExp(input.doctorFamily) }).first().check();
    await p.getByRole('radio', { name: 'Documents of these kinds:' }).check();
    await p.getByRole('checkbox', { name: 'Progress note' }).check();
    await andWait(p, () => p.getByRole('button', { name: 'Share' }).click());
    const notice = (await p.locator('.notice').allInnerTexts())[0] ?? null;
    const afterShare = await look(p, 'patient-dashboard-shared', { axe: false });

    // The doctor finds the patient and the shared document, and opens it.
    const d = await doctorContext.newPage();
    await goto(d, portalUrl);
    await walkToPortal(d, doctor.login);
    const doctorDashboard = await look(d, 'doctor-dashboard');
    await andWait(d, () => d.getByRole('link', { name: new RegExp(input.patientFamily) }).click());
    const patientPage = await look(d, 'doctor-patient');
    await andWait(d, () => d.getByRole('link', { name: input.shared.title }).click());
    const documentPage = await look(d, 'doctor-document');
    const view = await d.request.get(`${portalUrl}/documents/${input.shared.id}/content`);
    const content = { status: view.status(), type: view.headers()['content-type'], text: await view.text() };
    const kept = await d.request.get(`${portalUrl}/documents/${input.kept.id}`);
    const keptAnswer = { status: kept.status(), notFound: (await kept.text()).includes('Not found') };

    // The patient sees the doctor's reads, then revokes the share.
    await andWait(p, () => p.reload());
    const withLog = await look(p, 'patient-dashboard-log', { axe: false });
    const revokeButton = p.getByRole('button', { name: new RegExp(`Revoke sharing with .*${input.doctorFamily}`) });
    const revokeForm = revokeButton.locator('xpath=ancestor::form');
    const revokeAction = new URL(await revokeForm.getAttribute('action'), p.url()).toString();
    const revokeFields = {};
    for (const field of await revokeForm.locator('input[type=hidden]').all()) {
      revokeFields[await field.getAttribute('name')] = await field.getAttribute('value');
    }
    await andWait(p, () => revokeButton.click());
    const revokedNotice = (await p.locator('.notice').allInnerTexts())[0] ?? null;
    // The same form sent again, as from a second window still showing the share.
    const twice = await p.request.post(revokeAction, { form: revokeFields, maxRedirects: 0 });
    const revokedTwice = { status: twice.status(), text: await twice.text() };
    const afterRevoke = await look(p, 'patient-dashboard-revoked', { axe: false });

    // The doctor no longer sees it.
    const again = await d.request.get(`${portalUrl}/documents/${input.shared.id}`);
    const againAnswer = { status: again.status(), notFound: (await again.text()).includes('Not found') };
    await andWait(d, () => d.goto(portalUrl));
    const doctorAfter = await look(d, 'doctor-dashboard-revoked');

    // In an emergency the doctor opens the record anyway, with a reason;
    // the patient sees it, with the reason, in their log.
    await goto(d, `${portalUrl}/patients/${input.patientId}`);
    const noAccess = await look(d, 'doctor-no-access');
    await d.getByLabel('Why (required)').fill(input.emergencyReason);
    await andWait(d, () => d.getByRole('button', { name: 'Open the record in an emergency' }).click());
    const emergencyPage = await look(d, 'doctor-emergency');
    const emergencyNotice = (await d.locator('.notice').allInnerTexts())[0] ?? null;
    await goto(p, `${portalUrl}/access-log`);
    const patientLog = await look(p, 'patient-access-log', { axe: false });

    // The patient's hospital's compliance officer finds these accesses and
    // exports them.
    await redeemInvitation(browser, origins, { invitation: input.officer.invitation, login: input.officer.login, providerLabel: input.provider.label });
    const officerContext = await browser.newContext();
    let trail;
    let filtered;
    let exported;
    let proof;
    try {
      const o = await officerContext.newPage();
      await goto(o, portalUrl);
      await walkToPortal(o, input.officer.login);
      trail = await look(o, 'officer-dashboard');
      await o.getByLabel('Patient (record id)').fill(input.patientId);
      await o.getByLabel('Person (name)').fill(input.doctorFamily);
      await o.getByLabel('Action').selectOption('R');
      await andWait(o, () => o.getByRole('button', { name: 'Search' }).click());
      filtered = await look(o, 'officer-trail-filtered');
      const href = await o.getByRole('link', { name: 'Export these events (NDJSON)' }).getAttribute('href');
      const answer = await o.request.get(new URL(href, o.url()).toString());
      const lines = (await answer.text()).split('\n').filter((l) => l.length > 0);
      exported = {
        status: answer.status(),
        type: answer.headers()['content-type'],
        events: lines.map((l) => JSON.parse(l)).map((e) => ({ id: e.id, action: e.action, who: (e.agent ?? []).find((a) => a.requestor)?.who?.display ?? null })),
      };
      // One click proves an entry once its checkpoint is on chain (the
      // server anchors every second): the trail is looked at again, a
      // little later each time, until an entry is marked.
      const verified = o.getByRole('link', { name: 'Verified on chain' }).first();
      const anchoredBy = Date.now() + 30000;
      for (let wait = 250; !(await verified.isVisible()); wait = Math.min(wait * 2, 2000)) {
        if (Date.now() > anchoredBy) throw new Error('no entry of the trail was anchored within 30 s');
        await o.waitForTimeout(wait);
        await andWait(o, () => o.reload());
      }
      await andWait(o, () => verified.click());
      proof = {
        page: await look(o, 'officer-proof'),
        notice: (await o.locator('.notice').allInnerTexts())[0] ?? null,
        facts: Object.fromEntries(
          await o.locator('dl.facts dt').evaluateAll((dts) => dts.map((dt) => [dt.textContent.trim(), dt.nextElementSibling?.textContent.trim() ?? null])),
        ),
      };
    } finally {
      await officerContext.close();
    }
    return {
      trail,
      filtered,
      exported,
      proof,
      noAccess,
      emergencyPage,
      emergencyNotice,
      revokedTwice,
      patientLog, shareForm, notice, afterShare, doctorDashboard, patientPage, documentPage, content, keptAnswer, withLog, revokedNotice, afterRevoke, againAnswer, doctorAfter };
  } finally {
    await patientContext.close();
    await doctorContext.close();
  }
}

// --------------------------------------------------------- administration
//
// Input: admin {invitation, login} (a solution admin), hospitalName,
// hospitalAdminEmail, doctor {given, family, email}.
// The solution admin onboards a hospital and assigns it an admin; that
// admin activates their invitation, onboards a doctor, who activates theirs
// and signs in; the hospital admin removes the doctor, whose session ends;
// the solution admin deactivates the hospital, whose admin's session ends.
async function administration(browser) {
  const { admin } = input;
  await redeemInvitation(browser, origins, { invitation: admin.invitation, login: admin.login, providerLabel: input.provider.label });
  const contexts = [];
  const newContext = async () => {
    const c = await browser.newContext();
    contexts.push(c);
    return c.newPage();
  };
  try {
    const s = await newContext();
    await goto(s, portalUrl);
    await walkToPortal(s, admin.login);
    const solution = await look(s, 'solution-admin');
    await s.getByLabel("The hospital's name").fill(input.hospitalName);
    await andWait(s, () => s.getByRole('button', { name: 'Onboard the hospital' }).click());
    const onboarded = await look(s, 'solution-admin-hospital');
    await s.getByLabel('Their email', { exact: true }).fill(input.hospitalAdminEmail);
    await s.getByLabel('Hospital', { exact: true }).selectOption({ label: input.hospitalName });
    await andWait(s, () => s.getByRole('button', { name: 'Send an invitation' }).click());
    const adminInvitation = await s.getByLabel('Invitation link').inputValue();

    // The hospital admin activates their account and onboards a doctor.
    const hospitalAdminLogin = `hospital-admin-${Date.now()}`;
    await redeemInvitation(browser, origins, { invitation: adminInvitation, login: hospitalAdminLogin, providerLabel: input.provider.label });
    const h = await newContext();
    await goto(h, portalUrl);
    await walkToPortal(h, hospitalAdminLogin);
    const hospital = await look(h, 'hospital-admin');
    await goto(h, `${portalUrl}/patients/${input.otherPatientId}`);
    const otherHospital = { h1: await heading(h), text: (await h.locator('main').innerText()).slice(0, 300) };
    await goto(h, portalUrl);
    await h.getByRole('radio', { name: 'A doctor' }).check();
    await h.getByLabel('Given name').fill(input.doctor.given);
    await h.getByLabel('Family name').fill(input.doctor.family);
    await h.getByLabel('Their email').fill(input.doctor.email);
    await andWait(h, () => h.getByRole('button', { name: 'Onboard and send an invitation' }).click());
    const doctorInvitation = await h.getByLabel('Invitation link').inputValue();

    // The doctor activates theirs and signs in.
    const doctorLogin = `doctor-${Date.now()}`;
    await redeemInvitation(browser, origins, { invitation: doctorInvitation, login: doctorLogin, providerLabel: input.provider.label });
    const d = await newContext();
    await goto(d, portalUrl);
    await walkToPortal(d, doctorLogin);
    const doctor = await look(d, 'new-doctor');

    // Removed: the doctor's session ends at once.
    await goto(h, portalUrl);
    const withDoctor = await look(h, 'hospital-admin-doctor');
    await andWait(h, () => h.getByRole('button', { name: `Remove ${input.doctor.given} ${input.doctor.family}` }).click());
    const removedNotice = (await h.locator('.notice').allInnerTexts())[0] ?? null;
    await goto(d, portalUrl);
    const doctorAfter = await walkToPortal(d, doctorLogin, ['sign-in', 'error']);

    // Deactivated: the hospital admin's session ends at once.
    await goto(s, portalUrl);
    await andWait(s, () => s.getByRole('button', { name: `Deactivate ${input.hospitalName}` }).click());
    const deactivated = await look(s, 'solution-admin-deactivated');
    await goto(h, portalUrl);
    const hospitalAdminAfter = await walkToPortal(h, hospitalAdminLogin, ['sign-in', 'error']);
    const hospitalAdminRefusal = (await h.locator('[role=alert]').allInnerTexts())[0] ?? null;
    return {
      otherHospital,
      hospitalAdminRefusal, solution, onboarded, adminInvitation, hospital, doctorInvitation, doctor, withDoctor, removedNotice, doctorAfter: { kind: doctorAfter.kind, trail: doctorAfter.trail }, deactivated, hospitalAdminAfter: { kind: hospitalAdminAfter.kind, trail: hospitalAdminAfter.trail } };
  } finally {
    for (const c of contexts) await c.close();
  }
}

// ----------------------------------------------------------------- upload
//
// Input: patient, doctor ({invitation, login}), patientId, bytes (the
// patient's file size), doctorTitle, patientTitle.
// The patient uploads a large file from their dashboard (the progress bar
// shows), the doctor of their hospital uploads one for them from the
// patient's page; both read back byte for byte.
async function upload(browser) {
  const { patient, doctor } = input;
  for (const person of [patient, doctor]) {
    await redeemInvitation(browser, origins, { invitation: person.invitation, login: person.login, providerLabel: input.provider.label });
  }
  const dir = await mkdtemp(join(tmpdir(), 'fhirledger-portal-upload-'));
  const contexts = [];
  try {
    // A file of random bytes, written a MiB at a time, and its digest.
    const big = join(dir, 'scan.bin');
    const digest = createHash('sha256');
    const handle = await open(big, 'w');
    for (let left = input.bytes; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024));
      digest.update(chunk);
      await handle.write(chunk);
      left -= chunk.length;
    }
    await handle.close();
    const sha256 = digest.digest('hex');

    const pc = await browser.newContext();
    contexts.push(pc);
    const p = await pc.newPage();
    await goto(p, portalUrl);
    await walkToPortal(p, patient.login);
    const limitLabel = (await p.locator('label[for=upload-file]').allInnerTexts())[0] ?? null;
    await p.getByLabel('Title').fill(input.patientTitle);
    await p.getByLabel('Kind').selectOption({ label: 'Diagnostic imaging study' });
    await p.getByLabel(/^File/).setInputFiles(big);
    const progressSeen = p.waitForFunction(() => { const b = document.querySelector('form[data-upload] progress'); return b && !b.hidden; }, null, { timeout: 120000 });
    await andWait(p, () => p.getByRole('button', { name: 'Upload' }).click());
    const progressShown = await progressSeen.then(() => true, () => false);
    const notice = (await p.locator('.notice').allInnerTexts())[0] ?? null;
    const dashboard = await look(p, 'patient-uploaded');
    const href = await p.getByRole('link', { name: input.patientTitle }).getAttribute('href');
    const back = await p.request.get(new URL(`${href}/content?download=1`, p.url()).toString(), { timeout: 120000 });
    const body = await back.body();
    const returned = { status: back.status(), bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };

    const dc = await browser.newContext();
    contexts.push(dc);
    const d = await dc.newPage();
    await goto(d, `${portalUrl}/patients/${input.patientId}`);
    await walkToPortal(d, doctor.login);
    const small = join(dir, 'letter.txt');
    const handle2 = await open(small, 'w');
    await handle2.write('A referral letter.');
    await handle2.close();
    await d.getByLabel('Title').fill(input.doctorTitle);
    await d.getByLabel('Kind').selectOption({ label: 'Referral note' });
    await d.getByLabel(/^File/).setInputFiles(small);
    await andWait(d, () => d.getByRole('button', { name: 'Upload' }).click());
    const patientPage = await look(d, 'doctor-uploaded');
    await andWait(d, () => d.getByRole('link', { name: input.doctorTitle }).click());
    const view = await d.request.get(`${d.url()}/content`);
    const letter = { status: view.status(), type: view.headers()['content-type'], text: await view.text() };
    return { limitLabel, progressShown, notice, dashboard, returned, sha256, patientPage, letter };
  } finally {
    for (const c of contexts) await c.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------- live
//
// Input: patient, doctor {invitation, login}, doctorFamily, patientFamily,
// shared {id, title}.
// Both have their page open (JavaScript on): the doctor their dashboard,
// the patient their access log. The patient shares with the doctor from a
// second tab: the doctor's list shows the patient without a reload. The
// doctor opens the shared document: the patient's log shows the read
// without a reload. Each page counts how often it fetched itself again, so
// the test sees that the patient's own page views do not refresh it.
async function livePages(browser) {
  const { patient, doctor } = input;
  for (const person of [patient, doctor]) {
    await redeemInvitation(browser, origins, { invitation: person.invitation, login: person.login, providerLabel: input.provider.label });
  }
  const patientContext = await browser.newContext();
  const doctorContext = await browser.newContext();
  const adminContext = await browser.newContext();
  const refetches = { patientLog: 0, doctorDashboard: 0 };
  // Whether a page is still the one loaded at first (a reload would lose it).
  const mark = (page) => page.evaluate(() => { window.livePageMark = 'first load'; });
  const marked = (page) => page.evaluate(() => window.livePageMark === 'first load');
  // The new rows the script pointed out, and what it told screen readers.
  const freshRows = (page, region) => page.locator(`#${region} tr.fresh`).allInnerTexts();
  const announced = (page, region) => page.locator(`#${region} + [role=status]`).innerText();
  try {
    const d = await doctorContext.newPage();
    await goto(d, portalUrl);
    await walkToPortal(d, doctor.login);
    const doctorBefore = await look(d, 'live-doctor-before', { axe: false });
    const streams = {
      foreignTopic: (await d.request.get(`${portalUrl}/live/access-log`)).status(),
      unknownTopic: (await d.request.get(`${portalUrl}/live/everything`)).status(),
    };
    await mark(d);
    d.on('request', (r) => { if (r.resourceType() === 'fetch' && new URL(r.url()).pathname === '/portal') refetches.doctorDashboard++; });

    const log = await patientContext.newPage();
    await goto(log, `${portalUrl}/access-log`);
    await walkToPortal(log, patient.login);
    await goto(log, `${portalUrl}/access-log`);
    await mark(log);
    log.on('request', (r) => { if (r.resourceType() === 'fetch' && new URL(r.url()).pathname === '/portal/access-log') refetches.patientLog++; });

    // The patient shares from a second tab.
    const p = await patientContext.newPage();
    await goto(p, portalUrl);
    await andWait(p, () => p.getByRole('link', { name: 'Share your documents' }).click());
    await p.getByLabel('Find a doctor or hospital of the group by name').fill(input.doctorFamily);
    await andWait(p, () => p.getByRole('button', { name: 'Search' }).click());
    await p.getByRole('radio', { name: new RegExp(input.doctorFamily) }).first().check();
    await p.getByRole('radio', { name: 'All your documents, present and future' }).check();
    await andWait(p, () => p.getByRole('button', { name: 'Share' }).click());

    // The doctor's open dashboard lists the patient.
    const patientLink = d.locator('#live-patients').getByRole('link', { name: new RegExp(input.patientFamily) });
    await patientLink.waitFor({ timeout: 20000 });
    const doctorAfter = {
      page: await look(d, 'live-doctor-after'),
      sameLoad: await marked(d),
      fresh: await freshRows(d, 'live-patients'),
      announced: await announced(d, 'live-patients'),
    };

    // Their hospital's admin onboards a patient: the open dashboard lists
    // them too (the doctor sees their hospital's patients).
    await redeemInvitation(browser, origins, { invitation: input.hospitalAdmin.invitation, login: input.hospitalAdmin.login, providerLabel: input.provider.label });
    const h = await adminContext.newPage();
    await goto(h, portalUrl);
    await walkToPortal(h, input.hospitalAdmin.login);
    await h.getByRole('radio', { name: 'A patient' }).check();
    await h.getByLabel('Given name').fill('Newly');
    await h.getByLabel('Family name').fill(input.onboardedFamily);
    await h.getByLabel('Their email').fill(`${input.onboardedFamily.toLowerCase()}@patients.example`);
    await andWait(h, () => h.getByRole('button', { name: 'Onboard and send an invitation' }).click());
    await d.locator('#live-patients').getByRole('link', { name: new RegExp(input.onboardedFamily) }).waitFor({ timeout: 20000 });
    const doctorOnboarded = { sameLoad: await marked(d), fresh: await freshRows(d, 'live-patients') };

    // The doctor reads the shared document; the patient's open log shows it.
    await andWait(d, () => patientLink.click());
    await andWait(d, () => d.getByRole('link', { name: input.shared.title }).click());
    await log.locator('#live-access-log tr').filter({ hasText: input.doctorFamily }).filter({ hasText: 'Read DocumentReference' })
      .first().waitFor({ timeout: 20000 });
    const logAfter = {
      page: await look(log, 'live-patient-log-after'),
      sameLoad: await marked(log),
      fresh: await freshRows(log, 'live-access-log'),
      announced: await announced(log, 'live-access-log'),
    };
    return { doctorBefore, streams, doctorAfter, doctorOnboarded, logAfter, refetches };
  } finally {
    await patientContext.close();
    await doctorContext.close();
    await adminContext.close();
  }
}

// ------------------------------------------------------- patients-pages
//
// Input: doctor {invitation, login}.
// A doctor with more patients than the dashboard lists: the first page,
// the next through "More patients", and back through "First patients".
async function patientsPages(browser) {
  const { doctor } = input;
  await redeemInvitation(browser, origins, { invitation: doctor.invitation, login: doctor.login, providerLabel: input.provider.label });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await goto(page, portalUrl);
    await walkToPortal(page, doctor.login);
    const first = await look(page, 'doctor-patients');
    await andWait(page, () => page.getByRole('link', { name: 'More patients' }).click());
    const more = await look(page, 'doctor-patients-more', { axe: false });
    const moreHasMore = (await page.getByRole('link', { name: 'More patients' }).count()) > 0;
    await andWait(page, () => page.getByRole('link', { name: 'First patients' }).click());
    const back = await look(page, 'doctor-patients-back', { axe: false });
    return { first, more, moreHasMore, back };
  } finally {
    await context.close();
  }
}

const scenarios = { 'sign-in-and-out': signInAndOut, 'share-and-revoke': shareAndRevoke, administration, upload, live: livePages, 'patients-pages': patientsPages };

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario '${name}'; one of ${Object.keys(scenarios).join(', ')}`);
  const browser = await launchBrowser(input.chromium);
  try {
    const result = await scenario(browser);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  log(e.stack ?? String(e));
  process.exit(1);
});
