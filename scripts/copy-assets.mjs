// Copies the files tsc does not: the admin dashboard's page, script and style, next to the built
// admin server. Run by scripts/build.mjs (npm run build).
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function copyAssets() {
  const from = fileURLToPath(new URL('../src/application-server/admin/dashboard/', import.meta.url));
  const to = fileURLToPath(new URL('../dist/application-server/admin/dashboard/', import.meta.url));
  cpSync(from, to, { recursive: true });
}

