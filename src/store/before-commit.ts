/**
 * Work a transaction does last: `beforeCommit(tx, fn)` runs `fn` once, in the transaction, after
 * the function given to Store.transaction has returned and before the commit, so that work
 * gathered over a transaction is written in one step (the audit log appends a transaction's
 * records together, src/audit/log.ts). A failure of `fn` rolls the whole transaction back, and
 * its error is what the transaction throws. A Store implementation marks each transaction's
 * `tx` with `transactionHooks` and runs the hooks in order before committing (sql-store.ts).
 */
import { StoreError } from '../errors.js';
import type { StoreTx } from './store.js';

type Hook = () => Promise<void>;

const hooks = new WeakMap<StoreTx, Hook[]>();

/** For Store implementations: marks `tx` as a transaction's; the returned list is run in order before the commit. */
export function transactionHooks(tx: StoreTx): readonly Hook[] {
  const list: Hook[] = [];
  hooks.set(tx, list);
  return list;
}

/** Runs `fn` in `tx` just before it commits; `tx` must be a transaction's (never the Store itself). */
export function beforeCommit(tx: StoreTx, fn: Hook): void {
  const list = hooks.get(tx);
  if (!list) throw new StoreError('store: beforeCommit needs the tx of a Store.transaction, not a Store');
  list.push(fn);
}
