/**
 * `writ agent run --config FILE`: a YAML mapping whose keys are the verb's option names
 * (`server: 127.0.0.1:8443`, `jwt-audience: [https://a, https://b]`, `tpm-key: true`). Every
 * problem is reported at once (ConfigError, as the server's config); a flag given on the command
 * line overrides the file's value.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../../errors.js';
import type { OptionSpecs, OptionValue, OptionValues } from '../../../config/options.js';

/** Largest config file read. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export function withConfigFile(file: string, specs: OptionSpecs, flags: OptionValues): OptionValues {
  const read = readConfigFile(file, specs, flags);
  if (read.problems.length) throw new ConfigError(read.problems);
  return read.values;
}

/**
 * The file's options merged with the flags, and what is wrong with the file's shape: each
 * problem names the file and the option (`invalid` lists those options, left out of `values`, so
 * the caller can report value problems of the rest in the same run). A file that cannot be read,
 * is not YAML or not a mapping throws ConfigError at once.
 */
export function readConfigFile(
  file: string,
  specs: OptionSpecs,
  flags: OptionValues,
): { values: OptionValues; problems: string[]; invalid: ReadonlySet<string> } {
  const problems: string[] = [];
  const invalid = new Set<string>();
  let doc: unknown;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    doc = parseYaml(readFileSync(file, 'utf8'), { uniqueKeys: true, maxAliasCount: 0 });
  } catch (e) {
    throw new ConfigError([`${file}: ${(e as Error).message}`]);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`${file}: not a mapping of option names to values`]);
  const out: Record<string, OptionValue> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const spec = specs[k];
    if (!spec || k === 'config') {
      problems.push(`${k}: unknown option`);
      continue;
    }
    if (spec.type === 'boolean') {
      if (typeof v !== 'boolean') problems.push(`${k}: must be true or false`);
      else out[k] = v;
    } else if (spec.multiple) {
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x === '')) problems.push(`${k}: must be a string or a list of strings`);
      else out[k] = list as string[];
    } else if (typeof v !== 'string' || v === '') problems.push(`${k}: must be a non-empty string`);
    else out[k] = v;
  }
  const merged: Record<string, OptionValue> = { ...out };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined && k !== 'config') merged[k] = v;
  for (const p of problems) invalid.add(p.slice(0, p.indexOf(':')));
  return { values: merged, problems: problems.map((p) => `${file}: ${p}`), invalid };
}
