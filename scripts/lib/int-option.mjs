/**
 * Reads `--name` from parseArgs values as an integer in [min, max]; otherwise prints why with the
 * script's help and exits 2 (a usage error).
 */
export function intOption(values, help, name, min, max) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`chaos: --${name} must be an integer from ${min} to ${max}, got "${values[name]}"\n${help}\n`);
    process.exit(2);
  }
  return n;
}
