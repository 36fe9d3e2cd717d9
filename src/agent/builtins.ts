/**
 * The one place that lists the evidence types an agent can produce (the agent side of each
 * plug-in; the issuer side is listed in `attestation/builtins.ts`).
 */
import { joinTokenProducer } from '../attestation/join-token/plugin.js';
import type { EvidenceProducer } from '../attestation/plugin.js';
import { tdxProducer } from '../attestation/tdx/producer.js';
import { tpmProducer } from '../attestation/tpm/producer.js';
import { snpProducer } from '../attestation/sev-snp/producer.js';
import { nitroProducer } from '../attestation/nitro/producer.js';

export const BUILTIN_PRODUCERS: readonly EvidenceProducer[] = [joinTokenProducer, tpmProducer, snpProducer, nitroProducer, tdxProducer];
