import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { readNdjson } from '@mmnsim/core';
import { readmeExample } from '../src/readme/example.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('the README example', () => {
  it('is the file examples/src/readme/example.ts, word for word', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const marker = '<!-- example: examples/src/readme/example.ts -->';
    const at = readme.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))![1];
    expect(block).toBe(readFileSync(join(root, 'examples/src/readme/example.ts'), 'utf8'));
  });

  it('runs: the counter reaches 6 and the log reads back with its hash chain', () => {
    for (const seed of [1, 2, 3]) {
      const { result, counter, log } = readmeExample(seed);
      expect(result.reason).toBe('done');
      expect(counter).toBe(6);
      expect(readNdjson(log).events.filter((e) => e.type === 'lock.acquired')).toHaveLength(6);
    }
  });
});
