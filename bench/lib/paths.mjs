/** Where the bench finds the built framework and its own child scripts. */
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DIST = new URL('../../dist/', import.meta.url);
export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

/** A file URL inside dist/, for dynamic import from child scripts. */
export const dist = (rel) => new URL(rel, DIST).href;

/** The path of a child script under bench/lib/procs. */
export const procScript = (name) => fileURLToPath(new URL(`./procs/${name}.mjs`, import.meta.url));
