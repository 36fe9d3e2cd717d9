/**
 * Reading one mapping of raw configuration (YAML, environment, flags) into validated values,
 * every problem recorded and none thrown, so that all of them are reported at once (SPIRE
 * buildConfig). Capabilities and evidence plug-ins parse their own sections with it; config/
 * never needs to know what they are.
 */
import { isAbsolute, resolve } from 'node:path';
import { parseDuration } from './duration.js';

export type Raw = Record<string, unknown>;

/** A capability's settings parser: its raw section → validated settings (problems recorded on the section). */
export type SettingsParser<S> = (section: Section) => S;

export class Section {
  /**
   * @param path  dotted name of this mapping (`''` for the top level), used in every message.
   * @param raw   the mapping itself; a non-mapping value is recorded as a problem by `Section.of`.
   */
  constructor(
    readonly path: string,
    readonly raw: Raw,
    readonly problems: string[],
  ) {}

  /** `value` as a section named `path`: undefined and null are empty; anything but a mapping is a problem. */
  static of(path: string, value: unknown, problems: string[]): Section {
    if (value === undefined || value === null) return new Section(path, {}, problems);
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${path} must be a mapping`);
      return new Section(path, {}, problems);
    }
    return new Section(path, value as Raw, problems);
  }

  /** The full name of a key of this section, as messages show it. */
  name(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  problem(message: string): void {
    this.problems.push(message);
  }

  /** Records every key that is not one of `known`. */
  only(known: readonly string[]): this {
    for (const k of Object.keys(this.raw)) if (!known.includes(k)) this.problems.push(`unknown key ${this.name(k)}`);
    return this;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  section(key: string): Section {
    return Section.of(this.name(key), this.raw[key], this.problems);
  }

  str(key: string, dflt: string): string {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      this.problems.push(`${this.name(key)} must be a string`);
      return dflt;
    }
    return v;
  }

  /** A positive duration ("90s", "5m", "1h30m"), in milliseconds. */
  duration(key: string, dflt: string): number {
    try {
      const ms = parseDuration(this.str(key, dflt));
      if (ms <= 0) throw new Error('must be positive');
      return ms;
    } catch (e) {
      this.problems.push(`${this.name(key)}: ${(e as Error).message}`);
      return parseDuration(dflt);
    }
  }

  positive(key: string, dflt: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      this.problems.push(`${this.name(key)} must be a positive number`);
      return dflt;
    }
    return v;
  }

  int(key: string, dflt: number, min: number, max: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problems.push(`${this.name(key)} must be an integer ${min}..${max}`);
      return dflt;
    }
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problems.push(`${this.name(key)} must be true or false`);
      return dflt;
    }
    return v;
  }

  strings(key: string, dflt: readonly string[]): string[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [...dflt];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      this.problems.push(`${this.name(key)} must be a list of strings`);
      return [...dflt];
    }
    return [...v];
  }

  /** A list of file paths, made absolute against the working directory. */
  files(key: string): string[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
      this.problems.push(`${this.name(key)} must be a list of file paths`);
      return [];
    }
    return v.map((f: string) => (isAbsolute(f) ? f : resolve(f)));
  }

  /** A list of values (for sections that are lists of mappings). */
  list(key: string): unknown[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`${this.name(key)} must be a list`);
      return [];
    }
    return v;
  }
}
