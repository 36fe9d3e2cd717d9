/**
 * A CLI verb is data plus a run function: its words, options (config/options.ts), positionals
 * and a summary. The parser and every line of usage are generated from these declarations, so
 * an option is declared once and shown once.
 */
import { parseArgs } from 'node:util';
import type { CommandIo, EvidencePlugin, EvidenceProducer } from '../attestation/plugin.js';
import { UsageError, type OptionSpec, type OptionSpecs, type OptionValues } from '../config/options.js';

/** The evidence types this CLI knows: issuer side (for `writ verify --deep`) and agent side. */
export interface CliCatalog {
  readonly evidence: readonly EvidencePlugin[];
  readonly producers: readonly EvidenceProducer[];
}

export interface VerbContext {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly catalog: CliCatalog;
  readonly io: CommandIo;
  /** The wall clock (verbs are the top of the stack; nothing below reads it). */
  now(): Date;
}

export interface Verb {
  /** Words after `writ`, e.g. ["entry", "create"]. */
  readonly name: readonly string[];
  readonly summary: string;
  /** Options; may depend on the catalog (plug-ins add theirs). */
  readonly options: OptionSpecs | ((catalog: CliCatalog) => OptionSpecs);
  /** Options that must be given (shown without brackets). */
  readonly required?: readonly string[];
  /** Positionals as shown in usage, e.g. "ID" or "[DIGEST]". */
  readonly positionals?: string;
  readonly maxPositionals?: number;
  /** A line of grammar usage cannot express, e.g. "exactly one of --join-token and --tpm". */
  readonly note?: string;
  run(ctx: VerbContext): Promise<number>;
}

export const HELP_OPTION: OptionSpec = { type: 'boolean', help: 'show this help' };

export function optionsOf(v: Verb, catalog: CliCatalog): OptionSpecs {
  return typeof v.options === 'function' ? v.options(catalog) : v.options;
}

/**
 * Parses `args` for a verb's options (strict: unknown options are usage errors). Options with
 * `takesNext` always take the next argument as their value, even one beginning with "-".
 */
export function parseVerbArgs(specs: OptionSpecs, args: readonly string[], maxPositionals: number): { values: OptionValues; positionals: string[] } {
  const bound: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (name !== undefined && specs[name]?.takesNext && i + 1 < args.length) bound.push(`${a}=${args[++i]}`);
    else bound.push(a);
  }
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [k, s] of Object.entries(specs)) options[k] = { type: s.type, ...(s.multiple ? { multiple: true } : {}) };
  let r: ReturnType<typeof parseArgs>;
  try {
    r = parseArgs({ args: bound, options, allowPositionals: maxPositionals > 0, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (r.positionals.length > maxPositionals) throw new UsageError(`unexpected argument ${r.positionals[maxPositionals]}`);
  return { values: r.values as OptionValues, positionals: r.positionals };
}

function optionText(name: string, s: OptionSpec): string {
  return s.type === 'boolean' ? `--${name}` : `--${name} ${s.value ?? 'VALUE'}`;
}

/** One usage line for a verb: required options bare, the rest in brackets, repeatable ones with "...". */
export function usageLine(v: Verb, catalog: CliCatalog): string {
  const specs = optionsOf(v, catalog);
  const req = new Set(v.required ?? []);
  const parts = [`writ ${v.name.join(' ')}`, ...(v.positionals ? [v.positionals] : [])];
  for (const [k, s] of Object.entries(specs)) {
    const text = `${optionText(k, s)}${s.multiple ? '...' : ''}`;
    parts.push(req.has(k) ? text : `[${text}]`);
  }
  return parts.join(' ');
}

/** The detailed help of one verb: usage, summary, note and one line per option. */
export function verbHelp(v: Verb, catalog: CliCatalog): string {
  const specs = optionsOf(v, catalog);
  const rows = Object.entries(specs).map(([k, s]) => [optionText(k, s) + (s.multiple ? '...' : ''), s.help] as const);
  const w = Math.min(34, Math.max(0, ...rows.map((r) => r[0].length)));
  return [
    `Usage: ${usageLine(v, catalog)}`,
    '',
    v.summary,
    ...(v.note ? [v.note] : []),
    ...(rows.length ? ['', 'Options:', ...rows.map(([a, h]) => `  ${a.padEnd(w)}  ${h}`)] : []),
    '',
  ].join('\n');
}

/** Wraps a usage line at `width` columns, continuation lines indented under the verb's options. */
export function wrapUsage(line: string, width = 100): string {
  const words = line.split(/ (?=\[|--|[A-Z]|\()/);
  const head = words.slice(0, 1).join(' ');
  const indent = ' '.repeat(Math.min(head.length + 1, 24));
  const out: string[] = [];
  let cur = head;
  for (const w of words.slice(1)) {
    if (cur.length + 1 + w.length > width) {
      out.push(cur);
      cur = indent + w;
    } else cur += ` ${w}`;
  }
  out.push(cur);
  return out.join('\n');
}

/** A required option's value; missing or empty is a usage error. */
export function required(values: OptionValues, name: string): string {
  const v = values[name];
  const s = Array.isArray(v) ? v[v.length - 1] : v;
  if (typeof s !== 'string' || s === '') throw new UsageError(`--${name} is required`);
  return s;
}
