/** Imports point one way (STYLE.md §2); time is injected below server/ and agent/. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/shared.js';
import { BUILTIN_EVIDENCE } from '../src/attestation/builtins.js';
import { BUILTIN_PRODUCERS } from '../src/agent/builtins.js';
import { FAKE_TYPE } from './fakes/evidence-fake/plugin.js';

const SRC = join(REPO_ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level module of a src file: 'errors', 'spiffe', 'attestation', ... */
const moduleOf = (file: string) =>
  relative(SRC, file)
    .split('/')[0]!
    .replace(/\.(ts|js)$/, '');

/** What each module may import from src/ (besides itself). */
const ALLOWED: Record<string, string[]> = {
  errors: [],
  clock: [],
  // Bounded in-process caches, below everything.
  cache: [],
  der: ['errors', 'cache'],
  x509: ['der', 'errors', 'cache'],
  spiffe: ['der', 'x509', 'errors', 'cache'],
  jose: ['errors', 'cache'],
  svid: ['jose', 'spiffe', 'x509', 'der', 'errors', 'cache'],
  registration: ['spiffe', 'errors', 'cache'],
  tpm: ['jose', 'errors', 'cache'],
  store: ['registration', 'errors', 'cache'],
  ca: ['svid', 'jose', 'spiffe', 'x509', 'der', 'store', 'clock', 'errors', 'cache'],
  // Raw input → validated values: knows the core settings' types, never a capability's.
  config: ['spiffe', 'svid', 'ca', 'der', 'errors', 'cache'],
  // Evidence plug-ins parse their own config sections and declare their own CLI options.
  attestation: ['config', 'registration', 'jose', 'svid', 'spiffe', 'x509', 'der', 'tpm', 'store', 'errors', 'cache'],
  // WebAuthn assertions (approvers' passkeys): strict CBOR, COSE keys, authenticator and client data.
  webauthn: ['der', 'jose', 'errors', 'cache'],
  delegation: ['webauthn', 'jose', 'errors', 'cache'],
  policy: ['errors', 'cache'],
  principal: ['jose', 'config', 'errors', 'cache'],
  dev: ['jose', 'errors', 'cache'],
  writ: ['delegation', 'attestation', 'jose', 'errors', 'cache'],
  // Revocation targets, matching and status lists: below the issuer, beside the verifier.
  revocation: ['writ', 'delegation', 'jose', 'spiffe', 'clock', 'errors', 'cache'],
  // The relying-party kit for HTTP servers: presentation in headers, verification, answers.
  rp: ['writ', 'delegation', 'jose', 'clock', 'errors', 'cache'],
  // The audit log: records, Merkle tree, checkpoints; its key is sealed as the CA's are.
  audit: ['ca', 'jose', 'store', 'clock', 'errors', 'cache'],
  // Approval requests and passkey registration statements; the assertion over a statement is checked with webauthn/.
  approval: ['delegation', 'webauthn', 'jose', 'config', 'errors', 'cache'],
  issuance: [
    'approval',
    'audit',
    'writ',
    'delegation',
    'policy',
    'principal',
    'jose',
    'attestation',
    'registration',
    'ca',
    'svid',
    'spiffe',
    'store',
    'config',
    'clock',
    'errors',
    'cache',
    'revocation',
  ],
  gen: [],
  rpc: ['gen', 'cache'],
  // The relying-party Workload API client (X509Source, JWTSource, mTLS by SPIFFE ID), without the issuer.
  workload: ['gen', 'rpc', 'spiffe', 'x509', 'svid', 'jose', 'der', 'errors', 'cache'],
  server: [
    'approval',
    'audit',
    'rpc',
    'gen',
    'issuance',
    'revocation',
    'writ',
    'delegation',
    'policy',
    'principal',
    'jose',
    'attestation',
    'registration',
    'ca',
    'svid',
    'spiffe',
    'x509',
    'der',
    'store',
    'config',
    'clock',
    'errors',
    'cache',
  ],
  agent: ['rpc', 'gen', 'attestation', 'config', 'writ', 'revocation', 'delegation', 'tpm', 'jose', 'svid', 'spiffe', 'x509', 'der', 'errors', 'cache'],
  // The sidecar (`writ agent run`): the agent side's long-running form, serving a Unix socket.
  sidecar: [
    'agent',
    'rpc',
    'gen',
    'attestation',
    'config',
    'writ',
    'revocation',
    'delegation',
    'tpm',
    'jose',
    'svid',
    'spiffe',
    'x509',
    'der',
    'clock',
    'errors',
    'cache',
  ],
  cli: [
    'sidecar',
    'audit',
    'server',
    'agent',
    'dev',
    'writ',
    'revocation',
    'delegation',
    'jose',
    'spiffe',
    'x509',
    'attestation',
    'rpc',
    'gen',
    'config',
    'registration',
    'der',
    'clock',
    'errors',
    'cache',
    'revocation',
  ],
};
/** Folders under attestation/ that hold what several plug-ins share, not a plug-in (enclave/README.md). */
const SHARED_FOLDERS = ['enclave'];

/** Only these may use gRPC or protobuf runtime packages. */
const WIRE = new Set(['server', 'agent', 'sidecar', 'rpc', 'cli', 'gen', 'workload']);

