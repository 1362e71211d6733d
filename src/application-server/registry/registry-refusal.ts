import { BadRequestError, OverloadedError, type SwitchboardError } from '../../protocol/index.js';

/**
 * Why the registry refused a HELLO. Sent back on the control port as the HELLO's answer (status
 * BAD_REQUEST, or OVERLOADED when the registry is full) with a stable code; the registry is unchanged.
 */
export class RegistryRefusal extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }

  toWireError(): SwitchboardError {
    return this.code === 'SB_ERR_REGISTRY_FULL' ? new OverloadedError(this.message, this.code) : new BadRequestError(this.message, this.code);
  }
}
