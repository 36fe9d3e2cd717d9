/**
 * The server's configuration: config/'s core settings plus the sections its capabilities
 * contribute (one line each in `serverSections`), so that every problem is reported at once.
 */
import { attestationSection, ATTESTATION_KEY, EvidenceCatalog } from '../attestation/catalog.js';
import { BUILTIN_EVIDENCE } from '../attestation/builtins.js';
import type { EvidencePlugin } from '../attestation/plugin.js';
import { buildServerSettings, sectionSettings, type ConfigSection, type ServerSettings } from '../config/config.js';
import type { Raw } from '../config/section.js';
import { joinTokenSection } from '../issuance/admin.js';
import { auditSection } from '../issuance/audit.js';
import { approvalsSection } from '../approval/settings.js';
import { revocationSection } from '../issuance/revocations.js';
import { statusListSection } from '../issuance/status-list-publisher.js';
import { principalsSection } from '../principal/settings.js';
import { consoleSection } from './console/settings.js';

/** The capability sections of the server configuration, for a given evidence catalog. */
export function serverSections(evidence: readonly EvidencePlugin[] = BUILTIN_EVIDENCE): ConfigSection[] {
  return [
    attestationSection(evidence),
    joinTokenSection,
    principalsSection,
    revocationSection,
    statusListSection,
    auditSection,
    approvalsSection,
    consoleSection,
  ];
}

/** Raw config → validated server settings, capability sections included; throws ConfigError with every problem. */
export function serverSettings(raw: Raw, problems: string[] = [], evidence: readonly EvidencePlugin[] = BUILTIN_EVIDENCE): ServerSettings {
  return buildServerSettings(raw, problems, serverSections(evidence));
}

/** The evidence catalog with the settings parsed for it. */
export function evidenceCatalog(settings: ServerSettings, evidence: readonly EvidencePlugin[]): EvidenceCatalog {
  return new EvidenceCatalog(evidence, sectionSettings<ReadonlyMap<string, unknown>>(settings, ATTESTATION_KEY));
}
