// vitest 5 calls Map.groupBy / Object.groupBy (Node >= 21) while reporting failures.
// On Node 20 this polyfill keeps failure reports readable; it touches nothing in src/.
if (typeof Map.groupBy !== 'function') {
  Map.groupBy = function groupBy(items, key) {
    const m = new Map();
    let i = 0;
    for (const it of items) {
      const k = key(it, i++);
      if (!m.has(k)) m.set(k, []);
      m.get(k).push(it);
    }
    return m;
  };
}
if (typeof Object.groupBy !== 'function') {
  Object.groupBy = function groupBy(items, key) {
    const o = Object.create(null);
    let i = 0;
    for (const it of items) {
      const k = key(it, i++);
      o[k] ??= [];
      o[k].push(it);
    }
    return o;
  };
}
