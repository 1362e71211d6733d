import { asDir, asRegistrationSchema, createEtcdClient, normalizePrefix, parseRegistryUrl, parseValue } from './etcd-registry.js';
import { ConnectError } from '../protocol/index.js';

/**
 * The client endpoints the ASs registered under `<prefix>/as/`, read once, in random order (so
 * clients spread over the ASs). Throws ConnectError when etcd cannot be read or holds no AS.
 * Values that do not parse are skipped.
 */
export async function readApplicationServers(registry: string, prefix?: string): Promise<{ host: string; port: number }[]> {
  const client = createEtcdClient(parseRegistryUrl(registry));
  const dir = asDir(normalizePrefix(prefix));
  try {
    let values: Record<string, string>;
    try {
      values = await client.getAll().prefix(dir).strings();
    } catch (err) {
      throw new ConnectError(`cannot read the application servers from etcd (${registry}, ${dir}): ${(err as Error).message}`, { cause: err });
    }
    const out: { host: string; port: number }[] = [];
    for (const v of Object.values(values)) {
      const p = parseValue(asRegistrationSchema, v);
      if (p.value) out.push({ host: p.value.host, port: p.value.port });
      if (out.length >= 64) break;
    }
    if (out.length === 0) throw new ConnectError(`no application server is registered in etcd (${registry}) under ${dir}; is one running with --registry?`);
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  } finally {
    client.close();
  }
}
