/** Metadata keys the decorators write and the explorer reads. Registry symbols, so two copies of the package agree. */
export const PLUGIN_METADATA = Symbol.for('switchboard.plugin');
export const SERVICES_METADATA = Symbol.for('switchboard.services');
