/**
 * Support staff in the Temporal Web UI, in a real browser: Debian's Chromium, headless, driven by
 * playwright-core (which downloads no browser). A past-due subscription is searched for by its
 * search attributes and opened; screenshots of both pages are kept under test-results/.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestUser, type TestUser } from './support/api';
import { activeSubscription, createDunningPlan, createMonthlyPlan, pastDueSubscription, waitForListing } from './support/staff-fixtures';
import { startSubscriptionStack, type SubscriptionStack } from './support/subscription-stack';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Headless and quiet: no sandbox (tests may run as root), no network but the page's own.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const RESULTS_DIR = path.join(__dirname, '..', 'test-results');
// The UI lists what the visibility store has; it trails the workflows by a moment.
const LISTING_TIMEOUT_MS = 30_000;

describe('the Temporal Web UI in a browser', () => {
  let stack: SubscriptionStack;
  let browser: Browser;
  let customer: TestUser;
  let planCode: string;
  let pastDue: Record<string, any>;
  let active: Record<string, any>;

  before(async () => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    stack = await startSubscriptionStack();
    customer = await createTestUser(stack.deps);
    const [dunningPlan, monthlyPlan] = await Promise.all([createDunningPlan(stack), createMonthlyPlan(stack)]);
    planCode = dunningPlan.code;
    [pastDue, active] = await Promise.all([
      pastDueSubscription(stack, customer, dunningPlan.id),
      activeSubscription(stack, customer, monthlyPlan.id),
    ]);
    // The UI's first load must find what the API already knows.
    await waitForListing(stack.deps.temporal, customerQuery('past_due'), [pastDue.workflowId]);
    // playwright-core gives each launch a fresh, throw-away profile.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  function customerQuery(status: string): string {
    return `SubscriptionStatus="${status}" AND CustomerEmail="${customer.user.email}"`;
  }

  /** Types `query` into the UI's manual query box and searches until `workflowId` is listed. */
  async function search(page: Page, query: string, workflowId: string): Promise<void> {
    await page.goto(`${stack.deps.config.TEMPORAL_UI_URL}/namespaces/${stack.deps.config.TEMPORAL_NAMESPACE}/workflows`);
    await page.getByTestId('toggle-manual-query').click();
    const input = page.getByTestId('manual-search-input');
    await input.fill(query);
    const deadline = Date.now() + LISTING_TIMEOUT_MS;
    for (;;) {
      await page.getByTestId('manual-search-button').click();
      try {
        await workflowLink(page, workflowId).waitFor({ timeout: 3_000 });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
    }
  }

  /**
   * Waits until some frame of the page shows `text`: the UI renders summaries and details as
   * markdown, each in a frame of its own.
   */
  async function shown(page: Page, text: string | RegExp): Promise<void> {
    const deadline = Date.now() + LISTING_TIMEOUT_MS;
    for (;;) {
      for (const frame of page.frames()) {
        const body = await frame
          .locator('body')
          .innerText()
          .catch(() => '');
        if (typeof text === 'string' ? body.includes(text) : text.test(body)) return;
      }
      assert.ok(Date.now() < deadline, `the page never showed ${text}`);
      await page.waitForTimeout(250);
    }
  }

  function workflowLink(page: Page, workflowId: string) {
    return page.getByRole('link', { name: workflowId, exact: true });
  }

  test('SubscriptionStatus="past_due" lists the subscription in dunning, not the active one; its page shows summary and details', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    try {
      await search(page, customerQuery('past_due'), pastDue.workflowId);
      assert.equal(await workflowLink(page, active.workflowId).count(), 0);
      assert.equal(new URL(page.url()).searchParams.get('query'), customerQuery('past_due'));
      await page.screenshot({ path: path.join(RESULTS_DIR, 'temporal-ui-past-due-search.png'), fullPage: true });

      await workflowLink(page, pastDue.workflowId).click();
      await page.getByText('User Metadata', { exact: true }).click();
      await shown(page, `${planCode} · ${customer.user.email}`);
      await shown(page, new RegExp(`past_due · ${planCode} · retry 1 of 1 on .+ · expires `));
      await page.screenshot({ path: path.join(RESULTS_DIR, 'temporal-ui-past-due-workflow.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  test('SubscriptionStatus="active" lists the active one', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    try {
      await search(page, customerQuery('active'), active.workflowId);
      assert.equal(await workflowLink(page, pastDue.workflowId).count(), 0);
    } finally {
      await page.close();
    }
  });
});
