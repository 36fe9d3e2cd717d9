/**
 * The `tdx` evidence type's issuer side: its settings (`attestation.tdx`), the verifier (one
 * round: the agent answers the challenge with a quote whose report data is B ‖ 32 zero bytes),
 * the relying party's re-verification, and `writ enclave check --type tdx` (README.md here).
 */
import { createHash } from 'node:crypto';
import { listOption, UsageError, type OptionValues } from '../../config/options.js';
import type { Section } from '../../config/section.js';
import { ENCLAVE_ROOTS_OPTION, enclaveRootFiles } from '../enclave/options.js';
import type { EvidencePlugin } from '../plugin.js';
import type { EvidenceReverifier, EvidenceVerifier } from '../verifier.js';
import { tdxOfflineCheck } from './check.js';
import { collateralEvaluator, readCollateralFiles, TCB_STATUSES, type TdxCollateral } from './collateral.js';
import { newPckChainCache } from './pck.js';
import { MAX_TDX_QUOTE_BYTES } from './quote.js';
import { anchorsInFile, DEFAULT_TDX_ROOTS, sha256Hex } from './roots.js';
import { DEFAULT_ACCEPTED_TCB_STATUSES, reportDataFor, TDX_TYPE, verifyTdxQuote, type TdxPolicy } from './verify.js';

export interface TdxSettings {
  /** Trust anchors (DER): the Intel SGX Root CA unless the operator replaces it. */
  readonly roots: readonly Buffer[];
  /** Where the roots came from, for the startup log. */
  readonly rootSource: string;
  readonly policy: TdxPolicy;
  /** Intel collateral documents (one per FMSPC) the TCB is evaluated with. */
  readonly collateral: readonly TdxCollateral[];
}

/** What a relying party trusts for TDX evidence. */
export interface TdxTrust {
  readonly roots: readonly Buffer[];
  readonly allowDebug: boolean;
  /** Collateral to re-evaluate the TCB with; without it the TCB status is taken from the issuer. */
  readonly collateral?: readonly TdxCollateral[];
  /** TCB statuses accepted when evaluated (default: all; a relying party selects on `tdx:tcb_status:`). */
  readonly acceptedTcbStatuses?: readonly string[];
}

export function parseTdxSettings(s: Section): TdxSettings {
  s.only(['roots', 'allow_debug', 'allow_unevaluated_tcb', 'accepted_tcb_statuses', 'collateral']);
  const collateral: TdxCollateral[] = [];
  for (const f of s.files('collateral')) {
    try {
      collateral.push(...readCollateralFiles([f], s.name('collateral')));
    } catch (e) {
      s.problem((e as Error).message);
    }
  }
  const fmspcs = collateral.map((c) => c.fmspc);
  for (const [i, f] of fmspcs.entries()) if (fmspcs.indexOf(f) !== i) s.problem(`${s.name('collateral')}: two documents for FMSPC ${f}`);
  const accepted = s.strings('accepted_tcb_statuses', DEFAULT_ACCEPTED_TCB_STATUSES);
  for (const a of accepted)
    if (!TCB_STATUSES.includes(a)) s.problem(`${s.name('accepted_tcb_statuses')}: ${a} is not a TCB status (${TCB_STATUSES.join(', ')})`);
  const files = s.files('roots');
  const roots: Buffer[] = [];
  for (const f of files) {
    try {
      roots.push(...anchorsInFile(f, s.name('roots')));
    } catch (e) {
      s.problem((e as Error).message);
    }
  }
  return {
    roots: files.length ? roots : DEFAULT_TDX_ROOTS,
    rootSource: files.length ? files.join(', ') : 'the shipped Intel SGX Root CA',
    policy: {
      allowDebug: s.bool('allow_debug', false),
      allowUnevaluatedTcb: s.bool('allow_unevaluated_tcb', false),
      acceptedTcbStatuses: accepted,
    },
    collateral,
  };
}

export function tdxVerifier(settings: TdxSettings): EvidenceVerifier {
  const tcb = settings.collateral.length ? collateralEvaluator(settings.collateral, settings.roots) : undefined;
  const pckCache = newPckChainCache();
  return {
    type: TDX_TYPE,
    maxEvidenceBytes: MAX_TDX_QUOTE_BYTES,
    maxRounds: 1,
    async begin(ctx) {
      const reportData = reportDataFor(ctx.nonce);
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence) {
          const v = verifyTdxQuote(evidence, { anchors: settings.roots, at: ctx.now, policy: settings.policy, reportData, pckCache, ...(tcb ? { tcb } : {}) });
          // The quote without its zero padding is what is embedded and digested.
          const quote = evidence.subarray(0, v.quote.length);
          return {
            kind: 'attested',
            result: {
              selectors: v.selectors,
              platform: v.platform,
              evidenceDigest: createHash('sha256').update(quote).digest(),
              publicEvidence: Buffer.from(quote),
            },
          };
        },
      };
    },
  };
}

