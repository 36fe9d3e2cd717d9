/** `writ agent keygen`: an agent key and its RFC 7638 thumbprint (what a grant names). */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../config/files.js';
import { stringOption, UsageError, type OptionSpecs } from '../../../config/options.js';
import { jwkThumbprint } from '../../../jose/jws.js';
import { required, type CliCatalog, type Verb } from '../../verb.js';

const CORE: OptionSpecs = {
  out: { type: 'string', value: 'DIR', help: 'writes agent.key (0600, never overwritten), agent.pub and agent.jkt here' },
  type: { type: 'string', value: 'ec-p256|ec-p384', help: 'key type of a software key (default ec-p256)' },
};

function options(catalog: CliCatalog): OptionSpecs {
  return Object.assign({}, CORE, ...catalog.producers.map((p) => p.keys?.keygenOptions ?? {}));
}

export const agentKeygenVerb: Verb = {
  name: ['agent', 'keygen'],
  summary: "make an agent key and print its thumbprint; an evidence type's key option makes the key inside that hardware instead",
  required: ['out'],
  options,
  async run({ values, catalog, io }) {
    const out = required(values, 'out');
    const custody = catalog.producers.find((p) => p.keys?.keygen && Object.keys(p.keys.keygenOptions ?? {}).some((k) => values[k] !== undefined))?.keys;
    const type = stringOption(values, 'type') ?? 'ec-p256';
    if (type !== 'ec-p256' && type !== 'ec-p384') throw new UsageError('--type must be ec-p256 or ec-p384');
    if (custody && stringOption(values, 'type') !== undefined) throw new UsageError('--type applies to software keys only');
    mkdirSync(out, { recursive: true, mode: 0o700 });
    let publicKey: KeyObject;
    if (custody) {
      const held = await custody.keygen!(values);
      for (const f of held.files ?? []) {
        if (existsSync(join(out, f.name))) throw new UsageError(`${join(out, f.name)} exists; refusing to overwrite a key`);
      }
      for (const f of held.files ?? []) writeFileSync(join(out, f.name), f.text, { mode: 0o600, flag: 'wx' });
      publicKey = held.signer.publicKey;
    } else {
      const keyFile = join(out, 'agent.key');
      if (existsSync(keyFile)) throw new UsageError(`${keyFile} exists; refusing to overwrite a key`);
      const k = generateKeyPairSync('ec', { namedCurve: type === 'ec-p256' ? 'prime256v1' : 'secp384r1' });
      writeFileSync(keyFile, k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
      publicKey = k.publicKey;
    }
    writeFileAtomic(join(out, 'agent.pub'), publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const jkt = jwkThumbprint(publicKey);
    writeFileAtomic(join(out, 'agent.jkt'), `${jkt}\n`);
    io.out(`${jkt}\n`);
    return 0;
  },
};
