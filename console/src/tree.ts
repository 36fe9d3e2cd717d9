/**
 * A task's delegation tree from the flat lists GetTaskTree returns: the principal at the root, then
 * every writ under the writ it was delegated from. Pure (no DOM), so it is tested in Node and timed
 * in the console bench.
 */
import type { GetTaskTreeResponse, TreeApproval, TreeGrant, TreeWrit } from '../../src/gen/writ/v1/console_pb';

export type NodeState = 'active' | 'revoked' | 'expired' | 'ended';

export interface TreeNode {
  readonly writ: TreeWrit;
  /** The grant this writ holds (the last of its lineage), when the issuer has it. */
  readonly grant: TreeGrant | undefined;
  /** Escalations this agent (its key) asked for within the task. */
  readonly approvals: readonly TreeApproval[];
  readonly state: NodeState;
  readonly children: TreeNode[];
  readonly depth: number;
}

export interface Tree {
  readonly roots: TreeNode[];
  readonly count: number;
}

export function buildTree(r: GetTaskTreeResponse): Tree {
  const now = Number(r.now);
  const grants = new Map(r.grants.map((g) => [g.jti, g]));
  const asked = new Map<string, TreeApproval[]>();
  for (const a of r.approvals) {
    const list = asked.get(a.actorJkt);
    if (list) list.push(a);
    else asked.set(a.actorJkt, [a]);
  }
  const none: TreeApproval[] = [];
  const ended = r.task !== undefined && r.task.endedAt > 0n;
  const kids = new Map<string, TreeWrit[]>();
  const jtis = new Set(r.writs.map((w) => w.jti));
  const roots: TreeWrit[] = [];
  for (const w of r.writs) {
    if (w.parentJti !== '' && jtis.has(w.parentJti)) {
      const list = kids.get(w.parentJti);
      if (list) list.push(w);
      else kids.set(w.parentJti, [w]);
    } else roots.push(w);
  }
  const stateOf = (w: TreeWrit, parent: NodeState | undefined): NodeState => {
    if (w.revokedAt > 0n || w.lineage.some((g) => (grants.get(g)?.revokedAt ?? 0n) > 0n) || parent === 'revoked') return 'revoked';
    if (ended || parent === 'ended') return 'ended';
    if (Number(w.expiresAt) <= now) return 'expired';
    return 'active';
  };
  let count = 0;
  // Iterative, so a deep chain cannot overflow the stack.
  const make = (w: TreeWrit, depth: number, parent: NodeState | undefined): TreeNode => {
    count++;
    const node: TreeNode = {
      writ: w,
      grant: grants.get(w.lineage[w.lineage.length - 1] ?? ''),
      approvals: asked.get(w.jkt) ?? none,
      state: stateOf(w, parent),
      children: [],
      depth,
    };
    const stack: TreeNode[] = [node];
    while (stack.length) {
      const n = stack.pop()!;
      for (const c of kids.get(n.writ.jti) ?? []) {
        count++;
        const child: TreeNode = {
          writ: c,
          grant: grants.get(c.lineage[c.lineage.length - 1] ?? ''),
          approvals: asked.get(c.jkt) ?? none,
          state: stateOf(c, n.state),
          children: [],
          depth: n.depth + 1,
        };
        n.children.push(child);
        stack.push(child);
      }
    }
    return node;
  };
  return { roots: roots.map((w) => make(w, 0, undefined)), count };
}
