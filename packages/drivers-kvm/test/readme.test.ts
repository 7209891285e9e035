// The package README's composed example (process + VM + workload): the README shows the file
// word for word, and it runs cleanly under PCT.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { readmeExample } from './readme-example.js';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('the drivers-kvm README example', () => {
  it('is the file test/readme-example.ts, word for word', () => {
    const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
    const marker = '<!-- example: packages/drivers-kvm/test/readme-example.ts -->';
    const at = readme.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))![1];
    expect(block).toBe(readFileSync(join(pkg, 'test/readme-example.ts'), 'utf8'));
  });

  it('runs cleanly under PCT: no violation, the host sees what the guest wrote', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { result, seen } = readmeExample(seed);
      expect(result.violations).toEqual([]);
      expect(result.reason).toBe('done');
      expect(seen).toHaveLength(3);
      expect(seen[2]).toBe(11);
      // Each vCPU read the other's word of page 0: written (vCPU 1 writes 10, vCPU 0 writes 0),
      // not written yet, or dropped by MADV_DONTNEED (0).
      for (const v of seen.slice(0, 2)) expect([0, 10]).toContain(v);
    }
  });
});
