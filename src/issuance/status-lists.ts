/**
 * Token Status List entries for writs: each writ gets an index in the newest list, chosen at
 * random among the free ones (so the index says nothing about how many writs came before it or
 * belong to one task); a list takes new writs until it is half full, then a new list starts.
 */
import { randomInt } from 'node:crypto';
import { StoreError } from '../errors.js';
import type { StoreTx } from '../store/store.js';

/** Entries per list: 2^17 one-bit statuses, 16 KiB before compression. */
export const STATUS_LIST_SIZE = 1 << 17;
/** A list stops taking writs when this share of it is given out (random picks stay cheap). */
export const STATUS_LIST_FILL = 1 / 2;
/** Random picks before giving up (at half full, 2^-64 of never finding a free index). */
const PICKS = 64;

export async function allocateStatusIndex(tx: StoreTx, now: number, size = STATUS_LIST_SIZE): Promise<{ list: number; idx: number }> {
  let list = await tx.currentStatusList();
  if (!list || list.allocated >= list.size * STATUS_LIST_FILL) {
    list = { id: (list?.id ?? 0) + 1, size, allocated: 0, createdAt: now };
    await tx.createStatusList(list);
  }
  for (let i = 0; i < PICKS; i++) {
    const idx = randomInt(list.size);
    if (!(await tx.statusIndexTaken(list.id, idx))) {
      await tx.countStatusAllocation(list.id);
      return { list: list.id, idx };
    }
  }
  throw new StoreError(`store: no free index found in status list ${list.id}`);
}