const imports = files(SRC).map((f) => {
  const text = readFileSync(f, 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)].map((m) => m[1] ?? m[2]!);
  return { f, mod: moduleOf(f), specs, text };
});

describe('architecture', () => {
  it('every src module is in the allow-list', () => {
    expect([...new Set(imports.map((i) => i.mod))].filter((m) => !(m in ALLOWED))).toEqual([]);
  });

  it.each(imports.map((i) => [relative(REPO_ROOT, i.f), i] as const))('%s imports only what its layer allows', (_n, i) => {
    for (const spec of i.specs) {
      if (spec.startsWith('.')) {
        const target = moduleOf(resolve(dirname(i.f), spec));
        if (target !== i.mod) expect(ALLOWED[i.mod], `${i.mod} → ${target} (${spec})`).toContain(target);
      } else if (/^@grpc\/|^@bufbuild\//.test(spec)) {
        expect(WIRE.has(i.mod), `${i.mod} must not import ${spec}`).toBe(true);
      }
    }
  });

  it('evidence plug-ins never import each other; only builtins.ts lists them', () => {
    for (const i of imports.filter((x) => x.mod === 'attestation')) {
      const rel = relative(join(SRC, 'attestation'), i.f);
      const own = rel.includes('/') ? rel.split('/')[0] : undefined;
      for (const spec of i.specs.filter((s) => s.startsWith('.'))) {
        const t = relative(join(SRC, 'attestation'), resolve(dirname(i.f), spec));
        if (!t.includes('/') || t.startsWith('..')) continue;
        const plugin = t.split('/')[0]!;
        if (SHARED_FOLDERS.includes(plugin)) continue;
        if (plugin !== own) expect(rel, `${rel} imports plug-in ${plugin}`).toBe('builtins.ts');
      }
    }
  });

  it('only the two builtins lists import an evidence plug-in folder', () => {
    const lists = ['attestation/builtins.ts', 'agent/builtins.ts'];
    for (const i of imports) {
      const from = relative(SRC, i.f);
      for (const spec of i.specs.filter((x) => x.startsWith('.'))) {
        const t = relative(join(SRC, 'attestation'), resolve(dirname(i.f), spec));
        if (!t.includes('/') || t.startsWith('..')) continue;
        const plugin = t.split('/')[0]!;
        if (SHARED_FOLDERS.includes(plugin)) continue;
        if (from.startsWith(`attestation/${plugin}/`)) continue;
        // Join tokens are minted by the operator API (as in SPIRE); the plug-in only verifies them.
        if (from === 'issuance/admin.ts' && plugin === 'join-token') continue;
        // Renewal by SVID is the sidecar's own step after any evidence type (as SPIRE agents renew), not a producer.
        if (from === 'agent/renew.ts' && plugin === 'x509-svid') continue;
        expect(lists, `${from} imports the ${plugin} plug-in`).toContain(from);
      }
    }
  });

  it('server/, config/ and cli/ name no evidence type: each type owns its whole vertical', () => {
    const types = [...new Set([...BUILTIN_EVIDENCE.map((p) => p.type), ...BUILTIN_PRODUCERS.map((p) => p.type), FAKE_TYPE])];
    // Flags a plug-in adds (--join-token, --tpm-roots, ...) name it as much as its type does.
    const words = [...types, ...types.map((t) => t.replace(/_/g, '-'))];
    const literal = /'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g;
    for (const i of imports.filter((x) => ['server', 'config', 'cli'].includes(x.mod))) {
      const code = i.text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      for (const m of code.matchAll(literal)) {
        for (const w of words) {
          expect(new RegExp(`(^|[^a-z_-])${w}($|[^a-z_])`).test(m[0].slice(1, -1)), `${relative(REPO_ROOT, i.f)} names ${w} in ${m[0].slice(0, 80)}`).toBe(
            false,
          );
        }
      }
    }
  });

  it('every package src/ imports is a runtime dependency (make run installs with --omit=dev)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const dynamic = (t: string) => [...t.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!);
    const missing: string[] = [];
    for (const i of imports) {
      for (const spec of [...i.specs, ...dynamic(i.text)]) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!(name in pkg.dependencies)) missing.push(`${relative(REPO_ROOT, i.f)} imports ${name}`);
      }
    }
    expect(missing, 'test-only packages belong in devDependencies; what src/ imports must be in dependencies').toEqual([]);
  });

  it('only src/policy/cedar.ts imports Cedar (it turns off the V8 inlining that aborts the process first)', () => {
    const importers = files(SRC).filter((f) => /from '@cedar-policy\/cedar-wasm[^']*'|import\('@cedar-policy\/cedar-wasm/.test(readFileSync(f, 'utf8')));
    expect(importers.map((f) => relative(SRC, f))).toEqual(['policy/cedar.ts']);
    expect(readFileSync(join(SRC, 'policy/cedar.ts'), 'utf8')).toMatch(/^setFlagsFromString\('--no-turbo-inline-js-wasm-calls'\);$/m);
  });

  it('nothing below server/, agent/ and cli/ reads the wall clock', () => {
    for (const i of imports.filter((x) => !['server', 'agent', 'cli', 'clock', 'store'].includes(x.mod))) {
      expect(/Date\.now\(\)|new Date\(\)/.test(i.text), relative(REPO_ROOT, i.f)).toBe(false);
    }
  });
});
