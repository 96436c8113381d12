// A real browser (headless Chromium) on the directory page of a tree with hostile names: it renders on a phone-sized screen, shows every name as text, runs nothing, and a click downloads the file.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type Server } from '../helpers/netkit.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Names that would run script, break out of an attribute, or traverse, were they pasted into the page. */
const HOSTILE = [
  '<script>alert(1)<',
  '<img src=x onerror=alert(2)>.txt',
  '"><svg onload=alert(3)>',
  "';alert(4);'.txt",
  '%2e%2e',
  '..;x',
  'a&amp;b.txt',
  'ünï €☕ 日本.txt',
  'javascript:alert(5)',
];

const hasChromium = existsSync(CHROMIUM);
const suite = hasChromium ? describe : describe.skip;
if (!hasChromium) {
  // eslint-disable-next-line no-console
  console.warn(`http-browser: skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);
}

let base: string;
let server: Server;

beforeAll(async () => {
  if (!hasChromium) return;
  base = mkdtempSync(join(tmpdir(), 'netkit-browser-'));
  const dir = join(base, 'served', 'hostile');
  mkdirSync(join(dir, 'sub dir'), { recursive: true });
  for (const name of HOSTILE) writeFileSync(join(dir, name), `contents of ${name}\n`);
  server = await startServer(['file', 'serve', join(base, 'served'), '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
});
afterAll(async () => {
  if (!hasChromium) return;
  await server.stop();
  rmSync(base, { recursive: true, force: true });
});

suite(`headless Chromium (${CHROMIUM})`, () => {
  test('the page lists every hostile name as text, runs nothing, fits a phone, and a click downloads the file', async () => {
    const { chromium } = await import('playwright-core');
    const context = await chromium.launchPersistentContext(mkdtempSync(join(base, 'profile-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      acceptDownloads: true,
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 1,
    });
    try {
      const page = await context.newPage();
      const dialogs: string[] = [];
      const errors: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on('pageerror', (e) => errors.push(e.message));
      const response = await page.goto(`http://127.0.0.1:${server.port}/hostile/`);
      expect(response?.status()).toBe(200);
      expect(await page.title()).toBe('Index of /hostile/');

      // The DOM text of the name links is exactly the names (a directory with its slash), plus the parent.
      const names = await page.$$eval('tbody a:not(.d)', (as) => as.map((a) => a.textContent));
      expect(names.sort()).toEqual(['../', 'sub dir/', ...HOSTILE].sort());
      // Nothing a name carried became an element, and nothing ran.
      expect(await page.$$eval('script, img, svg, iframe, object', (els) => els.length)).toBe(0);
      expect(dialogs).toEqual([]);
      expect(errors).toEqual([]);
      // Every link stays in this directory: relative, no scheme, no query.
      const hrefs = await page.$$eval('tbody a', (as) => as.map((a) => (a as unknown as { href: string }).href));
      for (const h of hrefs) expect(h.startsWith(`http://127.0.0.1:${server.port}/`)).toBe(true);

      // Readable on a phone: nothing wider than the screen.
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      const shot = join(process.env.NETKIT_SCREENSHOT_DIR ?? base, 'listing.png');
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(statSync(shot).size).toBeGreaterThan(10_000);

      // A click on a file's download link saves exactly that file, under its own name.
      for (const name of ['ünï €☕ 日本.txt', '<img src=x onerror=alert(2)>.txt']) {
        const link = page.locator('a.d').filter({ has: page.locator(`xpath=self::*[@download=${JSON.stringify(name)}]`) });
        const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
        // Chromium replaces characters that file systems reject or shells fear (<, >) with '_'.
        expect(download.suggestedFilename()).toBe(name.replace(/[<>:"/\\|?*]/g, '_'));
        const saved = await download.path();
        expect(readFileSync(saved, 'utf8')).toBe(`contents of ${name}\n`);
      }
      // Following a directory link shows that directory's page.
      await page.click('text=sub dir/');
      expect(await page.title()).toBe('Index of /hostile/sub dir/');
    } finally {
      await context.close();
    }
  }, 60_000);
});
