/**
 * Work a transaction does last, and what it tells once it has committed.
 *
 * `beforeCommit(tx, fn)` runs `fn` once, in the transaction, after the function given to
 * Store.transaction has returned and before the commit, so that work gathered over a
 * transaction is written in one step (the audit log appends a transaction's records together,
 * src/audit/log.ts). A failure of `fn` rolls the whole transaction back, and its error is what
 * the transaction throws.
 *
 * `afterCommit(tx, fn)` runs `fn` once the transaction has committed, and never when it rolled
 * back or its outcome is unknown (a failed COMMIT, a lost connection): what a process keeps in
 * memory about the database (the audit log's right frontier) is only ever what was committed.
 * `fn` is synchronous and must not throw: the transaction has committed, so a failure cannot
 * be reported as its own (one that does is reported as a process warning).
 *
 * A Store implementation marks each transaction's `tx` with `transactionHooks`, naming the
 * store it belongs to (`transactionOwner`: the key of what a process keeps per database), runs
 * the `before` hooks in order before committing and the `after` hooks of the run that
 * committed once it has (sql-store.ts).
 */
import { StoreError } from '../errors.js';
import type { StoreTx } from './store.js';

type Hook = () => Promise<void>;
type AfterHook = () => void;

interface Hooks {
  readonly owner: object;
  readonly before: Hook[];
  readonly after: AfterHook[];
}

const marks = new WeakMap<StoreTx, Hooks>();

/** For Store implementations: marks `tx` as a transaction of the store `owner`; the lists are run as the module comment says. */
export function transactionHooks(tx: StoreTx, owner: object): { readonly before: readonly Hook[]; readonly after: readonly AfterHook[] } {
  const h: Hooks = { owner, before: [], after: [] };
  marks.set(tx, h);
  return h;
}

function hooksOf(tx: StoreTx, what: string): Hooks {
  const h = marks.get(tx);
  if (!h) throw new StoreError(`store: ${what} needs the tx of a Store.transaction, not a Store`);
  return h;
}

/** Runs `fn` in `tx` just before it commits; `tx` must be a transaction's (never the Store itself). */
export function beforeCommit(tx: StoreTx, fn: Hook): void {
  hooksOf(tx, 'beforeCommit').before.push(fn);
}

/** Runs `fn` once `tx` has committed (never after a rollback); `fn` must not throw. */
export function afterCommit(tx: StoreTx, fn: AfterHook): void {
  hooksOf(tx, 'afterCommit').after.push(fn);
}

/** The store `tx` is a transaction of: the same object for every transaction of one Store. */
export function transactionOwner(tx: StoreTx): object {
  return hooksOf(tx, 'transactionOwner').owner;
}
