// Bad input gives exit status 2 and one or two lines naming file:line:column and the field,
// never a stack trace: a YAML syntax error, an unknown plugin, an unknown key, a wrong type, a
// task on a CPU that does not exist, a missing file, a truncated strace line; and bad flags.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { cli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mmnsim-bad-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const GOOD = `cpus: 2
plugins:
  - use: '@mmnsim/mm'
processes:
  - name: app
tasks:
  - name: t
    cpu: 1
    do:
      - mmap: { len: 1p, prot: [read, write], flags: [private, anonymous], as: a }
      - munmap: { addr: a, len: 1p }
`;

async function bad(args: string[], where: RegExp, field: RegExp): Promise<string> {
  const r = await cli(...args);
  expect(r.code).toBe(2);
  expect(r.out).toBe('');
  expect(r.err).toMatch(where);
  expect(r.err).toMatch(field);
  expect(r.err).not.toMatch(/\n\s+at /);
  expect(r.err.trim().split('\n').length).toBeLessThanOrEqual(2);
  return r.err;
}

describe('bad input: exit 2, file:line:column and the field, no stack trace', () => {
  it('the good file runs clean (the cases below differ from it in one place)', async () => {
    const r = await cli('explore', file('good.yaml', GOOD), '--schedules', '5', '--json');
    expect(r.code).toBe(0);
  });
  it('a YAML syntax error', async () => {
    await bad(
      ['explore', file('syntax.yaml', GOOD.replace('cpu: 1', 'cpu: [1'))],
      /syntax\.yaml:\d+:\d+: /,
      /\(syntax\)/,
    );
  });
  it('an unknown plugin', async () => {
    const e = await bad(
      ['explore', file('plugin.yaml', GOOD.replace("'@mmnsim/mm'", "'@mmnsim/nope'"))],
      /plugin\.yaml:3:10: /,
      /plugins\.0\.use: unknown plugin package "@mmnsim\/nope"/,
    );
    expect(e).toMatch(/@mmnsim\/drivers-kvm/); // the allowed values
  });
  it('an unknown key (and its allowed keys)', async () => {
    const e = await bad(
      ['explore', file('key.yaml', GOOD.replace('    cpu: 1', '    cpu: 1\n    cpux: 2'))],
      /key\.yaml:9:5: /,
      /tasks\.0\.cpux: unknown key "cpux"/,
    );
    expect(e).toMatch(/allowed: name, cpu, vcpu, process, do/);
  });
  it('an unknown operation names the allowed ones', async () => {
    await bad(
      ['explore', file('op.yaml', GOOD.replace('- munmap:', '- munmapp:'))],
      /op\.yaml:11:9: /,
      /tasks\.0\.do\.1\.munmapp: unknown operation "munmapp" \(allowed: mmap, munmap/,
    );
  });
  it('a value of the wrong type', async () => {
    await bad(
      ['explore', file('type.yaml', GOOD.replace('cpus: 2', 'cpus: two'))],
      /type\.yaml:1:7: /,
      /cpus: expected number, got string "two"/,
    );
  });
  it('a wrong enum value inside an operation names the allowed values', async () => {
    await bad(
      ['explore', file('enum.yaml', GOOD.replace('prot: [read, write]', 'prot: [read, wrte]'))],
      /enum\.yaml:10:\d+: /,
      /tasks\.0\.do\.0\.mmap\.prot\.1: "wrte" is not allowed \(allowed: "read", "write", "exec"\)/,
    );
  });
  it('a plugin option error points at the option', async () => {
    await bad(
      [
        'explore',
        file(
          'opt.yaml',
          GOOD.replace(
            "- use: '@mmnsim/mm'",
            "- use: '@mmnsim/mm'\n    options: { totalFrames: 3 }",
          ),
        ),
      ],
      /opt\.yaml:4:29: /,
      /plugins\.0\.options\.totalFrames: plugin "mm"/,
    );
  });
  it('a task on a CPU that does not exist', async () => {
    await bad(
      ['explore', file('cpu.yaml', GOOD.replace('cpu: 1', 'cpu: 5'))],
      /cpu\.yaml:8:10: /,
      /tasks\.0\.cpu: CPU 5 does not exist \(the scenario has cpus: 2, so 0\.\.1/,
    );
  });
  it('a variable never bound', async () => {
    await bad(
      ['explore', file('var.yaml', GOOD.replace('addr: a,', 'addr: b,'))],
      /var\.yaml:11:\d+: /,
      /tasks\.0\.do\.1\.munmap\.addr: variable "b" is never bound/,
    );
  });
  it('a spawned vCPU task: both "cpu" and "vcpu", an unknown VM, vm_create without the KVM plugin', async () => {
    const kvm = (ops: string, plugin = "\n  - use: '@mmnsim/drivers-kvm'"): string =>
      GOOD.replace("'@mmnsim/mm'", `'@mmnsim/mm'${plugin}`).replace(
        '      - munmap: { addr: a, len: 1p }\n',
        `      - vm_create: { vm: v }\n${ops}`,
      );
    const spawn = (who: string): string =>
      `      - spawn: { name: g, ${who}, do: [{ guest_load: { gpa: 0 } }] }\n`;
    await bad(
      ['explore', file('both.yaml', kvm(spawn('cpu: 0, vcpu: { vm: v, index: 0 }')))],
      /both\.yaml:\d+:\d+: /,
      /tasks\.0\.do\.2\.spawn: a vCPU task runs on its vCPU's CPU: give "cpu" or "vcpu", not both/,
    );
    await bad(
      ['explore', file('novm.yaml', kvm(spawn('vcpu: { vm: w, index: 0 }')))],
      /novm\.yaml:\d+:\d+: /,
      /tasks\.0\.do\.2\.spawn\.vcpu\.vm: no VM "w" \(declared or created: v\)/,
    );
    // Found when the task reaches it: the run reports it as the task's exception, no crash.
    const r = await cli('run', file('noplugin.yaml', kvm('', '')), '--log', join(dir, 'np.ndjson'));
    expect(r.code).toBe(1);
    expect(r.out + r.err).toMatch(
      /tasks\.0\.do\.1\.vm_create: vm_create needs the @mmnsim\/drivers-kvm plugin/,
    );
    const ok = await cli(
      'explore',
      file('vcpu.yaml', kvm(spawn('vcpu: { vm: v, index: 0 }'))),
      '--schedules',
      '5',
      '--json',
    );
    expect(ok.code).toBe(0);
  });
  it('a missing file', async () => {
    await bad(
      ['explore', join(dir, 'missing.yaml')],
      /missing\.yaml:1:1: /,
      /\(file\): cannot read the file: no such file/,
    );
  });
  it('a truncated strace line with --strict (and without: reported with its line and skipped)', async () => {
    const trace = file(
      'trace.txt',
      '100 brk(NULL) = 0x5000\n100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIV\n100 exit_group(0) = ?\n',
    );
    await bad(
      ['import', 'strace', trace, '--strict'],
      /trace\.txt:2:\d+: /,
      /line 2: truncated mmap call/,
    );
    const r = await cli('import', 'strace', trace, '-o', join(dir, 'out.yaml'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/trace\.txt:2:\d+: skipped a malformed line: truncated mmap call/);
  });
  it('bad flag numbers are refused with the flag named', async () => {
    const f = file('good2.yaml', GOOD);
    for (const v of ['', '1,,2', '0x10', '1e21', '9007199254740993', '-1', '1.5', ' 3']) {
      const r = await cli('explore', f, '--schedules', v);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/--schedules/);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
    const z = await cli('zoo', '--seeds', '1,,2');
    expect(z.code).toBe(2);
    expect(z.err).toMatch(/--seeds: "1,,2" is not a comma-separated list/);
  });
  it('an unknown command and an unknown strategy are usage errors', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('explore', file('g3.yaml', GOOD), '--strategy', 'dfs')).code).toBe(2);
  });
});
