/**
 * Turns a V8 .cpuprofile (from BENCH_PROFILE=DIR, see load.ts) into a table of where the time
 * went: `node dist/test/bench/profile-summary.js FILE...` prints, per category, its share of
 * the busy (non-idle) time, one column per profile, then the split between client-side and
 * server-side code.
 *
 * Each sample is charged to one category: writ's own operations by the caller (any frame of
 * the stack; a signature made while minting is minting), transport plumbing by the innermost
 * frame that names it (TLS, HTTP/2, grpc-js, ...); natives and Node's generic helpers name
 * nothing themselves, so they count for whoever called them.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Work named by who asked for it: if any frame of the stack matches, the first such rule wins
 * (so the signature inside X.509 minting is minting, the SQL inside an entry lookup is lookup).
 */
const BY_CALLER: ReadonlyArray<[string, RegExp]> = [
  ['client: credentials per channel (bundle parse, secure context)', /^(issuerChannelCredentials|bundleTrustDomain|createSsl) /],
  ['logging (pino)', /node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|on-exit-leak-free)\//],
  ['metrics (prom-client)', /node_modules\/(prom-client|tdigest|bintrees)\//],
  ['Cedar policy decision', /src\/policy\/|wasm:\/\/|@cedar-policy/],
  ['writ: binding digest, sign, self-check', /src\/writ\//],
  ['grant chain: verify, records', /src\/delegation\/|bindGrants /],
  ['X.509-SVID mint + self-check', /src\/svid\/x509-mint/],
  ['JWT-SVID mint', /src\/svid\/jwt-svid/],
  ['agent key parsing, thumbprints', /src\/svid\/public-key|src\/jose\//],
  ['join token check', /src\/attestation\//],
  ['entry lookup', /^listEntriesBySelectors |src\/registration\//],
  ['SQLite (statements, transactions)', /src\/store\/|node_modules\/better-sqlite3\//],
  ['bundle documents', /src\/server\/bundle-documents|src\/spiffe\/bundle/],
];
/** Plumbing, named by the innermost frame that matches (leaf first). */
const BY_LEAF: ReadonlyArray<[string, RegExp]> = [
  ['protobuf (protobuf-es)', /node_modules\/@bufbuild\/protobuf\/|src\/rpc\/grpc-adapter|src\/gen\//],
  ['TLS (handshake, records, certificates)', /node:_tls_|node:internal\/tls\/|node:tls|^(getPeerCertificate|addCACert|setCiphers|destroySSL|verifyError) /],
  ['HTTP/2 (node:http2)', /node:internal\/http2\/|node:http2/],
  ['DNS resolver per channel (c-ares)', /node:internal\/dns\/|node:dns|^ChannelWrap /],
  ['gRPC (grpc-js)', /node_modules\/@grpc\/grpc-js\/|node_modules\/@js-sdsl\//],
  ['TCP sockets, streams, timers (Node)', /node:net|node:internal\/streams\/|node:internal\/stream_base_commons|node:(internal\/)?timers|node:stream/],
  ['issuer: handshake logic, service, CA', /src\/issuance\/|src\/server\/|src\/spiffe\/|src\/ca\//],
  ['client: attest()', /src\/agent\/|src\/x509\/|src\/der\//],
  ['profiler (inspector session)', /^dispatch /],
  ['bench code (load driver, floor service)', /test\/bench\//],
];
/** Client-side and server-side code, for the split. */
const CLIENT =
  /src\/agent\/|test\/bench\/(load|grpc-floor|client-process)|grpc-js\/build\/src\/(client|channel|internal-channel|subchannel[\w-]*|transport|resolver[\w-]*|load-balancer[\w-]*|resolving-call|retrying-call|load-balancing-call|client-interceptors|channel-credentials|picker|http_proxy|compression-filter|filter-stack|call-credentials)\.js|^onConnectSecure /;
const SERVER =
  /grpc-js\/build\/src\/server[\w-]*\.js|src\/(server|issuance|store|attestation|svid|writ|delegation|policy|ca|registration)\/|^(tlsConnectionListener|onServerSocketSecure|onServerClientHello|onnewsession|connectionListener) /;

const label = (f: CallFrame) => `${f.functionName || '(anonymous)'} ${f.url}`;

export interface Summary {
  readonly busyMs: number;
  readonly idleMs: number;
  readonly categories: ReadonlyArray<[string, number]>;
  readonly sides: ReadonlyArray<[string, number]>;
}

export function summarize(p: Profile): Summary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const cat = new Map<string, number>();
  const side = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!.callFrame;
    if (leaf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const stack: string[] = [];
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) stack.push(label(byId.get(x)!.callFrame));
    let c = BY_CALLER.find(([, re]) => stack.some((f) => re.test(f)))?.[0];
    for (let i = 0; !c && i < stack.length; i++) c = BY_LEAF.find(([, re]) => re.test(stack[i]!))?.[0];
    c ??= leaf.functionName === '(garbage collector)' ? 'garbage collection' : leaf.functionName === '(program)' ? 'V8/native, no JS frame' : 'other';
    cat.set(c, (cat.get(c) ?? 0) + us);
    const s = stack.some((f) => CLIENT.test(f)) ? 'client' : stack.some((f) => SERVER.test(f)) ? 'server' : 'unattributed (native I/O, GC)';
    side.set(s, (side.get(s) ?? 0) + us);
  }
  const busy = [...cat.values()].reduce((a, b) => a + b, 0);
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number]);
  return { busyMs: busy / 1000, idleMs: idle / 1000, categories: sorted(cat), sides: sorted(side) };
}

/** Shares of busy time, one column per profile (several profiles side by side compare runs). */
function table(names: readonly string[], sums: readonly Summary[]): string {
  const keys = (pick: (s: Summary) => ReadonlyArray<[string, number]>) => {
    const total = new Map<string, number>();
    for (const s of sums) for (const [k, v] of pick(s)) total.set(k, (total.get(k) ?? 0) + v / s.busyMs);
    return [...total].sort((x, y) => y[1] - x[1]).map(([k]) => k);
  };
  const cell = (s: Summary, pick: (s: Summary) => ReadonlyArray<[string, number]>, k: string) => {
    const ms = pick(s).find(([c]) => c === k)?.[1] ?? 0;
    return `${((100 * ms) / s.busyMs).toFixed(1)}%`.padStart(12);
  };
  const block = (pick: (s: Summary) => ReadonlyArray<[string, number]>) =>
    keys(pick).map((k) => `${k.padEnd(64)}${sums.map((s) => cell(s, pick, k)).join('')}`);
  return [
    `${'share of busy time'.padEnd(64)}${names.map((n) => n.slice(-11).padStart(12)).join('')}`,
    ...block((s) => s.categories),
    `${'busy ms'.padEnd(64)}${sums.map((s) => s.busyMs.toFixed(0).padStart(12)).join('')}`,
    `${'idle ms'.padEnd(64)}${sums.map((s) => s.idleMs.toFixed(0).padStart(12)).join('')}`,
    '',
    ...block((s) => s.sides),
  ].join('\n');
}

if (process.argv[1]?.endsWith('profile-summary.js')) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('usage: node dist/test/bench/profile-summary.js FILE.cpuprofile...');
    process.exit(2);
  }
  const names = files.map((f, i) => `${i + 1}:${f.replace(/^.*\//, '').replace(/\.cpuprofile$/, '')}`);
  for (const n of names) console.log(n);
  console.log(
    table(
      names.map((n) => n.split(':')[0]!),
      files.map((f) => summarize(JSON.parse(readFileSync(f, 'utf8')) as Profile)),
    ),
  );
}
