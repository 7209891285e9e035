/**
 * The scenario JSON Schema, generated from the zod schemas (`z.toJSONSchema`): what
 * `mmnsim schema` prints and what `schema/scenario.schema.json` ships. Its own file so the
 * generation options live in one place.
 */
import { z } from 'zod';
import { ScenarioFileSchema } from './schema.js';

/** The scenario file JSON Schema (draft 2020-12), for editors (`yaml-language-server`) and validators. */
export function scenarioJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(ScenarioFileSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    ...s,
    $id: 'https://mmnsim.dev/schema/scenario.schema.json',
    title: 'mmnsim scenario',
    description:
      'A scenario file of mmnsim: plugins, CPUs, processes, tasks and their workload, oracles, exploration defaults.',
  };
}
