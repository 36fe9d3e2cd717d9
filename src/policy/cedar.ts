/**
 * The one door to Cedar (`@cedar-policy/cedar-wasm`): every module of writ that calls Cedar
 * imports it from here, so that this runs first.
 *
 * V8 11.3 (Node 20) aborts the whole process ("Fatal error in , line 0 / unreachable code", in
 * `Deoptimizer::DoComputeBuiltinContinuation`), as far as `--trace-deopt` shows while lazily
 * deoptimizing optimized code that had inlined a call from JavaScript into Cedar's WebAssembly. It was
 * found by `BENCH_ONLY=audit,approvals make bench` (the same at 2099446), which it ended every
 * time in `PolicyEngine.evaluate` until inlining those calls was turned off; an issuer deciding
 * policy under load is exposed to the same abort. Only these calls lose the inlining; every other
 * optimization stays (escalations/s with it off: 272 to 531 over five runs; the one run with it
 * on that did not abort: 356).
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');

export * from '@cedar-policy/cedar-wasm/nodejs';