export function tdxReverifier(trust: TdxTrust): EvidenceReverifier {
  const tcb = trust.collateral?.length ? collateralEvaluator(trust.collateral, trust.roots) : undefined;
  const pckCache = newPckChainCache();
  return {
    type: TDX_TYPE,
    reverify(evidence, ctx) {
      const v = verifyTdxQuote(evidence, {
        anchors: trust.roots,
        at: ctx.at,
        // Without collateral a relying party checks everything else and says so.
        policy: { allowDebug: trust.allowDebug, allowUnevaluatedTcb: true, acceptedTcbStatuses: trust.acceptedTcbStatuses ?? TCB_STATUSES },
        reportData: reportDataFor(ctx.binding),
        pckCache,
        ...(tcb ? { tcb } : {}),
      });
      return {
        selectors: v.selectors,
        checked: [
          'tdx: quote signed by the attestation key over header and TD report body',
          `tdx: QE report signed by the PCK key, PCK chain to the Intel SGX root ${v.pck.anchorSha256.slice(0, 16)}… this relying party trusts`,
          'tdx: the QE report binds the attestation key (SHA-256 of the key and the QE auth data)',
          'tdx: report data is the binding digest recomputed from the writ, then 32 zero bytes',
          v.debug ? 'tdx: the TD is a debug TD (accepted: debug allowed)' : 'tdx: the TD is not a debug TD',
          ...(v.tcb.evaluated ? [`tdx: TCB status ${v.tcb.status} from Intel collateral (signatures, CRLs, QE identity, TDX module)`] : []),
        ],
        takenFromIssuer: v.tcb.evaluated
          ? []
          : [
              "tdx: the platform's TCB status (Intel collateral) as the issuer's policy judged it; not evaluated here",
              'tdx: the QE identity and the TDX module identity (Intel collateral); not evaluated here',
            ],
        // Without collateral the TCB status cannot be recomputed: the writ's tdx:tcb_status is the issuer's.
        ...(v.tcb.evaluated ? {} : { issuerSelectorTypes: [`${TDX_TYPE}:tcb_status`] }),
      };
    },
  };
}

function trustFromOptions(values: OptionValues): TdxTrust {
  const files = enclaveRootFiles(values, TDX_TYPE);
  let roots: Buffer[] = [...DEFAULT_TDX_ROOTS];
  if (files.length) {
    try {
      roots = files.flatMap((f) => anchorsInFile(f, '--enclave-roots tdx'));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  let collateral: TdxCollateral[] = [];
  try {
    collateral = readCollateralFiles(listOption(values, 'tdx-collateral'), '--tdx-collateral');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { roots, allowDebug: values['tdx-allow-debug'] === true, collateral };
}

export const tdxPlugin: EvidencePlugin<TdxSettings, TdxTrust> = {
  type: TDX_TYPE,
  settings: parseTdxSettings,
  describe: (s) =>
    `roots ${s.roots.map((r) => sha256Hex(r).slice(0, 16)).join(', ')} from ${s.rootSource}; debug TDs ${s.policy.allowDebug ? 'ALLOWED' : 'refused'}; ${s.collateral.length} collateral document(s); TCB not evaluated ${s.policy.allowUnevaluatedTcb ? 'accepted' : 'refused'}`,
  verifier: (settings) => tdxVerifier(settings),
  relyingParty: {
    options: {
      ...ENCLAVE_ROOTS_OPTION,
      'tdx-allow-debug': { type: 'boolean', help: 'accept TDX evidence from debug TDs at --deep' },
      'tdx-collateral': {
        type: 'string',
        multiple: true,
        value: 'FILE|DIR',
        help: 'Intel collateral (dcap-qvl JSON) to re-evaluate the TDX TCB with at --deep',
      },
    },
    fromOptions: trustFromOptions,
    fromSettings: (s) => ({ roots: s.roots, allowDebug: s.policy.allowDebug, collateral: s.collateral, acceptedTcbStatuses: s.policy.acceptedTcbStatuses }),
    reverifier: tdxReverifier,
  },
  offlineCheck: tdxOfflineCheck,
};
