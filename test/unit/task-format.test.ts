/**
 * `writ task show` prints records that principals and agents wrote (reasons, actors) on the
 * lines of the tree: a newline or another control character in them is escaped, so no record
 * can forge a line (review finding 12c). The issuer also refuses such reasons (revocation.test.ts).
 */
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { oneLine, taskLine, taskTree } from '../../src/cli/verbs/task/format.js';
import { GetTaskResponseSchema, TaskSchema } from '../../src/gen/writ/v1/admin_pb.js';

const FORGED = 'done\n└─ writ FORGED spiffe://example.org/agent/x; live\u2028\u0085\t\x1b[2J';

describe('task tree text', () => {
  it('escapes control and line-separator characters of reasons, actors and principals', () => {
    expect(oneLine(FORGED)).toBe('done\\u000a└─ writ FORGED spiffe://example.org/agent/x; live\\u2028\\u0085\\u0009\\u001b[2J');
    expect(oneLine('plain text, unicode é ✓')).toBe('plain text, unicode é ✓');
    // Bidirectional overrides would make a printed id read as another (Trojan Source): escaped too.
    expect(oneLine('alice\u202egnp.exe\u2066x\u2069')).toBe('alice\\u202egnp.exe\\u2066x\\u2069');
    const task = create(TaskSchema, {
      id: 't1',
      principal: 'https://idp.example#bob\nprincipal forged',
      goal: 'g',
      createdAt: 1n,
      expiresAt: 2n,
      state: 'ended',
      endedAt: 2n,
      endedBy: 'principal https://idp.example#bob',
      endReason: FORGED,
    });
    const res = create(GetTaskResponseSchema, {
      task,
      grants: [
        {
          id: 'g1',
          depth: 0,
          from: 'https://idp.example#bob',
          delegateJkt: 'k',
          maxDepth: 1,
          createdAt: 1n,
          expiresAt: 2n,
          state: 'revoked',
          revokedBy: { sequence: 1n, kind: 'task', target: 't1', actor: 'agent x\nforged', reason: FORGED, at: 2n },
        },
      ],
    });
    const text = taskTree(res, new Date(3));
    const lines = text.trimEnd().split('\n');
    // task, principal, the grant, its "no writ" line: nothing more.
    expect(lines).toHaveLength(4);
    expect(lines.some((l) => l.includes('└─ writ FORGED') && !l.includes('\\u000a'))).toBe(false);
    expect(lines[0]).toContain('(done\\u000a└─ writ FORGED');
    expect(lines[1]).toBe('principal https://idp.example#bob\\u000aprincipal forged');
    expect(lines[2]).toContain('by agent x\\u000aforged: task t1 (done\\u000a');
    expect(taskLine(task).split('\n')).toHaveLength(1);
  });
});
