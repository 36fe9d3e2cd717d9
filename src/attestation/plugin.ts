/**
 * What one evidence type contributes, in one place (SPIRE's catalog: each plug-in parses its own
 * configuration). The issuer side (`EvidencePlugin`: settings, verifier, relying-party
 * re-verification with the same settings) is listed in `builtins.ts`; the agent side
 * (`EvidenceProducer`: the CLI options it adds, the evidence it produces, agent keys it can hold,
 * verbs of its own) is listed in `agent/builtins.ts`. Nothing else names an evidence type.
 */
import type { SettingsParser } from '../config/section.js';
import type { OptionSpecs, OptionValues } from '../config/options.js';
import type { JwsSigner } from '../jose/jws.js';
import type { Bundle } from '../spiffe/bundle.js';
import type { StoreTx } from '../store/store.js';
import type { EvidenceReverifier, EvidenceVerifier } from './verifier.js';

/** What the issuer hands a verifier: reads of the store (writes happen in `AttestationResult.commit`). */
export interface VerifierDeps {
  readonly store: StoreTx;
  /** The issuer's current trust bundle (its CA's, read per call so rotations apply); for types that verify SVIDs. */
  readonly trustBundle?: () => Bundle;
}

/** Offline re-verification of this type's evidence by a relying party (deep verification). */
export interface RelyingPartySide<S, T> {
  /** Options `writ verify` adds for this type, e.g. `--tpm-roots FILE`. */
  readonly options: OptionSpecs;
  /** The relying party's trust from those options (files are read here). */
  fromOptions(values: OptionValues): T;
  /** The issuer's own trust, from its settings: what its VerifyService re-verifies with. */
  fromSettings(settings: S): T;
  reverifier(trust: T): EvidenceReverifier;
}

/**
 * `writ enclave check --type NAME`: an offline check of this type's evidence as vendors and
 * tools write it (like `writ tpm check-quote`). The verb declares the common options
 * (ENCLAVE_CHECK_OPTIONS in cli/verbs/enclave-check.ts); a checker refuses, as a usage error,
 * those it has no use for.
 */
export interface OfflineCheck {
  /** The `--type` value, e.g. "sev-snp". */
  readonly name: string;
  /** Options only this checker takes, beyond the common ones. */
  readonly options?: OptionSpecs;
  /** Prints every check (or JSON with --json); 0 only when every check it can make passes. */
  run(ctx: PluginCommandContext): Promise<number>;
}

export interface EvidencePlugin<S = unknown, T = unknown> {
  /** The evidence type agents name in their hello, e.g. "join_token"; also the config key `attestation.<type>`. */
  readonly type: string;
  /** `attestation.<type>` → validated settings (files it names are read and checked here). */
  readonly settings: SettingsParser<S>;
  /** One line for the startup log: what this type trusts. */
  describe?(settings: S): string;
  verifier(settings: S, deps: VerifierDeps): EvidenceVerifier;
  /** Absent when the evidence is a secret that is never embedded (a join token). */
  readonly relyingParty?: RelyingPartySide<S, T>;
  readonly offlineCheck?: OfflineCheck;
}

/** An agent key held where this process cannot read it (e.g. resident in a TPM). */
export interface HeldKey {
  readonly signer: JwsSigner;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** Files to keep beside the credentials so the key can be used again (never the private key). */
  readonly files?: ReadonlyArray<{ readonly name: string; readonly text: string }>;
}

/** One handshake's evidence, as the agent produces it. */
export interface ProducerSession {
  /** Set when the evidence type holds the agent key itself (e.g. `--tpm-key`): the handshake uses this key. */
  readonly key?: HeldKey;
  respond(challenge: { readonly nonce: Uint8Array; readonly payload: Uint8Array }): Promise<Buffer>;
  /**
   * Readies the session for another handshake with the same key: how a sidecar whose key the
   * evidence holds attests afresh while the identity that key signs for is still served (a TPM
   * may serve one connection at a time, and its object slots are few). Absent: a new session.
   * Throws when the session cannot serve another handshake (its device failed, in this call or
   * in an earlier handshake's evidence): the caller then closes it and opens another.
   */
  restart?(): Promise<void>;
  close(): Promise<void>;
}

/** Agent keys an evidence type can hold, for verbs that sign with the agent key (proofs, delegation). */
export interface KeyCustody {
  /** Options that name such a key, e.g. `--tpm SPEC --tpm-key-file FILE`. */
  readonly options: OptionSpecs;
  /** True when these values name a key of this custody. */
  selected(values: OptionValues): boolean;
  open(values: OptionValues): Promise<{ readonly key: HeldKey; close(): Promise<void> }>;
  /** `writ agent keygen` with this custody: makes a key, returns it with the files to write (never a private key). */
  keygen?(values: OptionValues): Promise<HeldKey>;
  /** Options `writ agent keygen` takes for this custody. */
  readonly keygenOptions?: OptionSpecs;
}

/** A verb this evidence type adds to the CLI, e.g. `writ tpm check-quote`. */
export interface PluginCommand {
  /** Words after `writ`, e.g. ["tpm", "check-quote"]. */
  readonly name: readonly string[];
  readonly summary: string;
  readonly options: OptionSpecs;
  /** Positional arguments shown in usage, e.g. "ID". */
  readonly positionals?: string;
  /** Writes its output; returns the exit code (0 ok, 1 failed). */
  run(ctx: PluginCommandContext): Promise<number>;
}

export interface PluginCommandContext {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  readonly io: CommandIo;
  /** The wall clock, from the CLI (nothing below it reads the clock). */
  now(): Date;
}

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

export interface EvidenceProducer {
  readonly type: string;
  /** Options this type adds to `writ agent attest`; `selectedBy` among them picks this type. */
  readonly options: OptionSpecs;
  readonly selectedBy: string;
  /** Also picked by `writ agent attest --evidence NAME` (for types whose options all have defaults, e.g. "sev-snp"). */
  readonly cliName?: string;
  /** Opens the device or source of evidence for one handshake. */
  open(values: OptionValues): Promise<ProducerSession>;
  readonly keys?: KeyCustody;
  readonly commands?: readonly PluginCommand[];
}
