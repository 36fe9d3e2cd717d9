/**
 * A strict JSON parser (RFC 8259) for UNTRUSTED JOSE payloads: duplicate member names,
 * lone surrogates, nesting deeper than `maxDepth` and numbers outside the safe-integer
 * range are refused. `JSON.parse` keeps the last of two duplicate names while other parsers
 * keep the first; refusing them closes that gap between what is signed and what is read.
 */

/** Deepest nesting we parse. writ's own documents need 6. */
export const MAX_JSON_DEPTH = 16;

export class StrictJsonError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const LITERALS: ReadonlyArray<readonly [string, boolean | null]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** Characters a string may hold without an escape. */
const PLAIN = /[^"\\\x00-\x1f]*/y;
const SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ESC: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

export function parseStrictJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  let i = 0;
  const fail = (msg: string): never => {
    throw new StrictJsonError(`${msg} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      // Fast path: a run of plain characters, taken in one slice.
      PLAIN.lastIndex = i;
      PLAIN.test(text);
      if (PLAIN.lastIndex > i) {
        out += text.slice(i, PLAIN.lastIndex);
        i = PLAIN.lastIndex;
      }
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        break;
      }
      if (c < 0x20) fail('control character in string');
      // c is a backslash
      const e = text[i + 1];
      if (e === 'u') {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else if (e !== undefined && e in ESC) {
        out += ESC[e];
        i += 2;
      } else fail('bad escape');
    }
    if (SURROGATE.test(out)) fail('lone surrogate in string');
    return out;
  };
  const value = (depth: number): unknown => {
    ws();
    const c = text[i];
    if (c === '{') {
      if (depth >= maxDepth) fail('nesting too deep');
      i++;
      const obj: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected member name');
        const k = str();
        if (Object.hasOwn(obj, k)) fail(`duplicate member name "${k.slice(0, 40)}"`);
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        const v = value(depth + 1);
        // "__proto__" stays an own data member; plain assignment would set the prototype.
        if (k === '__proto__') Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
        else obj[k] = v;
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          break;
        }
        fail('expected "," or "}"');
      }
      return obj;
    }
    if (c === '[') {
      if (depth >= maxDepth) fail('nesting too deep');
      i++;
      const arr: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          break;
        }
        fail('expected "," or "]"');
      }
      return arr;
    }
    if (c === '"') return str();
    for (const [word, value] of LITERALS) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('unexpected token');
    i += m[0].length;
    const n = Number(m[0]);
    if (!Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n))) fail('number out of range');
    return n;
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}
