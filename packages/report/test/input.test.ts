import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { fold, replay } from '@mmnsim/core';
import { mmProjection } from '@mmnsim/mm';
import {
  loadLog,
  loadRunText,
  reportStateProjection,
  ReportInputError,
  runCommand,
} from '@mmnsim/report';
import { ZOO, zooScenario } from '@mmnsim/zoo';
import { minimisedReplay } from './support.js';

const v = ZOO.find((z) => z.id === 'odp-no-read-retry')!;
const { file, text: replayText } = minimisedReplay(v);
const logText = replay(v.scenario(true), file, { log: true }).sim.log!.toNdjson({
  scenario: file.scenario,
});

function refusal(fn: () => unknown): ReportInputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ReportInputError) return e;
    throw e;
  }
  throw new Error('accepted');
}

function command(cmd: 'report' | 'trace', input: string, text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mmnsim-report-'));
  const inPath = join(dir, input);
  const out = join(dir, cmd === 'report' ? 'out.html' : 'out.json');
  writeFileSync(inPath, text);
  const err: string[] = [];
  const code = runCommand(cmd, [inPath, '-o', out], zooScenario, {
    out: () => {},
    err: (l) => err.push(l),
  });
  return { code, err: err.join('\n'), written: existsSync(out) };
}

describe('report and trace inputs (issue 18)', () => {
  it('a log with a changed line is refused at that line (hash chain), and no file is written', () => {
    const lines = logText.split('\n');
    // Change one payload value on line 21 (the 20th event): its stored hash no longer matches.
    lines[20] = lines[20]!.replace(/"step":(\d+)/, (_m, n: string) => `"step":${Number(n) + 1}`);
    const bad = lines.join('\n');
    const e = refusal(() => loadLog(bad, 'run.ndjson'));
    expect(e.line).toBe(21);
    expect(e.message).toMatch(/^run\.ndjson: line 21: hash mismatch/);
    for (const cmd of ['report', 'trace'] as const) {
      const r = command(cmd, 'run.ndjson', bad);
      expect(r.code).toBe(1);
      expect(r.err).toContain('line 21');
      expect(r.written).toBe(false);
    }
  });

  it('a log cut off inside a line is refused with the line number (the log reader only warns)', () => {
    const cut = logText.slice(0, logText.lastIndexOf('\n', logText.length - 2) + 30);
    const lineNo = cut.split('\n').length;
    const e = refusal(() => loadRunText(cut, zooScenario, 'run.ndjson'));
    expect(e.line).toBe(lineNo);
    expect(e.message).toContain('truncated');
    const r = command('report', 'run.ndjson', cut);
    expect(r.code).toBe(1);
    expect(r.written).toBe(false);
  });

  it('a replay file whose final hash does not match is refused at the finalHash line; a truncated one at its last line', () => {
    const badHash = replayText.replace(
      /"finalHash": "([0-9a-f])/,
      (_m, c) => `"finalHash": "${c === 'a' ? 'b' : 'a'}`,
    );
    const hashLine = replayText.split('\n').findIndex((l) => l.includes('"finalHash"')) + 1;
    const e = refusal(() => loadRunText(badHash, zooScenario, 'bug.json'));
    expect(e.line).toBe(hashLine);
    expect(e.message).toContain('finalHash');
    const truncated = replayText.slice(0, Math.floor(replayText.length / 2));
    const t = refusal(() => loadRunText(truncated, zooScenario, 'bug.json'));
    expect(t.line).toBe(truncated.split('\n').length);
    for (const text of [badHash, truncated]) {
      const r = command('report', 'bug.json', text);
      expect(r.code).toBe(1);
      expect(r.written).toBe(false);
    }
  });

  it('a good replay file and its log give the same events; the commands write the report and trace', () => {
    const a = loadRunText(replayText, zooScenario);
    const b = loadRunText(logText, zooScenario);
    expect(a.events).toEqual(b.events);
    expect(v.expected).toContain(a.violations[0]!.kind);
    expect(command('report', 'bug.json', replayText)).toMatchObject({ code: 0, written: true });
    expect(command('trace', 'run.ndjson', logText)).toMatchObject({ code: 0, written: true });
    expect(
      command('report', 'bug.json', replayText.replace('"seed": ', '"seed": -')),
    ).toMatchObject({ code: 1, written: false });
  });

  it("the scrubber's projection folds VMAs and PTEs exactly as mm's mmProjection does", () => {
    const events = loadRunText(logText, zooScenario).events;
    for (const k of [Math.floor(events.length / 3), events.length]) {
      const prefix = events.slice(0, k);
      const mine = fold(reportStateProjection(), prefix);
      const mm = fold(mmProjection(), prefix);
      for (const [id, space] of mm.mms) {
        expect(new Map(mine.mms.get(id)!.ptes)).toEqual(space.ptes);
        expect([...mine.mms.get(id)!.vmas.keys()].sort()).toEqual([...space.vmas.keys()].sort());
      }
    }
  });
});
