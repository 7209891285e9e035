// The package README's composed example is test/fixtures/readme-example.ts: this test checks the
// README shows that file word for word, and runs it.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { readmeExample } from './fixtures/readme-example.js';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('the drivers-rdma README example', () => {
  it('is the file test/fixtures/readme-example.ts, word for word', () => {
    const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
    const marker = '<!-- example: packages/drivers-rdma/test/fixtures/readme-example.ts -->';
    const at = readme.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))![1];
    expect(block).toBe(readFileSync(join(pkg, 'test/fixtures/readme-example.ts'), 'utf8'));
  });

  it('runs under PCT with the notifier oracles attached: the ODP write faults once and lands, the unmapped page fails, the pinned MR outlives munmap', () => {
    for (const seed of [1, 2, 3]) {
      const { result, wc, seenByCpu, faults } = readmeExample(seed);
      expect(result.violations).toEqual([]);
      expect(result.reason).toBe('done');
      expect(wc.write!.status).toBe('SUCCESS');
      expect(wc.write!.faults).toBe(1);
      expect(seenByCpu).toBe(8);
      expect(wc.gone!.status).toBe('REM_ACCESS_ERR');
      expect(wc.pinned!.status).toBe('SUCCESS');
      expect(faults).toBe(2); // page 3, and page 3 again after munmap (which fails)
    }
  });
});
