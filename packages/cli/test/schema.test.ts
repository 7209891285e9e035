// `mmnsim schema` is generated from the zod schemas the loader validates with: every file of
// examples/scenarios validates against it with ajv (draft 2020-12), the copy shipped in the
// package equals it, and a file the loader refuses is refused by the schema too.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { cli } from './helpers.js';

const DIR = join(import.meta.dirname, '../../../examples/scenarios');

describe('the scenario JSON Schema', () => {
  it('validates every file in examples/scenarios, is shipped unchanged, and refuses an unknown key', async () => {
    const r = await cli('schema');
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.out) as Record<string, unknown>;
    const shipped = JSON.parse(
      readFileSync(join(import.meta.dirname, '../schema/scenario.schema.json'), 'utf8'),
    ) as unknown;
    expect(shipped).toEqual(schema);
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(schema);
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(12);
    for (const f of files) {
      const ok = validate(parse(readFileSync(join(DIR, f), 'utf8')));
      expect({ f, errors: ok ? null : validate.errors }).toEqual({ f, errors: null });
    }
    expect(
      validate({
        plugins: [{ use: '@mmnsim/mm' }],
        tasks: [{ name: 't', cpu: 0, do: [] }],
        bogus: 1,
      }),
    ).toBe(false);
    expect(
      validate({
        plugins: [{ use: '@mmnsim/mm' }],
        tasks: [{ name: 't', cpu: 0, do: [{ munmap: { addr: 'x + 1p', len: 4096 } }] }],
      }),
    ).toBe(true);
  });
});
