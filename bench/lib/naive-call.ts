import https from 'node:https';

/**
 * The request a user writes without svcnode: one keep-alive mTLS GET with node:https, the body
 * parsed as JSON. Shared by the naive worker, the raw client and the call-path comparison, so
 * every baseline makes the same call.
 */
export function naiveCall(url: string, agent: https.Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'GET', agent, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
