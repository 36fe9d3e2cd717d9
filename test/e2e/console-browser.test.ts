/**
 * The web console in a real browser (Debian's chromium through playwright-core) against a real
 * issuer and the development OIDC provider: sign in through the provider's form, see the task
 * tree of a real agent chain (principal → planner → researcher → reader, each attested with a
 * join token), revoke the task from the tree and watch its nodes turn revoked, open an audit
 * record and see its inclusion proof verified in the browser (and a tampered one fail), the
 * operator's overview, and the tree on a narrow screen. Screenshots of each page go to
 * $WRIT_CONSOLE_SCREENSHOTS (default: a temporary directory, printed).
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleWorld, OPERATOR_GROUP, startConsoleWorld } from '../helpers/console.js';
import { HAVE_CHROMIUM, launchChromium, screenshotDir } from '../helpers/browser.js';
import { threeHops } from '../helpers/revocation.js';

describe.skipIf(!HAVE_CHROMIUM)('web console in chromium', { timeout: 120_000 }, () => {
  let c: ConsoleWorld;
  let chrome: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;
  const shots = screenshotDir();
  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    c = await startConsoleWorld();
    await threeHops({ address: c.w.address, bundlePem: c.w.bundlePem, adminSocket: c.w.adminSocket }, c.oidc, { taskId: 'triage-42', principal: 'alice' });
    await threeHops({ address: c.w.address, bundlePem: c.w.bundlePem, adminSocket: c.w.adminSocket }, c.oidc, {
      taskId: 'release-7',
      principal: 'alice',
      name: 'rel',
    });
    chrome = await launchChromium();
    browser = chrome.browser;
    console.log(`console screenshots: ${shots}`);
  });
  afterAll(async () => {
    await chrome?.close();
    await c?.stop();
  });

  /** A fresh browser context (its own cookies) signed in as `sub` through the provider's form. */
  async function signedIn(sub: string, groups: string[] = [], viewport = { width: 1200, height: 900 }): Promise<Page> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && console.error(`page console: ${m.text()}`));
    await page.goto(`${c.url}/console/`);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(`${c.oidc.issuer}/authorize?**`);
    await expect(page.getByRole('heading', { name: 'FOR DEVELOPMENT ONLY' }).isVisible()).resolves.toBe(true);
    await page.getByLabel('Subject').fill(sub);
    await page.getByLabel('Groups (comma-separated)').fill(groups.join(','));
    await page.getByRole('button', { name: 'Sign in (development)' }).click();
    await page.waitForURL(`${c.url}/console/`);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    return page;
  }

  it('signs in with the OIDC provider and lists the principal’s tasks', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const first = await ctx.newPage();
    await first.goto(`${c.url}/console/`);
    await first.getByRole('link', { name: 'Sign in' }).waitFor();
    await shot(first, '01-sign-in');
    await first.getByRole('link', { name: 'Sign in' }).click();
    await first.getByLabel('Subject').waitFor();
    await shot(first, '02-dev-provider-form');
    await ctx.close();

    const page = await signedIn('alice');
    await page.getByRole('link', { name: 'triage-42' }).waitFor();
    expect(await page.getByRole('link', { name: 'release-7' }).count()).toBe(1);
    // The session cookie is not readable by the page's script.
    expect(await page.evaluate('document.cookie')).toBe('');
    await shot(page, '03-tasks');
    await page.context().close();
  });

  it('shows the task as a tree from the principal through every agent, then revokes it and the nodes turn revoked', async () => {
    const page = await signedIn('alice');
    await page.goto(`${c.url}/console/#/tasks/triage-42`);
    const tree = page.getByRole('tree', { name: 'Delegation tree of triage-42' });
    await tree.waitFor();
    await page.locator('[data-state="active"]').nth(2).waitFor();
    const ids = await page.locator('.node[data-jti] .spiffe').allTextContents();
    expect(ids).toEqual([
      'spiffe://example.org/agent/triage-42/planner',
      'spiffe://example.org/agent/triage-42/researcher',
      'spiffe://example.org/agent/triage-42/reader',
    ]);
    // Nested: reader under researcher under planner, under the principal.
    expect(await page.locator('.node.principal .node[data-jti] .node[data-jti] .node[data-jti] .spiffe').textContent()).toBe(
      'spiffe://example.org/agent/triage-42/reader',
    );
    expect(await page.locator('.node.principal > .node-body .node-head').textContent()).toContain(`${c.oidc.issuer}#alice`);
    const reader = page.locator('.node[data-jti]').nth(2);
    expect(await reader.locator('.kv').textContent()).toContain('join_token');
    expect(await reader.locator('.kv').textContent()).toContain('repo:read repo://acme/widgets*');
    await shot(page, '04-task-tree');

    await page.getByRole('button', { name: 'Revoke task' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke task?' });
    await dialog.waitFor();
    // No reason, no revocation.
    expect(await dialog.getByRole('button', { name: 'Revoke' }).isDisabled()).toBe(true);
    await dialog.getByLabel('Reason (recorded in the audit log)').fill('the triage agent went off script');
    await shot(page, '05-revoke-confirm');
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await page.locator('[data-state="revoked"]').nth(2).waitFor();
    expect(await page.locator('[data-state="active"]').count()).toBe(0);
    await page.locator('[data-task-state="ended"]').waitFor();
    await shot(page, '06-task-revoked');
    // The other task is untouched.
    await page.goto(`${c.url}/console/#/tasks/release-7`);
    await page.locator('[data-state="active"]').nth(2).waitFor();
    await page.context().close();
  });

  it('shows a revocation made elsewhere within a second (the tree polls)', async () => {
    const page = await signedIn('olga', [OPERATOR_GROUP]);
    await page.goto(`${c.url}/console/#/tasks/release-7`);
    await page.locator('[data-state="active"]').nth(2).waitFor();
    // The operator revokes the researcher through the API; the open tree follows by itself.
    const session = (await page.context().cookies()).find((k) => k.name === '__Host-writ-console')!.value;
    const r = await c.rpc('Revoke', { kind: 'agent', target: 'spiffe://example.org/agent/rel/researcher', reason: 'compromised' }, { cookie: session });
    expect(r.status).toBe(200);
    await page.locator('[data-state="revoked"]').nth(1).waitFor({ timeout: 5000 });
    expect(await page.locator('[data-state="active"]').count()).toBe(1);
    await page.context().close();
  });

  it('opens an audit record and verifies its inclusion proof in the browser; a tampered one fails', async () => {
    const page = await signedIn('alice');
    await page.goto(`${c.url}/console/#/audit`);
    await page.getByLabel('Task').fill('triage-42');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('tr[data-seq]').first().waitFor();
    await page.locator('tr[data-seq]').first().getByRole('button').click();
    await page.locator('[data-proof]').waitFor();
    await shot(page, '07-audit-verified');
    expect(await page.locator('[data-proof]').textContent()).toMatch(/verified in this browser against the signed checkpoint of \d+ records/);

    // The same record with one byte of it changed on the way: the browser's check fails.
    await page.route('**/writ.v1.ConsoleService/ProveAuditRecord', async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { canonical: string };
      const bytes = Buffer.from(body.canonical, 'base64');
      const text = bytes.toString('utf8').replace('"task":"triage-42"', '"task":"triage-43"');
      body.canonical = Buffer.from(text).toString('base64');
      await route.fulfill({ response: res, body: JSON.stringify(body) });
    });
    await page.locator('tr[data-seq]').nth(1).getByRole('button').click();
    await page.locator('[data-proof="failed"]').waitFor();
    expect(await page.locator('[data-proof="failed"]').textContent()).toMatch(/another root/);
    await shot(page, '08-audit-tampered');
    await page.context().close();
  });

  it('shows the operator the overview: version, trust domain, key rotation state', async () => {
    const page = await signedIn('olga', [OPERATOR_GROUP]);
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const facts = await page.locator('.facts').textContent();
    expect(facts).toContain('example.org');
    expect(facts).toContain('sqlite');
    expect(await page.locator('table tbody tr').count()).toBeGreaterThan(0);
    await shot(page, '09-overview');
    await page.context().close();
  });

  it('is usable on a narrow screen and by keyboard', async () => {
    const page = await signedIn('alice', [], { width: 375, height: 800 });
    await page.goto(`${c.url}/console/#/tasks/triage-42`);
    await page.locator('.node[data-jti]').nth(2).waitFor();
    // Nothing wider than the screen.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    await shot(page, '10-tree-narrow');
    // The first Tab reaches the skip link; the page's controls are real buttons and links.
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.context().close();
  });

  it('signs out: the session is gone server-side', async () => {
    const page = await signedIn('alice');
    const session = (await page.context().cookies()).find((k) => k.name === '__Host-writ-console')!;
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    expect((await c.rpc('GetSession', {}, { cookie: session.value })).status).toBe(401);
    await page.context().close();
  });
});
