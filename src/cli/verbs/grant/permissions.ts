/** The permission options grants share: ACTION=RESOURCE patterns. */
import type { OptionSpecs } from '../../../config/options.js';

export const PERMISSION_OPTIONS: OptionSpecs = {
  scope: { type: 'string', multiple: true, value: 'ACTION=RESOURCE', help: 'a permission the grant allows (patterns may end in *)' },
  boundary: { type: 'string', multiple: true, value: 'ACTION=RESOURCE', help: 'a permission the grant never allows' },
  escalate: { type: 'string', multiple: true, value: 'ACTION=RESOURCE', help: 'a permission that needs an approver' },
};
