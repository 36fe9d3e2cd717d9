/**
 * The evidence types one process knows, with their validated settings: the issuer's verifier
 * registry and the relying party's re-verifiers are both made from it, so the two always use
 * the same settings (a TPM re-verifier built with another agent PCR than the verifier refused
 * the writs the issuer had just minted).
 */
import type { ConfigSection } from '../config/config.js';
import type { OptionSpecs, OptionValues } from '../config/options.js';
import type { Section } from '../config/section.js';
import type { EvidencePlugin, VerifierDeps } from './plugin.js';
import { VerifierRegistry } from './registry.js';
import type { EvidenceReverifier } from './verifier.js';

/** Parses `attestation.<type>` for every plug-in; unknown types are problems. */
export function parseEvidenceSettings(plugins: readonly EvidencePlugin[], attestation: Section): ReadonlyMap<string, unknown> {
  const types = plugins.map((p) => p.type);
  for (const k of Object.keys(attestation.raw)) {
    if (!types.includes(k)) attestation.problem(`unknown key ${attestation.name(k)} (evidence types: ${types.join(', ')})`);
  }
  return new Map(plugins.map((p) => [p.type, p.settings(attestation.section(p.type))]));
}

/** The `attestation:` key of the server configuration, for these plug-ins. */
export function attestationSection(plugins: readonly EvidencePlugin[]): ConfigSection<ReadonlyMap<string, unknown>> {
  return { key: ATTESTATION_KEY, parse: (top) => parseEvidenceSettings(plugins, top.section(ATTESTATION_KEY)) };
}

export const ATTESTATION_KEY = 'attestation';

export class EvidenceCatalog {
  private readonly byType: ReadonlyMap<string, EvidencePlugin>;

  constructor(
    readonly plugins: readonly EvidencePlugin[],
    /** Validated settings by type; types without an entry use their parser's defaults. */
    private readonly settings: ReadonlyMap<string, unknown> = new Map(),
  ) {
    const byType = new Map<string, EvidencePlugin>();
    for (const p of plugins) {
      if (byType.has(p.type)) throw new Error(`attestation: evidence type ${p.type} registered twice`);
      byType.set(p.type, p);
    }
    this.byType = byType;
  }

  get types(): string[] {
    return [...this.byType.keys()];
  }

  private settingsOf(p: EvidencePlugin): unknown {
    if (!this.settings.has(p.type)) throw new Error(`attestation: no settings were parsed for evidence type ${p.type}`);
    return this.settings.get(p.type);
  }

  /** The issuer's verifiers. */
  verifiers(deps: VerifierDeps): VerifierRegistry {
    return new VerifierRegistry(this.plugins.map((p) => p.verifier(this.settingsOf(p), deps)));
  }

  /** Re-verifiers with the issuer's own trust (its VerifyService). */
  reverifiersFromSettings(): ReadonlyMap<string, EvidenceReverifier> {
    const out = new Map<string, EvidenceReverifier>();
    for (const p of this.plugins) if (p.relyingParty) out.set(p.type, p.relyingParty.reverifier(p.relyingParty.fromSettings(this.settingsOf(p))));
    return out;
  }

  /** Options `writ verify` takes for re-verification, from every type. */
  relyingPartyOptions(): OptionSpecs {
    return Object.assign({}, ...this.plugins.map((p) => p.relyingParty?.options ?? {}));
  }

  /** Re-verifiers with a relying party's trust, from `writ verify` options. */
  reverifiersFromOptions(values: OptionValues): ReadonlyMap<string, EvidenceReverifier> {
    const out = new Map<string, EvidenceReverifier>();
    for (const p of this.plugins) if (p.relyingParty) out.set(p.type, p.relyingParty.reverifier(p.relyingParty.fromOptions(values)));
    return out;
  }

  /** One line per type for the startup log. */
  describe(): string[] {
    return this.plugins.map((p) => `${p.type}${p.describe ? `: ${p.describe(this.settingsOf(p))}` : ''}`);
  }
}
