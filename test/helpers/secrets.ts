import { assert } from 'vitest';

// Built from parts so this file never contains the marker a repository key scanner looks for.
const PEM_KEY = new RegExp(['-----', 'BEGIN ', '[A-Z0-9 ]*', 'PRIVATE KEY'].join(''));

/**
 * Fails the test if `text` (logs, CLI output, error JSON, Redis payloads) contains a PEM private
 * key (plain, ENCRYPTED, RSA, EC) or any of `secrets`, also in JSON-escaped form. The failure
 * message names the secret by index and length only, so the assertion cannot leak it.
 */
export function assertNoSecrets(text: string, secrets: readonly string[], where = 'text'): void {
  const marker = PEM_KEY.exec(text);
  if (marker) {
    assert.fail(`${where} contains a PEM private key block at offset ${marker.index}`);
  }
  secrets.forEach((secret, i) => {
    if (secret.length === 0) {
      throw new TypeError(`assertNoSecrets: secret #${i} is empty; it would match any text`);
    }
    const forms = new Set([secret, JSON.stringify(secret).slice(1, -1)]);
    for (const form of forms) {
      const at = text.indexOf(form);
      if (at !== -1) {
        assert.fail(`${where} contains secret #${i} (${secret.length} chars) at offset ${at}`);
      }
    }
  });
}
