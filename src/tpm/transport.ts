/**
 * Transports for raw TPM 2.0 command bytes: a kernel resource manager device (/dev/tpmrm0)
 * or a swtpm TCP data port. Spec strings: `/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`
 * (the tpm2-tools TCTI syntax).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { TpmError } from '../errors.js';

/** Largest TPM response we accept (TPM responses are a few KiB). */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** How long one command may take before the transport gives up. */
export const COMMAND_TIMEOUT_MS = 30_000;

export interface TpmTransport {
  transmit(command: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

const transportError = (msg: string, cause?: unknown) => new TpmError('ERR_TPM_TRANSPORT', `tpm: ${msg}`, 0, { cause });

/** Parses `swtpm:host=H,port=N` (or a device path) into a transport. */
export async function openTransport(spec: string): Promise<TpmTransport> {
  if (spec.startsWith('swtpm:')) {
    const opts = Object.fromEntries(
      spec
        .slice(6)
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    );
    const port = Number(opts.port ?? 2321);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw transportError(`bad swtpm port in ${JSON.stringify(spec)}`);
    return SocketTransport.connect(opts.host ?? '127.0.0.1', port);
  }
  if (spec.startsWith('/')) return DeviceTransport.open(spec);
  throw transportError(`unknown TPM ${JSON.stringify(spec)}: want /dev/tpmrm0 or swtpm:host=H,port=N`);
}

/** swtpm's data channel: one command, one response, framed by the response header's size. */
export class SocketTransport implements TpmTransport {
  private pending = Buffer.alloc(0);
  private waiter?: { resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private queue: Promise<unknown> = Promise.resolve();
  private failed?: Error;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(transportError(`socket error: ${e.message}`, e)));
    socket.on('close', () => this.fail(transportError('the TPM closed the connection')));
  }

  static connect(host: string, port: number): Promise<SocketTransport> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.once('connect', () => resolve(new SocketTransport(s)));
      s.once('error', (e) => reject(transportError(`cannot connect to swtpm at ${host}:${port}: ${e.message}`, e)));
    });
  }

  private fail(e: Error): void {
    this.failed ??= e;
    this.waiter?.reject(e);
    this.waiter = undefined;
  }

  private onData(d: Buffer): void {
    this.pending = Buffer.concat([this.pending, d]);
    if (this.pending.length > MAX_RESPONSE_BYTES) {
      this.fail(transportError('response too large'));
      return;
    }
    if (this.pending.length < 10) return;
    const size = this.pending.readUInt32BE(2);
    if (size < 10 || size > MAX_RESPONSE_BYTES) {
      this.fail(transportError(`bad response size ${size}`));
      return;
    }
    if (this.pending.length < size) return;
    const frame = this.pending.subarray(0, size);
    this.pending = this.pending.subarray(size);
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(Buffer.from(frame));
  }

  transmit(command: Buffer): Promise<Buffer> {
    const run = () =>
      new Promise<Buffer>((resolve, reject) => {
        if (this.failed) return reject(this.failed);
        const t = setTimeout(() => this.fail(transportError('command timed out')), COMMAND_TIMEOUT_MS);
        this.waiter = {
          resolve: (b) => {
            clearTimeout(t);
            resolve(b);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        };
        this.socket.write(command);
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }
}

/** A TPM character device (use the resource manager, /dev/tpmrm0). */
export class DeviceTransport implements TpmTransport {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string): Promise<DeviceTransport> {
    try {
      return new DeviceTransport(await open(path, 'r+'));
    } catch (e) {
      throw transportError(`cannot open ${path}: ${(e as Error).message}`, e);
    }
  }

  transmit(command: Buffer): Promise<Buffer> {
    const run = async () => {
      await this.fh.write(command);
      const buf = Buffer.alloc(MAX_RESPONSE_BYTES);
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
      if (bytesRead < 10 || buf.readUInt32BE(2) !== bytesRead) throw transportError('malformed response frame from the device');
      return buf.subarray(0, bytesRead);
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
