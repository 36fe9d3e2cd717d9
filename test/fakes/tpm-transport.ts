import type { TpmTransport } from '../../src/tpm/transport.js';

/** A scripted transport: answers each command with the next response from the script. */
export class ScriptedTransport implements TpmTransport {
  readonly sent: Buffer[] = [];
  constructor(private readonly responses: Buffer[]) {}
  async transmit(command: Buffer): Promise<Buffer> {
    this.sent.push(command);
    const r = this.responses.shift();
    if (!r) throw new Error('script exhausted');
    return r;
  }
  async close(): Promise<void> {}
}

/** A bare response: tag NO_SESSIONS, size, response code, then `body`. */
export function response(rc: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(10 + body.length);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(10 + body.length, 2);
  b.writeUInt32BE(rc, 6);
  body.copy(b, 10);
  return b;
}
